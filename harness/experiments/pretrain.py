"""Supervised warm start of the embedded policy on a task's oracle solutions, cached by config hash.

RL needs prompts the policy sometimes solves: the pass stops once sampled pass@1 on held-out prompts lands
in `pretrain.band`, and reports the share of 8-sample groups with mixed rewards (the groups GRPO learns from).
If a check overshoots the band, the checkpoint with the largest mixed share seen so far is kept.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from harness.config import RunConfig
from harness.core.rollouts import sample_and_score
from harness.core.store import atomic_torch_save, atomic_write, cache_root, exclusive
from harness.engines.policy import embedded_policy, supervised_loss
from harness.engines.sampler import build_engine
from harness.plain import config_hash, to_dict
from harness.registry import TASKS, resolve_plugins
from harness.signals import Interrupted, stop_requests

# the warm-start recipe's version, part of the cache key: bump it whenever a change makes the same config build
# different weights (v2: completion-only logits in the supervised loss, 509cad0, rounds the LM-head gradient
# differently), so no machine reuses weights that this code would not build
RECIPE = "v2"
SAMPLES_PER_CHECK = 8
WARMUP_STEPS = 50


def warm_start_dir(cfg: RunConfig) -> Path:
    _, task_cfg = resolve_plugins(cfg)
    # the device and compute dtype (the warm start trains in float32) do not change the weights, nor do the image
    # knobs on a text task, nor the chat options (the embedded model has no template)
    ignored = {"device", "dtype", "chat_template", "system_prompt"} | (set() if TASKS.get(cfg.task).obj.images else {"image_size", "patch_size"})
    policy = {k: v for k, v in to_dict(cfg.policy).items() if k not in ignored}
    task_args = to_dict(task_cfg)
    if task_args.get("answer") == "whole":  # the plain format's warm starts predate the field: their cache stays valid
        del task_args["answer"]
    key = config_hash(policy, cfg.task, task_args, cfg.pretrain, torch.__version__, RECIPE)
    return cache_root() / "warm_start" / f"{cfg.task}-{key}"


def sampled_check(policy, engine, task, problems, max_new_tokens: int, seed: int) -> dict:
    """pass@1 of SAMPLES_PER_CHECK samples per problem at T=1, and the share of mixed-reward groups."""
    rewards, _ = sample_and_score(policy, engine, task, problems, SAMPLES_PER_CHECK, max_new_tokens, 1.0, 1.0, seed)
    k = (rewards >= 1.0).sum(-1)
    return {"pass@1": (rewards >= 1.0).float().mean().item(), "mixed_frac": ((k > 0) & (k < SAMPLES_PER_CHECK)).float().mean().item()}


def warm_start(cfg: RunConfig, progress: bool = True) -> Path:
    """Path of the cached warm-start checkpoint for this policy + task + pretrain config, built if missing."""
    out = warm_start_dir(cfg)
    if (out / "meta.json").exists():
        return out
    with exclusive(out.with_name(out.name + ".lock"), f"the warm start {out.name}"):  # sweeps build it once
        if (out / "meta.json").exists():
            return out
        with stop_requests() as stop:
            return _build_warm_start(cfg, out, progress, stop)


def _build_warm_start(cfg: RunConfig, out: Path, progress: bool, stop) -> Path:
    p = cfg.pretrain
    torch.set_num_threads(cfg.threads)
    _, task_cfg = resolve_plugins(cfg)
    task = TASKS.get(cfg.task).obj(task_cfg)
    policy = embedded_policy(cfg.policy, seed=0, vision=task.images)
    model = policy.model.train()
    engine = build_engine("torch", model, policy.eos_ids, policy.pad_id)
    train = task.problems("train")
    checks = task.problems("eval")[-p.check_prompts :]
    prompts, pixels = policy.prompt_inputs(train)
    targets = [ids + [policy.eos_id] for ids in policy.encode([task.oracle_completion(x) for x in train])]
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
    history, best = [], None
    chosen = None
    partial = out.with_name(out.name + ".partial.pt")  # an interrupted build resumes from here
    first = 1
    if partial.exists():
        state = torch.load(partial, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, best, first = state["history"], state["best"], state["step"] + 1
    bar = tqdm(range(first, p.steps + 1), initial=first - 1, total=p.steps, desc=f"warm start {cfg.task}", disable=not progress)
    for step in bar:
        if stop():  # SIGINT/SIGTERM: keep the steps done (batches and checks are seeded by step, so resuming is exact)
            atomic_torch_save({"step": step - 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "history": history, "best": best}, partial)
            raise Interrupted(f"warm start interrupted at step {step - 1}; rerun the same command to resume", stop())
        idx = np.random.default_rng([0, step]).choice(len(train), size=min(p.batch_size, len(train)), replace=False)
        loss = supervised_loss(model, [prompts[i] for i in idx], [targets[i] for i in idx], policy.pad_id, None if pixels is None else pixels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % p.check_every and step != p.steps:
            continue
        check = {"step": step, "loss": loss.item(), **sampled_check(policy, engine, task, checks, task.completion_cap, seed=step)}
        history.append(check)
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{check['pass@1']:.2f}", mixed=f"{check['mixed_frac']:.2f}")
        if best is None or check["mixed_frac"] > best[0]["mixed_frac"]:
            best = (check, {k: v.clone() for k, v in model.state_dict().items()})
        if step < p.min_steps:
            continue
        lo, hi = p.band
        if lo <= check["pass@1"] <= hi:
            chosen = check
            break
        if check["pass@1"] > hi:  # overshot: fall back to the most mixed checkpoint seen
            chosen = best[0]
            model.load_state_dict(best[1])
            break
    bar.close()
    if chosen is None:
        chosen = history[-1]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    meta = {"chosen": chosen, "history": history, "in_band": p.band[0] <= chosen["pass@1"] <= p.band[1], "config": to_dict(p), "task_args": to_dict(task_cfg)}
    atomic_write(tmp / "meta.json", json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    return out


def warm_start_report(path: Path) -> dict:
    return json.loads((Path(path) / "meta.json").read_text())
