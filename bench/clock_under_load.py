"""Charged seconds under load: the same run alone and beside busy processes, CPU clock vs wall-clock.

    python bench/clock_under_load.py [--hogs 2] [--rollouts 20000]

Runs one short GRPO run (the preset model, 1 thread) twice: first alone, then with `--hogs` busy-looping
processes on the same cores. Prints, for each, the charged seconds (process CPU time, what budgets and the
seconds axis count) and the wall-clock seconds, and the loaded / alone ratio of each. A load-robust clock has a
ratio near 1; wall-clock grows with the load. The learning metrics of both runs are identical (same seed).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time

from trainer import PRESET_MODEL  # bench/trainer.py (this script's folder is first on sys.path)

from harness.config import load_config
from harness.core.trainer import Trainer

PRESET = [*PRESET_MODEL, "task_args.train_size=2000", "threads=1", "wandb.mode=disabled"]


def hog(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def one_run(out: str, name: str, rollouts: int) -> dict:
    cfg = load_config(None, PRESET + [f"out_dir={out}", f"name={name}", f"budget.amount={rollouts}", f"budget.eval_every={rollouts}"])
    summary = Trainer(cfg, progress=False).run()
    evals = [json.loads(line) for line in open(os.path.join(out, name, "evals.jsonl"))]
    return {"cpu": summary["time/charged"], "wall": summary["wall/charged"], "acc": [e["eval/accuracy"] for e in evals]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--rollouts", type=int, default=20000)
    args = ap.parse_args()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        one_run(out, "warmup", 512)  # builds / loads the cached warm start outside the timed runs
        alone = one_run(out, "alone", args.rollouts)
        hogs = [mp.Process(target=hog, args=(time.time() + 3600,), daemon=True) for _ in range(args.hogs)]
        for h in hogs:
            h.start()
        try:
            loaded = one_run(out, "loaded", args.rollouts)
        finally:
            for h in hogs:
                h.terminate()
    print(f"{'':>22} {'alone':>8} {'loaded':>8} {'loaded / alone':>15}")
    for key, label in (("cpu", "charged s (CPU time)"), ("wall", "wall-clock s")):
        print(f"{label:>22} {alone[key]:>8.2f} {loaded[key]:>8.2f} {loaded[key] / alone[key]:>15.2f}")
    print(f"learning identical: {alone['acc'] == loaded['acc']}  ({args.hogs} busy processes on {os.cpu_count()} cores; "
          f"1-min load average at the start: {load_at_start:.2f})")


if __name__ == "__main__":
    main()
