"""Throughput of engine=vllm vs our torch sampler on the same model, prompts and sampling settings.

    python bench/vllm_vs_torch.py [--batch 256] [--max-new 32] [--repeats 5] [--device cpu|cuda]
                         [--hidden 128 --layers 4 --heads 4 --kv-heads 2]   # a larger model: --hidden 768 --layers 12 --heads 12 --kv-heads 2

Needs vLLM (`make vllm-env`, then `.venv-vllm/bin/python bench/vllm_vs_torch.py`; on a GPU machine `pip install -e '.[vllm]'`).
Prints sequences/s of both engines and the ratio (vllm / torch), for the untrained model built from the given
config (rows never stop early) and, with the default config, the cached arithmetic warm start (rows stop at EOS
as in RL); each with distinct prompts and with the RL layout (prompts x group_size samples). Also the time of
one in-place weight sync. Both engines sample at T=1, top-p 1, one seed per request.
"""
from __future__ import annotations

import argparse

import torch
from sampler import best_of  # bench/sampler.py (this script's folder is first on sys.path)

from harness.config import load_config
from harness.engines.policy import embedded_policy, load_policy
from harness.engines.sampler import TorchSampler, build_engine
from harness.experiments.pretrain import warm_start_dir
from harness.registry import TASKS, resolve_plugins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = [f"policy.hidden_size={args.hidden}", f"policy.num_layers={args.layers}", f"policy.num_heads={args.heads}",
            f"policy.num_kv_heads={args.kv_heads}", f"policy.intermediate_size={4 * args.hidden}"]
    cfg = load_config(None, ["task=arithmetic", *arch])
    _, task_cfg = resolve_plugins(cfg)
    problems = TASKS.get("arithmetic").obj(task_cfg).problems("train")
    layouts = {
        "distinct prompts": [p.prompt for p in problems[: args.batch]],
        f"{args.batch // args.group_size} prompts x {args.group_size}": [p.prompt for p in problems[: args.batch // args.group_size] for _ in range(args.group_size)],
    }
    dtype = getattr(torch, args.dtype)
    cases = [("untrained model", embedded_policy(cfg.policy, seed=0))]
    default_arch = (args.hidden, args.layers, args.heads, args.kv_heads) == (128, 4, 4, 2)
    if default_arch and (warm_start_dir(cfg) / "meta.json").exists():
        cases.append(("warm start (arithmetic)", load_policy(warm_start_dir(cfg))))
    n_params = sum(p.numel() for p in cases[0][1].model.parameters())
    print(f"model {n_params / 1e6:.2f}M params ({args.dtype}) on {args.device}; batch {args.batch}, max_new_tokens {args.max_new}, "
          f"{args.threads} torch threads, best of {args.repeats}")
    for name, policy in cases:
        model = policy.model.to(device=args.device, dtype=dtype).eval()
        ours = TorchSampler(model, policy.eos_id, policy.pad_id)
        engine = build_engine("vllm", model, policy.eos_id, policy.pad_id)
        sync = best_of(engine.sync_weights, args.repeats)
        for layout, texts in layouts.items():
            prompts = policy.encode(texts)
            n = len(prompts)
            t_ours = best_of(lambda: ours.generate(prompts, max_new_tokens=args.max_new, seed=0), args.repeats)
            t_vllm = best_of(lambda: engine.generate(prompts, max_new_tokens=args.max_new, seed=0), args.repeats)
            print(f"{name:<24} {layout:<17} torch {n / t_ours:7.0f} seq/s   vllm {n / t_vllm:7.0f} seq/s   "
                  f"ratio vllm/torch {t_ours / t_vllm:5.2f}x   weight sync {1000 * sync:.0f} ms")
        engine = None  # free vLLM's KV cache before the next model's engine


if __name__ == "__main__":
    main()
