"""What starting a sweep job costs: a cell forked from the local executor's preloaded server vs the same cell in
a fresh `python -P -m harness.experiments.worker` process (what the executor did before, and what Ray does).

    python bench/sweep_jobs.py [--repeats 5] [--budget 64]

Runs one tiny cell (the presets' 64-wide model, no warm start, W&B off) `repeats` times each way, alternating,
and prints the median wall seconds per job and the ratio. The difference is the per-job fixed cost a sweep
pays once per cell; for the quickstart's cells (~15 s of training and evaluation each) it was ~2.5-3 s.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from trainer import PRESET_MODEL  # bench/trainer.py (this script's folder is first on sys.path)

from harness.config import load_config
from harness.experiments.executors import LocalExecutor, run_job_process, worker_env
from harness.experiments.runner import Job
from harness.plain import to_dict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=int, default=64, help="rollouts per cell")
    args = ap.parse_args()
    ex = LocalExecutor(1, 1)
    times: dict[str, list[float]] = {"forked": [], "process": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats + 1):  # the first round starts the server: not counted
            for how in times:
                cfg = load_config(None, ["task=arithmetic", *PRESET_MODEL, "policy.warm_start=false", f"budget.amount={args.budget}",
                                         f"budget.eval_every={args.budget}", "budget.eval_prompts=16", "wandb.mode=disabled",
                                         "threads=1", f"out_dir={tmp}/{how}", f"name=r{i}"])
                job = Job(f"r{i}", "run", to_dict(cfg), [], Path(tmp) / f"{how}-{i}.log")
                start = time.perf_counter()
                if how == "forked":
                    ex.submit(job)
                    while not ex.wait(0.01):
                        pass
                else:
                    run_job_process(job.command(), str(job.log), worker_env(1), str(Path.cwd()))
                if i:
                    times[how].append(time.perf_counter() - start)
    ex.shutdown()
    forked, process = (statistics.median(times[k]) for k in ("forked", "process"))
    print(f"one {args.budget}-rollout cell, median of {args.repeats}: fresh process {process:.2f} s, forked {forked:.2f} s; "
          f"{process - forked:.2f} s saved per job ({process / forked:.2f}x)")


if __name__ == "__main__":
    main()
