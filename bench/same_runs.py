"""Do two results stores hold the same learning numbers, cell by cell? (a re-run, another commit, a subset)

    python bench/same_runs.py runs/maxpo /tmp/rerun/runs/maxpo

For every complete cell in both stores: the learning hash of its metrics and evaluations (clock fields left
out, as bench/learning_hash.py). Prints each cell that differs and a count; exits 1 if any differs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from learning_hash import learning_hash  # bench/ is first on sys.path

from harness.core.store import complete_runs, read_jsonl


def cell_hashes(store: Path) -> dict[str, str]:
    return {d.name: learning_hash(read_jsonl(d / "metrics.jsonl") + read_jsonl(d / "evals.jsonl")) for d in complete_runs(store)}


def main(a: str, b: str) -> int:
    if missing := [s for s in (a, b) if not Path(s).is_dir()]:
        sys.exit(f"same_runs: no results store at {', '.join(missing)} (give two folders such as runs/<sweep name>)")
    ha, hb = cell_hashes(Path(a)), cell_hashes(Path(b))
    common = sorted(set(ha) & set(hb))
    differ = [c for c in common if ha[c] != hb[c]]
    for c in differ:
        print(f"differs: {c}: {ha[c]} vs {hb[c]}")
    print(f"{len(common)} cells in both ({len(ha)} in {a}, {len(hb)} in {b}): {len(common) - len(differ)} identical, {len(differ)} differ")
    return 1 if differ or not common else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
