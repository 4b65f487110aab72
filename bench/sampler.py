"""Throughput of our KV-cache sampler vs `model.generate` on the same model, prompts and batch.

    python bench/sampler.py [--batch 256] [--max-new 32] [--warm-start-task arithmetic] [--repeats 5]

Prints sequences/s for both and the ratio, for (a) the untrained embedded model (few rows stop early: the
worst case for us) and (b) the cached warm start of a task, if present (rows stop at EOS, as in RL);
each with 256 distinct prompts and with the RL layout (32 prompts x 8 samples each).
Both engines sample at T=1, top-p 1, and stop when every row has emitted EOS. "bound" is the matmul-bound
rate of our work: fp32 matmul peak (1024^3, same threads, this run) over 2 x (non-embedding + LM-head
parameters) FLOPs per token processed (each distinct prompt's tokens once, then every generated token).
"""
from __future__ import annotations

import argparse
import time

import torch
from transformers.utils import logging as hf_logging

from harness.config import load_config
from harness.engines.policy import embedded_policy, left_pad, load_policy
from harness.engines.sampler import TorchSampler
from harness.experiments.pretrain import warm_start_dir
from harness.registry import TASKS, resolve_plugins


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak() -> float:
    """fp32 GFLOP/s of a 1024^3 matmul at the current thread count, best of 5."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / best_of(lambda: a @ b, 5) / 1e9


def matmul_bound(policy, prompts, generation, peak: float) -> float:
    """Sequences/s if every matmul of our sampler's work ran at `peak` GFLOP/s."""
    head = policy.model.get_output_embeddings().weight.numel()
    tokens = sum(len(p) for p in {tuple(p) for p in prompts}) + int(generation.completion_mask.sum())
    return len(prompts) / (2 * (policy.non_embedding_params + head) * tokens / (peak * 1e9))


def compare(policy, prompts, max_new: int, repeats: int, temperature: float = 1.0) -> tuple[float, float, float]:
    """(our seq/s, generate's seq/s, ratio) on the same prompts, both stopping at any of the policy's EOS ids."""
    ours = TorchSampler(policy.model, policy.eos_ids, policy.pad_id)
    t_ours = best_of(lambda: ours.generate(prompts, max_new_tokens=max_new, temperature=temperature, seed=0), repeats)
    ids, mask = left_pad(prompts, policy.pad_id)
    gen_kwargs = dict(do_sample=True, max_new_tokens=max_new, temperature=temperature, top_p=1.0, top_k=0,
                      pad_token_id=policy.pad_id, eos_token_id=policy.eos_ids)
    with torch.no_grad():
        t_hf = best_of(lambda: policy.model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs), repeats)
    n = len(prompts)
    return n / t_ours, n / t_hf, t_hf / t_ours


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--warm-start-task", default="arithmetic")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--group-size", type=int, default=8, help="the RL batch: batch/group_size prompts x group_size samples")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    cfg = load_config(None, [f"task={args.warm_start_task}"])
    _, task_cfg = resolve_plugins(cfg)
    task = TASKS.get(cfg.task).obj(task_cfg)
    problems = task.problems("train")
    layouts = {
        "distinct prompts": [p.prompt for p in problems[: args.batch]],
        f"{args.batch // args.group_size} prompts x {args.group_size}": [
            p.prompt for p in problems[: args.batch // args.group_size] for _ in range(args.group_size)
        ],
    }
    cases = [("untrained embedded model", embedded_policy(cfg.policy, seed=0))]
    path = warm_start_dir(cfg)
    if (path / "meta.json").exists():
        cases.append((f"warm start ({cfg.task})", load_policy(path)))
    else:
        print(f"(no cached warm start for {cfg.task}: run `rlvr pretrain task={cfg.task}` for the RL-realistic case)")
    peak = matmul_peak()
    print(f"batch {args.batch}, max_new_tokens {args.max_new}, {args.threads} threads, best of {args.repeats}, fp32 matmul peak {peak:.0f} GFLOP/s")
    for name, policy in cases:
        for layout, texts in layouts.items():
            prompts = policy.encode(texts)
            ours, hf, ratio = compare(policy, prompts, args.max_new, args.repeats)
            gen = TorchSampler(policy.model, policy.eos_ids, policy.pad_id).generate(prompts, max_new_tokens=args.max_new, seed=0)
            bound = matmul_bound(policy, prompts, gen, peak)
            print(f"{name:<26} {layout:<17} ours {ours:6.0f} seq/s   generate {hf:6.0f} seq/s   ratio {ratio:5.2f}x"
                  f"   bound {bound:6.0f} seq/s (ours {100 * ours / bound:4.1f}%)")


if __name__ == "__main__":
    main()
