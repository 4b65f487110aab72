"""End-to-end throughput and where a finished run's charged time went.

    python bench/run_breakdown.py runs/grpo-arithmetic-s0 [more run dirs, or sweep dirs: their cells summed]

Prints charged rollouts/s and the share of charged time per phase, including the share outside
generate + update (scoring, selection, bookkeeping) that the engine should keep small.
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness.core.store import RunStore, complete_runs

PHASES = ("generate", "score", "select", "update", "overhead")


def summaries(path: Path) -> list[dict]:
    """The summary of a run directory, or those of every complete cell of a sweep directory."""
    if (path / "summary.json").exists():
        return [RunStore(path).summary()]
    runs = complete_runs(path) if path.is_dir() else []
    if not runs:
        sys.exit(f"{path}: neither a run directory nor a sweep directory with complete runs")
    return [RunStore(d).summary() for d in runs]


def main(paths: list[str]) -> None:
    for path in paths:
        runs = summaries(Path(path))
        charged = sum(s["time/charged"] for s in runs)
        rollouts = sum(s["ledger/rollouts"] for s in runs)
        shares = {p: sum(s[f"time/{p}"] for s in runs) / charged for p in PHASES}
        outside = 1 - shares["generate"] - shares["update"]
        cells = f" ({len(runs)} runs)" if len(runs) > 1 else ""
        print(f"{path}{cells}: {rollouts} rollouts in {charged:.1f} s charged = {rollouts / charged:.0f} rollouts/s")
        print("  " + "  ".join(f"{p} {100 * v:.1f}%" for p, v in shares.items()) + f"  | outside generate+update {100 * outside:.2f}%")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(str(p.parent) for p in Path("runs").glob("*/summary.json")))
