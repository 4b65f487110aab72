"""The training loop: one readable step through the stages of docs/design.md, a ledger, a store, resumable.

    step:  collect (plan -> generate -> score) -> select -> advantages -> update -> after_step -> log

Randomness is derived from (seed, step, stream) rather than carried in generator state, so a run resumed
from a checkpoint draws exactly what the uninterrupted run would have drawn.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from harness.config import RunConfig, changed_fields
from harness.core.evaluation import check_prompt_lengths, eval_sampling_se, next_eval_point, pass_at_k
from harness.core.ledger import Ledger
from harness.core.mismatch import correction_weights, mismatch_stats
from harness.core.rollouts import RolloutBatch, group_reward_stats, sample_and_score
from harness.core.stages import TRAINER_DIAGNOSTICS, LossInputs, StepContext, plotted, undeclared
from harness.core.store import RunStore, environment, exclusive
from harness.core.wandb_log import WandbMirror
from harness.engines.checkpoints import checkpoint_dir
from harness.engines.policy import Policy, completion_logprobs, embedded_policy, load_policy
from harness.engines.sampler import build_engine
from harness.plain import ConfigError
from harness.registry import ALGORITHMS, TASKS, resolve_plugins, resolved_config
from harness.signals import Interrupted, stop_requests

STREAMS = {"prompts": 1, "sample": 2, "minibatch": 3, "eval": 4}
EVAL_STEP = -1  # stream step used for every evaluation: the same noise at each point (common random numbers)


def derive_seed(seed: int, step: int, stream: str, round_index: int = 0, offset: int = 0) -> int:
    """An independent 63-bit seed for each (run seed, step, purpose, generation round within the step, stream
    offset); offset 0 leaves the entropy as it always was, so existing runs reproduce bit for bit."""
    entropy = [seed, step + 2, STREAMS[stream], round_index] + ([offset] if offset else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


class Trainer:
    def __init__(self, cfg: RunConfig, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.algo_cfg, self.task_cfg = resolve_plugins(cfg)
        torch.set_num_threads(cfg.threads)
        self.task = TASKS.get(cfg.task).obj(self.task_cfg)
        self.train_problems = self.task.problems("train")
        self.eval_problems = self.task.problems("eval")[: cfg.budget.eval_prompts]
        if cfg.budget.eval_prompts is not None and cfg.budget.eval_prompts > len(self.task.problems("eval")):
            raise ConfigError(f"budget.eval_prompts: {cfg.budget.eval_prompts} > task eval split size {len(self.task.problems('eval'))}")
        if cfg.train.prompts_per_step > len(self.train_problems):
            raise ConfigError(f"train.prompts_per_step: {cfg.train.prompts_per_step} > train split size {len(self.train_problems)}")
        self.max_new_tokens = cfg.sampler.max_new_tokens or self.task.completion_cap
        self.algo = ALGORITHMS.get(cfg.algo).obj(self.algo_cfg)
        self.needs = self.algo.needs()
        self.warm_start_info: dict | None = None  # which cached warm start RL began from, and its mixed share
        self.policy = self._build_policy()
        self.policy.configure_prompts(cfg.policy.chat_template, cfg.policy.system_prompt, self.task.images)
        self.device = torch.device(cfg.policy.device)
        self.model = self.policy.model.to(self.device)
        self.model.train()
        self.ref_model = None
        if self.needs.ref_model:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        with self.compute():  # an engine with its own copy of the weights (vLLM) takes the compute dtype from here
            self.engine = build_engine(cfg.sampler.engine, self.model, self.policy.eos_ids, self.policy.pad_id, **cfg.sampler.engine_args)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.train.lr, betas=cfg.train.betas, weight_decay=cfg.train.weight_decay
        )
        self.ledger = Ledger(flops_per_token=2.0 * self.policy.non_embedding_params, clock=cfg.budget.clock)
        self.store = RunStore(Path(cfg.out_dir) / cfg.run_name)
        self.prompt_cache, self.pixel_cache = self.policy.prompt_inputs(self.train_problems)  # pixels: image tasks
        check_prompt_lengths(self.train_problems, self.prompt_cache, self.max_new_tokens, self.policy.max_positions)
        check_prompt_lengths(self.eval_problems, self.policy.prompt_inputs(self.eval_problems)[0], self.max_new_tokens, self.policy.max_positions)
        self.step = 0
        self.next_eval = 0.0

    def _build_policy(self) -> Policy:
        if self.cfg.policy.path:
            return load_policy(checkpoint_dir(self.cfg.policy.path), image_size=self.cfg.policy.image_size)
        if self.cfg.policy.warm_start:
            from harness.experiments.pretrain import warm_start, warm_start_report

            path = warm_start(self.cfg, progress=self.progress)
            self.warm_start_info = {"path": str(path), **warm_start_report(path)["chosen"]}
            return load_policy(path)
        return embedded_policy(self.cfg.policy, self.cfg.seed, vision=self.task.images)

    def compute(self) -> torch.autocast:
        """Context of every forward pass: autocast to policy.dtype over float32 master weights (off for float32)."""
        dtype = getattr(torch, self.cfg.policy.dtype)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

    # -- stages the algorithm calls back into -------------------------------------------------------------------
    def rollout(self, problem_idx: torch.Tensor, group_sizes: list[int], step: int, round_index: int = 0) -> RolloutBatch:
        prompts = [self.prompt_cache[i] for i, n in zip(problem_idx.tolist(), group_sizes) for _ in range(n)]
        rows = torch.repeat_interleave(problem_idx, torch.as_tensor(group_sizes))
        images = None if self.pixel_cache is None else self.pixel_cache[rows]
        with self.ledger.phase("generate"), self.compute():
            gen = self.engine.generate(
                prompts,
                max_new_tokens=self.max_new_tokens,
                temperature=self.cfg.sampler.temperature,
                top_p=self.cfg.sampler.top_p,
                seed=derive_seed(self.cfg.seed, step, "sample", round_index, self.cfg.stream),
                images=images,
            )
        self.ledger.charge_generation(len(prompts), int(gen.prompt_mask.sum()), int(gen.completion_mask.sum()))
        with self.ledger.phase("score"):
            texts = self.policy.decode(gen.completion_ids.tolist())
            rewards = torch.tensor(self.task.score_batch([self.train_problems[i] for i in rows.tolist()], texts))
        B = len(prompts)
        return RolloutBatch(
            prompt_ids=gen.prompt_ids,
            prompt_mask=gen.prompt_mask,
            completion_ids=gen.completion_ids,
            completion_mask=gen.completion_mask,
            behav_logp=gen.logprobs,
            rewards=rewards,
            group_ids=torch.repeat_interleave(torch.arange(len(group_sizes)), torch.as_tensor(group_sizes)),
            problem_idx=rows,
            birth_step=torch.full((B,), step),
            replayed=torch.zeros(B, dtype=torch.bool),
            finished=gen.finished,
            pixel_values=images,
        )

    def context(self) -> StepContext:
        """What the stages of the current step may use (harness/core/stages.py)."""
        return StepContext(
            step=self.step, seed=self.cfg.seed, rng=np.random.default_rng(derive_seed(self.cfg.seed, self.step, "prompts")),
            train_cfg=self.cfg.train, num_train_problems=len(self.train_problems), needs=self.needs, pad_id=self.policy.pad_id,
            generate=lambda idx, sizes, round_index: self.rollout(idx, sizes, self.step, round_index),
            rescore=self.score_no_grad, tag=self.ledger.tag,
        )

    # -- one step ------------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        t0, timed0 = self.ledger.now(), self.ledger.timed()
        generated0, tagged0 = self.ledger.rollouts_generated, sum(self.ledger.rollouts_by_purpose.values())
        timeouts0 = self.task.timeouts
        ctx = self.context()
        generated = self.algo.collect(ctx)
        with self.ledger.phase("select"):
            batch = self.algo.select(ctx, generated)
            fresh = int((~batch.replayed).sum())
            if fresh < len(batch) and not self.needs.replay:
                raise RuntimeError(f"{self.cfg.algo}: select returned replayed rows; declare Needs(replay=True) in needs()")
            self.ledger.tag("train", fresh)
            n_generated = self.ledger.rollouts_generated - generated0
            n_tagged = sum(self.ledger.rollouts_by_purpose.values()) - tagged0
            if n_generated != n_tagged:  # equal footing: every generated rollout is trained on or tagged with why not
                raise RuntimeError(
                    f"{self.cfg.algo}: step {self.step} generated {n_generated} rollouts but accounted for {n_tagged}; "
                    "pass the ones not trained on to ctx.discard(batch, purpose)"
                )
            self.ledger.rows_trained += len(batch)
            self.ledger.rows_replayed += len(batch) - fresh
            advantages = self.algo.advantages(ctx, batch) if len(batch) else torch.zeros(0)
        with self.ledger.phase("update"):
            stats = self.update(batch, advantages) if len(batch) else {}  # e.g. DAPO at its cap with no signal
        self.algo.after_step(ctx, batch)
        if unknown := undeclared(ctx.logged, self.algo.diagnostics):
            raise RuntimeError(f"{self.cfg.algo}: logged {', '.join(unknown)} without declaring them in its `diagnostics`")
        self.step += 1
        row = {
            "step": self.step,
            "rollouts": self.ledger.rollouts_generated,
            # reward and group statistics describe what was generated; the trained batch may differ (select)
            "train/reward_mean": generated.rewards.mean().item(),
            **group_reward_stats(generated.rewards, generated.group_ids),
            "train/rollouts_trained": len(batch),
            "train/trained_reward_mean": batch.rewards.mean().item() if len(batch) else float("nan"),
            "train/adv_abs_mean": advantages.abs().mean().item() if len(batch) else float("nan"),
            "train/completion_len": generated.completion_mask.sum(-1).float().mean().item(),
            "train/truncated_frac": (~generated.finished).float().mean().item(),
            "replay/frac": batch.replayed.float().mean().item(),
            "score/timeouts": self.task.timeouts - timeouts0,  # verifications that overran their bound (scored 0)
            **stats,
            **ctx.logged,
        }
        # whatever the step spent outside the timed phases (stage logic, bookkeeping) is overhead
        self.ledger.add_overhead(t0, timed0)
        row.update(self.ledger.metrics())
        row["time/step"] = self.ledger.now()[1] - t0[1]
        return row

    @torch.no_grad()
    def score_no_grad(self, batch: RolloutBatch, model: torch.nn.Module | None = None) -> torch.Tensor:
        """Completion log-probs [B, L] under the current (or given) model without gradient; charged as forward."""
        with self.compute():
            logp, _ = completion_logprobs(model or self.model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, self.cfg.sampler.temperature, pixel_values=batch.pixel_values)
        self.ledger.charge_forward(batch.prompt_tokens + batch.completion_tokens)
        return logp

    def update(self, batch: RolloutBatch, advantages: torch.Tensor) -> dict[str, float]:
        """PPO epochs over mini-batches of the selected batch. Returns mean diagnostics."""
        tc, sc, temp = self.cfg.train, self.cfg.sampler, self.cfg.sampler.temperature
        seq_tokens = (batch.prompt_mask.sum(-1) + batch.completion_mask.sum(-1)).tolist()
        multi_pass = tc.ppo_epochs * tc.minibatches > 1
        # pi_old must be frozen before the first update; a single pass can reuse its own forward
        old_logp = self.score_no_grad(batch) if multi_pass else None
        ref_logp = self.score_no_grad(batch, self.ref_model) if self.ref_model is not None else None
        rng = torch.Generator().manual_seed(derive_seed(self.cfg.seed, self.step, "minibatch", offset=self.cfg.stream))
        acc: dict[str, list[float]] = {}
        scored: list[tuple[torch.Tensor, ...]] = []
        for epoch in range(tc.ppo_epochs):
            order = torch.randperm(len(batch), generator=rng) if tc.minibatches > 1 else torch.arange(len(batch))
            for rows in order.chunk(tc.minibatches):
                mb = batch.index(rows).to(self.device)
                with self.compute():
                    logp, entropy = completion_logprobs(self.model, mb.prompt_ids, mb.prompt_mask, mb.completion_ids, mb.completion_mask, temp, self.needs.entropy, mb.pixel_values)
                old = old_logp[rows] if multi_pass else logp.detach()
                ref = ref_logp[rows] if ref_logp is not None else None
                fresh = ~mb.replayed
                if epoch == 0:  # pi_old of every row, once, to compare with the engine's behaviour log-probs
                    scored.append((old, mb.behav_logp, mb.completion_mask * fresh[:, None]))
                engine_weights = None
                if sc.correction != "none":
                    engine_weights, hit = correction_weights(old, mb.behav_logp, mb.completion_mask, fresh, sc.correction, sc.correction_cap)
                    acc.setdefault("engine/corrected_frac", []).append(float(hit.sum() / mb.completion_mask.sum().clamp_min(1)))
                loss, stats = self.algo.loss(LossInputs(mb, advantages[rows].to(self.device), logp, old, ref, entropy, engine_weights, self.max_new_tokens))
                if unknown := undeclared(stats, self.algo.diagnostics):
                    raise RuntimeError(f"{self.cfg.algo}: its loss returned {', '.join(unknown)} without declaring them in `diagnostics`")
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"step {self.step}: loss is {loss.item()}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip or float("inf"))
                if not torch.isfinite(norm):  # a NaN/inf gradient would silently poison the weights
                    raise FloatingPointError(f"step {self.step}: gradient norm is {norm.item()}")
                self.optimizer.step()
                self.ledger.charge_training(sum(seq_tokens[i] for i in rows.tolist()))
                for k, v in {"train/loss": loss.detach(), "grad/norm": norm, **stats}.items():
                    acc.setdefault(k, []).append(float(v))
        self.engine.sync_weights()
        out = {k: sum(v) / len(v) for k, v in acc.items()}
        out.update({k: float(v) for k, v in mismatch_stats(*(torch.cat(x) for x in zip(*scored))).items()})
        return out

    # -- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Held-out accuracy: eval_prompts x eval_samples at the training temperature (recorded, not charged)."""
        n = self.cfg.budget.eval_samples
        timeouts0 = self.task.timeouts
        with self.ledger.phase("eval"), self.compute():
            rewards, tokens = sample_and_score(
                self.policy, self.engine, self.task, self.eval_problems, n, self.max_new_tokens,
                self.cfg.sampler.temperature, self.cfg.sampler.top_p, derive_seed(self.cfg.seed, EVAL_STEP, "eval"),
            )
        self.ledger.record_eval(rewards.numel(), tokens)
        correct = (rewards >= 1.0).sum(-1)
        out = {"eval/accuracy": (rewards >= 1.0).float().mean().item(), "eval/reward_mean": rewards.mean().item(),
               "eval/accuracy_se": eval_sampling_se(correct, n), "eval/score_timeouts": self.task.timeouts - timeouts0}
        for k in sorted({1, 2, 4, 8, n} & set(range(1, n + 1))):
            out[f"eval/pass@{k}"] = pass_at_k(n, correct, k).mean().item()
        out["eval/mixed_group_frac"] = ((correct > 0) & (correct < n)).float().mean().item()
        return out

    def _eval_point(self, budget_point: float) -> dict:
        row = {
            "step": self.step,
            "budget_point": budget_point,
            "unit": self.cfg.budget.unit,
            "rollouts": self.ledger.rollouts_generated,
            "tokens": self.ledger.tokens_generated,
            "flops": self.ledger.flops,
            "seconds": self.ledger.charged_seconds,
            "wall_seconds": self.ledger.wall_seconds,
            **self.evaluate(),
        }
        self.store.log_eval(row)
        return row

    # -- checkpointing -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "next_eval": self.next_eval,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ledger": self.ledger.state_dict(),
            "algo": self.algo.state_dict(),
            "rows": self.store.row_counts(),  # a resume cuts the JSONL files back to exactly these rows
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        self.next_eval = state["next_eval"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ledger = Ledger.from_state(state["ledger"])
        self.algo.load_state_dict(state["algo"])
        self.engine.sync_weights()

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self, on_eval: Callable[[list[dict]], None] | None = None) -> dict:
        """Train to the budget, resuming from the store's checkpoint; one process at a time per run directory.
        on_eval(all eval rows so far) is called after each evaluation (the tuner reports and prunes there)."""
        with exclusive(self.store.root / ".lock", f"the run {self.store.root}"), stop_requests() as stop:
            return self._run(on_eval or (lambda evals: None), stop)

    def _run(self, on_eval: Callable[[list[dict]], None], stop: Callable[[], int | None]) -> dict:
        b = self.cfg.budget
        config = resolved_config(self.cfg)
        env = {**environment(self.cfg.seed, self.cfg.threads), "warm_start": self.warm_start_info}
        stored = self.store.stored_config()
        if stored is not None and changed_fields(stored, config):
            raise ConfigError(f"{self.store.root}: holds a run with a different config; choose another name or out_dir")
        if self.store.summary().get("status") == "complete":
            return self.store.summary()
        try:
            state = self.store.load_checkpoint()
        except ValueError as e:  # named in the summary, so sweeps and status show which file to remove
            self.store.write_summary(status="failed", error=str(e), step=self.step)
            raise
        if state is not None:
            self.load_state_dict(state)
        self.store.truncate_to(state and state["rows"])
        self.store.start(config, env)
        mirror = None
        bar = tqdm(total=b.amount, unit=b.unit[:-1] if b.unit.endswith("s") else b.unit, disable=not self.progress, desc=self.cfg.run_name)
        bar.update(min(self.ledger.spent(b.unit), b.amount))
        evals = self.store.evals()
        last_eval: dict = evals[-1] if evals and evals[-1]["step"] == self.step else {}
        try:
            mirror = WandbMirror(self.cfg.wandb, self.store.root, config, env)  # inside: a W&B failure fails the run
            while True:
                spent = self.ledger.spent(b.unit)
                while spent >= self.next_eval and self.next_eval <= b.amount:
                    last_eval = self._eval_point(self.next_eval)
                    mirror.log(last_eval)
                    bar.set_postfix(acc=f"{last_eval['eval/accuracy']:.3f}")
                    self.next_eval = next_eval_point(self.next_eval, b.eval_every, b.eval_early)
                    on_eval(self.store.evals())
                if spent >= b.amount or (b.max_steps is not None and self.step >= b.max_steps):
                    break
                if stop():  # SIGINT/SIGTERM: keep every step done so far
                    self.store.save_checkpoint(self.state_dict())
                    self.store.write_summary(status="interrupted", step=self.step)
                    raise Interrupted(f"interrupted at step {self.step}; checkpoint saved in {self.store.ckpt_dir} "
                                      "(rerun the same command to resume)", stop())
                row = self.train_step()
                self.store.log_step(row)
                mirror.log(row)
                bar.update(min(self.ledger.spent(b.unit), b.amount) - bar.n)
                if self.step % self.cfg.train.checkpoint_every == 0:
                    self.store.save_checkpoint(self.state_dict())
            if not last_eval or last_eval["step"] != self.step:  # always end on an evaluation
                last_eval = self._eval_point(min(self.ledger.spent(b.unit), b.amount))
                mirror.log(last_eval)
        except BaseException as e:
            if not isinstance(e, Interrupted):
                self.store.write_summary(status="failed", error=f"{type(e).__name__}: {e}", step=self.step)
            if mirror is not None:
                mirror.finish()
            bar.close()
            raise
        bar.close()
        self.store.save_checkpoint(self.state_dict())
        first = self.store.evals()[0]
        final = {
            "status": "complete",
            "step": self.step,
            "final_accuracy": last_eval["eval/accuracy"],
            "initial_accuracy": first["eval/accuracy"],
            "eval_prompts": len(self.eval_problems),
            "eval_samples": self.cfg.budget.eval_samples,
            # what the report plots over training for this run: the trainer's and the algorithm's declared curves
            "diagnostics": plotted({**TRAINER_DIAGNOSTICS, **self.algo.diagnostics}),
            **{k: v for k, v in self.ledger.metrics().items()},
        }
        self.store.write_summary(**final)
        mirror.finish(final)
        return self.store.summary()
