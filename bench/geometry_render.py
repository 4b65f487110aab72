"""Cost of the geometry task's images: Pillow rendering per question kind, and the vision policy's per-image work.

    python bench/geometry_render.py [--n 2000] [--image-size 64] [--grid 8]

Prints milliseconds per rendered problem for each kind (best of 3 passes over n draws), the time to build a
task's default splits, and pixels-to-patch-embeddings time per image for the embedded vision encoder.
"""
from __future__ import annotations

import argparse
import random
import time

import torch

from harness.config import PolicyConfig, from_dict
from harness.engines.policy import embedded_policy
from tasks.geometry import GENERATORS, KINDS, Geometry, GeometryConfig


def best_ms_per_item(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1000 * best / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--grid", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = from_dict(GeometryConfig, {"image_size": args.image_size, "grid": args.grid})
    cfg.validate()
    print(f"rendering {args.image_size}x{args.image_size} px, {args.grid}x{args.grid} grid (Pillow), 1 thread, best of 3")
    for kind in KINDS:
        def draw(kind=kind):
            for i in range(args.n):
                GENERATORS[kind](cfg, random.Random(i))
        print(f"  {kind:<12} {best_ms_per_item(draw, args.n):6.3f} ms/image")
    t = time.perf_counter()
    task = Geometry(cfg)
    n = cfg.train_size + cfg.eval_size
    print(f"task splits ({n} distinct problems, de-duplicated): {time.perf_counter() - t:.2f} s = {1000 * (time.perf_counter() - t) / n:.3f} ms/problem")
    policy = embedded_policy(PolicyConfig(image_size=args.image_size), seed=0, vision=True)
    probs = task.problems("train")[:256]
    _, pixels = policy.prompt_inputs(probs)
    with torch.no_grad():
        enc_ms = best_ms_per_item(lambda: policy.model.vision(pixels), len(probs))
    prep_ms = best_ms_per_item(lambda: policy.prompt_inputs(probs), len(probs))
    print(f"vision policy: pixels + tokens {prep_ms:.3f} ms/image, patch encoder {enc_ms:.3f} ms/image (batch 256)")


if __name__ == "__main__":
    main()
