"""GPU check of the engine (run where a CUDA device is present; the tests never need one).

    python bench/gpu_check.py [--out DIR]

1. Training on the GPU: GRPO on arithmetic with the presets' model (64 wide, 2 blocks; from --start, e.g. its
   cached warm start, else untrained), 4000 rollouts, policy.device=cuda, in float32 and in bfloat16 autocast. Prints the run's status, held-out accuracy before
   and after, the largest sampler-vs-trainer log-prob gap (engine/logp_diff_max), rollouts per wall second,
   and whether a second float32 run reproduces the first's learning metrics bit for bit.
2. Sampler vs `model.generate` on the GPU: a 512-wide, 8-block embedded model, 32 prompts x 8 samples,
   64 new tokens at T=1, float32 and bfloat16 autocast; sequences/s of each and the ratio (best of 3).
3. One PPO update of 256 rollouts on that wide model, float32 and bfloat16: trained tokens/s and TFLOP/s.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch
from learning_hash import learning_hash  # bench/learning_hash.py (this script's folder is first on sys.path)
from sampler import best_of  # bench/sampler.py
from trainer import PRESET_MODEL  # bench/trainer.py

from harness.config import load_config
from harness.core.trainer import Trainer
from harness.engines.policy import embedded_policy, left_pad
from harness.engines.sampler import TorchSampler
from harness.registry import TASKS, resolve_plugins

PRESET = [*PRESET_MODEL, "task_args.train_size=2000"]
WIDE = ["policy.hidden_size=512", "policy.num_layers=8", "policy.num_heads=8", "policy.num_kv_heads=2", "policy.intermediate_size=2048"]


def run(device: str, dtype: str, out: str, name: str, start: str | None) -> dict:
    begin = [f"policy.path={start}"] if start else ["policy.warm_start=false"]
    cfg = load_config(None, ["task=arithmetic", "algo=grpo", *PRESET, *begin, f"policy.device={device}", f"policy.dtype={dtype}", f"out_dir={out}",
                             f"name={name}", "budget.amount=4000", "budget.eval_every=2000", "budget.clock=wall", "wandb.mode=disabled"])
    t = Trainer(cfg, progress=False)
    start = time.perf_counter()
    summary = t.run()
    wall = time.perf_counter() - start
    return {
        "status": summary["status"], "accuracy": [summary["initial_accuracy"], summary["final_accuracy"]],
        "logp_diff_max": max(r.get("engine/logp_diff_max", 0.0) for r in t.store.metrics()),
        "rollouts_per_wall_s": summary["ledger/rollouts"] / wall, "wall_s": wall,
        "hash": learning_hash(t.store.metrics() + t.store.evals()),
    }


def timed(fn, device: str, repeats: int = 3) -> float:
    """best_of, waiting for the GPU's kernels to finish (they run asynchronously)."""
    return best_of(lambda: (fn(), torch.cuda.synchronize() if device == "cuda" else None), repeats)


def sampler_vs_generate(device: str, dtype: torch.dtype) -> dict:
    cfg = load_config(None, ["task=arithmetic", *WIDE])
    task = TASKS.get(cfg.task).obj(resolve_plugins(cfg)[1])
    policy = embedded_policy(cfg.policy, seed=0)
    model = policy.model.to(device).eval()
    prompts = policy.encode([p.prompt for p in task.problems("train")[:32] for _ in range(8)])
    ours = TorchSampler(model, policy.eos_ids, policy.pad_id)
    ids, mask = (x.to(device) for x in left_pad(prompts, policy.pad_id))
    kwargs = dict(do_sample=True, max_new_tokens=64, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=policy.pad_id, eos_token_id=policy.eos_ids)
    with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32), torch.no_grad():
        t_ours = timed(lambda: ours.generate(prompts, max_new_tokens=64, temperature=1.0, seed=0), device)
        t_hf = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, **kwargs), device)
    n = len(prompts)
    return {"ours_seq_s": n / t_ours, "generate_seq_s": n / t_hf, "ratio": t_hf / t_ours}


def update_throughput(device: str, dtype: str, out: str) -> dict:
    """One PPO update of 32 prompts x 8 rollouts on the wide model: trained tokens/s and the TFLOP/s that 6N
    FLOPs per token come to (best of 3)."""
    cfg = load_config(None, ["task=arithmetic", *WIDE, "policy.warm_start=false", f"policy.device={device}", f"policy.dtype={dtype}",
                             f"out_dir={out}", f"name=upd-{dtype}", "train.prompts_per_step=32", "train.group_size=8", "sampler.max_new_tokens=64", "wandb.mode=disabled"])
    t = Trainer(cfg, progress=False)
    ctx = t.context()
    batch = t.algo.select(ctx, t.algo.collect(ctx))
    batch.rewards = torch.randint(0, 2, (len(batch),), generator=torch.Generator().manual_seed(0)).float()  # mixed groups
    adv = t.algo.advantages(ctx, batch)
    seconds = timed(lambda: t.update(batch, adv), device)
    tokens = int((batch.prompt_mask.sum(-1) + batch.completion_mask.sum(-1)).sum())
    return {"tokens": tokens, "tokens_per_s": tokens / seconds, "tflops": 6 * t.policy.non_embedding_params * tokens / seconds / 1e12}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="folder for gpu_check.json")
    ap.add_argument("--device", default="cuda", help="cpu: try the script itself on a machine without a GPU")
    ap.add_argument("--start", default=None, help="checkpoint folder to start from (the presets' cached arithmetic warm start), "
                                                  "else the untrained model")
    args = ap.parse_args()
    dev, start = args.device, args.start
    report: dict = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if dev == "cuda" else dev}
    print(report, flush=True)
    steps = [("train float32", lambda d: run(dev, "float32", d, "f32", start)), ("train float32 again", lambda d: run(dev, "float32", d, "f32b", start)),
             ("train bfloat16", lambda d: run(dev, "bfloat16", d, "bf16", start)),
             ("sampler float32", lambda d: sampler_vs_generate(dev, torch.float32)),
             ("sampler bfloat16", lambda d: sampler_vs_generate(dev, torch.bfloat16)),
             ("update float32", lambda d: update_throughput(dev, "float32", d)), ("update bfloat16", lambda d: update_throughput(dev, "bfloat16", d))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, step in steps:
            try:
                report[name] = step(tmp)
            except Exception:  # one broken part must not hide the others
                report[name] = {"error": traceback.format_exc(limit=6)}
            print(name, json.dumps(report[name], indent=1), flush=True)
    if "hash" in report.get("train float32", {}) and "hash" in report.get("train float32 again", {}):
        report["float32 run to run bit-identical"] = report["train float32"]["hash"] == report["train float32 again"]["hash"]
        print("float32 run to run bit-identical:", report["float32 run to run bit-identical"])
    if args.out:
        Path(args.out, "gpu_check.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
