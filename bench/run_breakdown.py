"""End-to-end throughput and where a finished run's charged time went.

    python bench/run_breakdown.py runs/grpo-arithmetic-s0 [more run dirs]

Prints charged rollouts/s and the share of charged time per phase, including the share outside
generate + update (scoring, selection, bookkeeping) that the engine should keep small.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PHASES = ("generate", "score", "select", "update", "overhead")


def main(paths: list[str]) -> None:
    for path in paths:
        s = json.loads((Path(path) / "summary.json").read_text())
        charged = s["time/charged"]
        shares = {p: s[f"time/{p}"] / charged for p in PHASES}
        outside = 1 - shares["generate"] - shares["update"]
        print(f"{path}: {s['ledger/rollouts']} rollouts in {charged:.1f} s charged = {s['ledger/rollouts'] / charged:.0f} rollouts/s")
        print("  " + "  ".join(f"{p} {100 * v:.1f}%" for p, v in shares.items()) + f"  | outside generate+update {100 * outside:.2f}%")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(str(p.parent) for p in Path("runs").glob("*/summary.json")))
