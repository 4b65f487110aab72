"""Trainer update throughput against the machine's matmul peak, measured in the same run.

    python bench/trainer.py [--threads 1 2] [--repeats 5] [--sizes preset default] [--profile]

For each model size: one GRPO step's batch (prompts_per_step x group_size rollouts of arithmetic from the
untrained embedded model, so the completions run to the length cap), then `Trainer.update` on it (forward,
backward, gradient clipping, AdamW) timed best of `repeats`. The achieved rate is 6 N FLOPs per trained token
(N = non-embedding parameters, the ledger's convention) over the time, as a share of fp32 matmul peak
(1024^3, same threads). --profile prints the top operators of one update.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from harness.config import load_config
from harness.core.trainer import Trainer

# the model every paper preset and the quickstart use (64 wide, 2 blocks); the other bench scripts import it
PRESET_MODEL = ["policy.hidden_size=64", "policy.num_layers=2", "policy.num_heads=4", "policy.num_kv_heads=2", "policy.intermediate_size=256"]
SIZES = {"preset": PRESET_MODEL, "default": []}


def matmul_peak(threads: int) -> float:
    """fp32 GFLOP/s of a 1024^3 matmul, best of 5."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 1024**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def one_batch(trainer: Trainer):
    ctx = trainer.context()
    batch = trainer.algo.select(ctx, trainer.algo.collect(ctx))
    return batch, trainer.algo.advantages(ctx, batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    for threads in args.threads:
        peak = matmul_peak(threads)
        print(f"{threads} thread(s): fp32 matmul peak {peak:.0f} GFLOP/s")
        for size in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = load_config(None, ["task=arithmetic", "policy.warm_start=false", f"threads={threads}", f"out_dir={tmp}", *SIZES[size]])
                trainer = Trainer(cfg, progress=False)
                batch, adv = one_batch(trainer)
                trainer.update(batch, adv)  # warm-up
                best = min(_timed(lambda: trainer.update(batch, adv)) for _ in range(args.repeats))
                tokens = int(batch.prompt_mask.sum() + batch.completion_mask.sum())
                flops = 3 * trainer.ledger.flops_per_token * tokens
                rate = flops / best / 1e9
                print(f"  {size:<8} N={trainer.policy.non_embedding_params / 1e6:.2f}M  batch {len(batch)} x {batch.prompt_ids.shape[1]}+{batch.completion_ids.shape[1]}"
                      f"  {tokens / best:7.0f} tokens/s  {rate:5.1f} GFLOP/s = {100 * rate / peak:4.1f}% of peak")
                if args.profile:
                    from torch.profiler import profile

                    with profile() as p:
                        trainer.update(batch, adv)
                    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
