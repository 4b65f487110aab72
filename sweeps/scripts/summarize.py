"""Table of final accuracy and rollouts-to-target from a folder of finished runs (<algo>-s<seed>).

    python sweeps/scripts/summarize.py runs/issue3 [--baseline grpo]

Target = the baseline's final eval accuracy averaged over its seeds. Rollouts-to-target = the first eval
point (in charged rollouts) at which a run's eval accuracy reaches the target; '-' if it never does.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--baseline", default="grpo")
    args = ap.parse_args()
    runs = defaultdict(dict)
    for run in sorted(Path(args.root).iterdir()):
        summary = run / "summary.json"
        if not summary.exists() or json.loads(summary.read_text()).get("status") != "complete":
            continue
        algo, seed = run.name.rsplit("-s", 1)
        runs[algo][int(seed)] = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    if args.baseline not in runs:
        raise SystemExit(f"no finished {args.baseline} runs under {args.root}")
    target = statistics.mean(evals[-1]["eval/accuracy"] for evals in runs[args.baseline].values())
    print(f"target = {args.baseline} final accuracy {target:.3f} (mean over {len(runs[args.baseline])} seeds)")
    print(f"{'algo':<8} {'seeds':>5} {'initial':>8} {'final mean':>11} {'final sd':>9} {'best mean':>10}  rollouts to target per seed")
    for algo in sorted(runs, key=lambda a: (a != args.baseline, a)):
        seeds = runs[algo]
        finals = [e[-1]["eval/accuracy"] for e in seeds.values()]
        bests = [max(x["eval/accuracy"] for x in e) for e in seeds.values()]
        reach = [next((x["rollouts"] for x in e if x["eval/accuracy"] >= target), None) for e in seeds.values()]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        init = statistics.mean(e[0]["eval/accuracy"] for e in seeds.values())
        print(f"{algo:<8} {len(seeds):>5} {init:>8.3f} {statistics.mean(finals):>11.3f} {sd:>9.3f} {statistics.mean(bests):>10.3f}  "
              + ", ".join("-" if r is None else f"{r:,}" for r in reach))


if __name__ == "__main__":
    main()
