"""`rlvr report`: comparison figures and tables with confidence intervals, from the local results store only.

    rlvr report sweeps/popo.yaml                 # or a results directory such as runs/popo
    rlvr report --compare runs/popo-old runs/popo   # what changed between two sweeps, with significance

Writes reports/<name>/report.md, a self-contained report.html (figures embedded), figures/*.png and *.svg,
and data.json (every number in the tables). Statistics (harness/stats.py): mean and 95% percentile-bootstrap
CIs over seeds, curves interpolated onto a common budget grid, budget-to-target with CIs, IQM with
stratified bootstrap CIs and probability of improvement across tasks.
"""
from __future__ import annotations

import base64
import html
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness import stats
from harness.config import ConfigError
from harness.store import atomic_write, read_jsonl

AXES = {"rollouts": "rollouts generated", "flops": "FLOPs (generation, forward, training)", "seconds": "charged wall-clock (s)"}
PURPOSES = ("train", "replaced", "discarded", "downsampled", "profile")  # generated rollouts by what became of them
PHASES = ("generate", "score", "select", "update", "overhead")
DIAGNOSTICS = {
    "train/effective_group_frac": "effective-group fraction (generated)",
    "grad/norm": "gradient norm",
    "offpolicy/is_weight_mean": "IS weight mean (replayed)",
    "offpolicy/staleness": "staleness (steps)",
    "replay/frac": "replayed fraction of the batch",
    "pods/kept_reward_var": "kept reward variance (PODS)",
}
PALETTE = {"grpo": "#4d4d4d", "dr_grpo": "#8c564b", "rloo": "#e377c2", "dapo": "#1f77b4", "popo": "#d62728",
           "sgpo": "#2ca02c", "pods": "#ff7f0e", "maxpo": "#9467bd"}
EXTRA_COLOURS = ["#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#ffbb78"]


@dataclass
class Run:
    name: str
    method: str  # the sweep's algo label, with the variant label appended when there is one
    algorithm: str  # the registered algorithm behind the label
    task: str
    seed: int
    evals: list[dict]
    metrics: list[dict]
    summary: dict

    def curve(self, x: str, y: str = "eval/accuracy") -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.evals if y in r]
        return np.array([r[x] for r in rows], dtype=float), np.array([r[y] for r in rows], dtype=float)

    def final(self, y: str = "eval/accuracy") -> float:
        return float(self.evals[-1][y])


@dataclass
class Results:
    name: str
    root: Path
    runs: list[Run]
    skipped: list[str] = field(default_factory=list)  # cells without a complete result, and why
    claim: dict | None = None
    unit: str = "rollouts"

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.runs))

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.runs))

    def group(self, task: str, method: str) -> list[Run]:
        return sorted((r for r in self.runs if r.task == task and r.method == method), key=lambda r: r.seed)


def load_results(source: str | Path) -> Results:
    """A sweep file (its out_dir) or a results directory -> the complete runs in it, with their axes."""
    source = Path(source)
    claim = None
    if source.is_file():
        from harness.sweep import load_sweep

        sweep = load_sweep(source)
        root, name, claim = sweep.out_dir, sweep.name, sweep.raw.get("claim")
    else:
        root, name = source, source.name
        if (root / "sweep.yaml").exists():
            claim = (yaml.safe_load((root / "sweep.yaml").read_text()) or {}).get("claim")
    if not root.is_dir():
        raise ConfigError(f"{root}: no results directory (run the sweep first)")
    manifest = root / "cells.json"
    if manifest.exists():
        cells = json.loads(manifest.read_text())["cells"]
        name = json.loads(manifest.read_text()).get("name", name)
    else:  # any directory of runs: axes from each run's stored config
        cells = []
        for cfg_path in sorted(root.glob("*/config.yaml")):
            cfg = yaml.safe_load(cfg_path.read_text())
            cells.append({"name": cfg_path.parent.name, "algo": cfg["algo"], "task": cfg["task"], "variant": None,
                          "seed": cfg["seed"], "algorithm": cfg["algo"], "unit": cfg["budget"]["unit"]})
    runs, skipped = [], []
    for c in cells:
        run_dir = root / c["name"]
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
        if summary.get("status") != "complete":
            skipped.append(f"{c['name']}: {summary.get('status', 'not run')}")
            continue
        method = c["algo"] + (f"-{c['variant']}" if c.get("variant") else "")
        runs.append(Run(c["name"], method, c["algorithm"], c["task"], c["seed"], read_jsonl(run_dir / "evals.jsonl"),
                        read_jsonl(run_dir / "metrics.jsonl"), summary))
    if not runs:
        raise ConfigError(f"{root}: no complete runs to report ({len(skipped)} cells not complete)")
    units = {c.get("unit", "rollouts") for c in cells}
    return Results(name, root, runs, skipped, claim, units.pop() if len(units) == 1 else "rollouts")


# ----------------------------------------------------------------------------------------------------------------
# Numbers


def seed_curves(runs: list[Run], x: str, y: str = "eval/accuracy", points: int = 61, xmax: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(grid [points], curves [seeds, points]): each seed's curve interpolated onto a grid from 0 to the
    smallest last x among the seeds (or xmax), so no seed is extrapolated."""
    ends = [run.curve(x, y)[0][-1] for run in runs]
    grid = np.linspace(0.0, min(ends) if xmax is None else xmax, points)
    return grid, np.stack([stats.interpolate(*run.curve(x, y), grid) for run in runs])


def band(curves: np.ndarray, reps: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a 95% percentile-bootstrap band, per grid point. curves [seeds, points]."""
    mean = curves.mean(0)
    if len(curves) < 2:
        return mean, mean, mean
    idx = np.random.default_rng(seed).integers(0, len(curves), size=(reps, len(curves)))
    boot = curves[idx].mean(1)  # [reps, points]
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return mean, lo, hi


def fmt_ci(point: float, lo: float, hi: float, digits: int = 3) -> str:
    def f(v: float) -> str:
        if math.isinf(v):
            return "never" if v > 0 else "-inf"
        if math.isnan(v):
            return "n/a"
        if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3):
            return f"{v:.{digits}g}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"

    return f"{f(point)} [{f(lo)}, {f(hi)}]" if not math.isnan(lo) else f(point)


def final_table(res: Results, y: str = "eval/accuracy") -> list[dict]:
    rows = []
    for task in res.tasks:
        for method in res.methods:
            runs = res.group(task, method)
            if runs:
                finals = np.array([r.final(y) for r in runs])
                aucs = [_auc(r) for r in runs]
                rows.append({"task": task, "method": method, "seeds": len(runs), "final": stats.bootstrap_ci(finals),
                             "auc": stats.bootstrap_ci(np.array(aucs)), "initial": float(np.mean([r.evals[0][y] for r in runs]))})
    return rows


def _auc(run: Run) -> float:
    from harness.tune import objective_value

    return objective_value(run.evals, "auc")


def target_table(res: Results, baseline: str, axes: tuple[str, ...] = ("rollouts", "flops"), target: str = "final") -> list[dict]:
    """Budget each method needs to reach the baseline's final accuracy (or 99% of its peak), with CIs."""
    rows = []
    pick = {"final": lambda c: float(c[-1]), "peak99": lambda c: 0.99 * float(np.nanmax(c))}[target]
    for task in res.tasks:
        base = res.group(task, baseline)
        if not base:
            continue
        for axis in axes:
            gb, cb = seed_curves(base, axis)
            for method in res.methods:
                runs = res.group(task, method)
                if not runs or method == baseline:
                    continue
                gm, cm = seed_curves(runs, axis)
                out = stats.speedup_ci(gb, cb, gm, cm, pick)
                rows.append({"task": task, "axis": axis, "method": method, **out})
    return rows


def aggregate_table(res: Results, baseline: str, y: str = "eval/accuracy") -> list[dict]:
    """IQM of final accuracy across tasks x seeds (stratified bootstrap CI) and P(method > baseline)."""
    def scores(method: str) -> np.ndarray | None:
        cols = [[r.final(y) for r in res.group(t, method)] for t in res.tasks]
        if any(not c for c in cols):
            return None
        n = min(len(c) for c in cols)
        return np.array([c[:n] for c in cols]).T  # [runs, tasks]

    base = scores(baseline)
    rows = []
    for method in res.methods:
        s = scores(method)
        if s is None:
            continue
        row = {"method": method, "iqm": stats.stratified_bootstrap_ci(s), "mean": stats.stratified_bootstrap_ci(s, np.mean)}
        if base is not None and method != baseline:
            row["poi"] = stats.probability_of_improvement_ci(s, base)
        rows.append(row)
    return rows


def compute_table(res: Results) -> list[dict]:
    """Per task and method, means over seeds of what was generated (by purpose), trained, replayed, FLOPs
    and seconds by phase, from each run's final ledger."""
    rows = []
    for task in res.tasks:
        for method in res.methods:
            runs = res.group(task, method)
            if not runs:
                continue
            s = [r.summary for r in runs]

            def mean(key: str) -> float:
                return float(np.mean([x.get(key, 0.0) for x in s]))

            rows.append({
                "task": task, "method": method,
                "rollouts": mean("ledger/rollouts"),
                "by_purpose": {p: mean(f"ledger/rollouts_{p}") for p in PURPOSES},
                "replayed": mean("ledger/rollouts_replayed"),
                "trained": mean("ledger/rollouts_trained"),
                "flops": mean("ledger/flops"),
                "seconds": {p: mean(f"time/{p}") for p in PHASES},
                "charged": mean("time/charged"),
            })
    return rows


def ablation_table(res: Results, y: str = "eval/accuracy") -> list[dict]:
    """Each method whose algorithm has a 'full' method (label == algorithm name) against it: final accuracy
    difference with a bootstrap CI over seeds and P(ablation > full)."""
    algo_of = {r.method: r.algorithm for r in res.runs}
    rows = []
    for method, algorithm in algo_of.items():
        if method == algorithm or algorithm not in algo_of:
            continue
        for task in res.tasks:
            a, f = res.group(task, method), res.group(task, algorithm)
            if not a or not f:
                continue
            xa, xf = np.array([r.final(y) for r in a]), np.array([r.final(y) for r in f])
            rows.append({"task": task, "method": method, "full": algorithm, "ablation": float(xa.mean()), "full_mean": float(xf.mean()),
                         "diff": diff_ci(xa, xf), "poi": stats.probability_of_improvement_ci(xa[:, None], xf[:, None])})
    return rows


def diff_ci(a: np.ndarray, b: np.ndarray, reps: int = 4_000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile-bootstrap CI (seeds of a and b resampled independently)."""
    rng = np.random.default_rng(seed)
    boot = a[rng.integers(0, len(a), (reps, len(a)))].mean(1) - b[rng.integers(0, len(b), (reps, len(b)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------------
# The claim a preset sweep tests


def decide_claim(res: Results, claim: dict) -> tuple[str, list[dict]]:
    """One sentence: did the sweep file's `claim` hold, and the CI that decides it. The claim is
    {text, method, baseline, test: speedup | poi, axis (speedup), target: final | peak99 (speedup), metric}."""
    method, baseline, test = claim["method"], claim["baseline"], claim.get("test", "speedup")
    text = claim["text"].rstrip(".")
    if test == "speedup":
        axis, target = claim.get("axis", "rollouts"), claim.get("target", "final")
        rows = [r for r in target_table(res, baseline, (axis,), target) if r["method"] == method]
        parts, held, against = [], 0, 0
        for r in rows:
            p, lo, hi = r["speedup"]
            held, against = held + (lo > 1.0), against + (hi < 1.0)
            word = "held" if lo > 1.0 else "contradicted" if hi < 1.0 else "inconclusive"
            parts.append(f"{r['task']}: {fmt_ci(p, lo, hi, 2)}x ({word})")
        verdict = ("held" if rows and held == len(rows) else "was contradicted" if rows and against == len(rows)
                   else "held on some tasks only" if held else "was not shown")
        what = f"{axis} to reach {'99% of the peak of' if target == 'peak99' else 'the final accuracy of'} {baseline}"
        return (f"**Claim: {text} — {verdict} on this setup** (held on {held}/{len(rows)} tasks). Speed-up in {what}, "
                f"{baseline} / {method}, 95% CI over seeds (0 = never reached); it holds where the CI lies above 1 and is "
                f"contradicted where it lies below 1: {'; '.join(parts)}."), rows
    metric = claim.get("metric", "eval/accuracy")
    agg = {r["method"]: r for r in aggregate_table(res, baseline, metric)}
    if method not in agg or "poi" not in agg[method]:
        return f"**Claim: {text} — not decidable** (no complete runs of {method} and {baseline} on every task).", []
    p, lo, hi = agg[method]["poi"]
    verdict = "held" if lo > 0.5 else ("was contradicted" if hi < 0.5 else "was not shown")
    return (f"**Claim: {text} — {verdict} on this setup.** P({method} > {baseline}) on final {metric} across tasks x seeds = "
            f"{fmt_ci(p, lo, hi)} (stratified bootstrap 95% CI; it holds where the CI lies above 0.5)."), [agg[method]]


# ----------------------------------------------------------------------------------------------------------------
# Figures


def colours(methods: list[str]) -> dict[str, str]:
    out, extra = {}, iter(EXTRA_COLOURS * 4)
    for m in methods:
        out[m] = PALETTE.get(m) or next(extra)
    return out


def _style():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 110,
                         "svg.fonttype": "none", "savefig.bbox": "tight"})
    return plt


def fig_curves(res: Results, axis: str, colour: dict, y: str = "eval/accuracy"):
    plt = _style()
    fig, axes = plt.subplots(1, len(res.tasks), figsize=(4.6 * len(res.tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], res.tasks):
        for method in res.methods:
            runs = res.group(task, method)
            if not runs:
                continue
            grid, curves = seed_curves(runs, axis, y)
            mean, lo, hi = band(curves)
            ax.plot(grid, mean, color=colour[method], label=f"{method} (n={len(runs)})", lw=1.8)
            ax.fill_between(grid, lo, hi, color=colour[method], alpha=0.18, lw=0)
        ax.set_title(task)
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel(f"{y} (held-out)")
        ax.grid(alpha=0.25)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"{y} vs {AXES[axis]}: mean and 95% bootstrap CI over seeds", fontsize=11, y=1.03)
    return fig


def fig_diagnostics(res: Results, colour: dict):
    keys = [k for k in DIAGNOSTICS if any(k in m for r in res.runs for m in r.metrics)]
    if not keys:
        return None
    plt = _style()
    fig, axes = plt.subplots(len(res.tasks), len(keys), figsize=(3.6 * len(keys), 2.8 * len(res.tasks)), squeeze=False)
    for i, task in enumerate(res.tasks):
        for j, key in enumerate(keys):
            ax = axes[i][j]
            for method in res.methods:
                runs = [r for r in res.group(task, method) if any(key in m for m in r.metrics)]
                if not runs:
                    continue
                curves = []
                for r in runs:
                    x = np.array([m["rollouts"] for m in r.metrics], dtype=float)
                    v = np.array([m.get(key, np.nan) for m in r.metrics], dtype=float)
                    curves.append((x, v))
                grid = np.linspace(0, min(c[0][-1] for c in curves), 41)
                ys = np.stack([stats.interpolate(x, v, grid) for x, v in curves])
                if np.isnan(ys).all():
                    continue
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # steps where no seed logged the key
                    ax.plot(grid, np.nanmean(ys, 0), color=colour[method], label=method, lw=1.4)
            ax.set_title(f"{task}: {DIAGNOSTICS[key]}", fontsize=9)
            ax.set_xlabel("rollouts generated")
            ax.grid(alpha=0.25)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    fig.suptitle("diagnostics over training (mean over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def fig_targets(rows: list[dict], baseline: str, colour: dict):
    if not rows:
        return None
    plt = _style()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    axes_ = list(dict.fromkeys(r["axis"] for r in rows))
    fig, axes = plt.subplots(len(axes_), len(tasks), figsize=(4.6 * len(tasks), 0.4 * len(rows) / len(tasks) + 1.8 * len(axes_)), squeeze=False)
    for i, axis in enumerate(axes_):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            sel = [r for r in rows if r["task"] == task and r["axis"] == axis]
            finite = [v for r in sel for v in r["method_budget"] if math.isfinite(v)]
            never = 1.05 * max(finite + [1.0])  # where a bar that never reached the target ends
            for k, r in enumerate(sel):
                p, lo, hi = (v if math.isfinite(v) else never for v in r["method_budget"])
                reached = math.isfinite(r["method_budget"][0])
                ax.barh(k, p, color=colour[r["method"]], alpha=0.85 if reached else 0.2)
                if reached:
                    ax.errorbar(p, k, xerr=[[p - lo], [hi - p]], color="k", capsize=3, lw=1)
            ax.set_yticks(range(len(sel)), [f"{r['method']}\n{r['speedup'][0]:.2f}x" if math.isfinite(r["method_budget"][0]) else f"{r['method']}\nnever"
                                            for r in sel])
            ax.set_xlabel(AXES[axis])
            ax.set_title(task)
            ax.grid(alpha=0.25, axis="x")
    fig.suptitle(f"budget to reach {baseline}'s target, 95% CI over seeds; under each name: speed-up vs {baseline}", fontsize=11)
    fig.tight_layout()
    return fig


def fig_aggregate(rows: list[dict], baseline: str, colour: dict):
    if not rows:
        return None
    plt = _style()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 0.45 * len(rows) + 1.6))
    for k, r in enumerate(rows):
        p, lo, hi = r["iqm"]
        a1.errorbar(p, k, xerr=[[p - lo], [hi - p]], fmt="o", color=colour[r["method"]], capsize=3)
        if "poi" in r:
            p, lo, hi = r["poi"]
            a2.errorbar(p, k, xerr=[[p - lo], [hi - p]], fmt="o", color=colour[r["method"]], capsize=3)
    a1.set_yticks(range(len(rows)), [r["method"] for r in rows])
    a2.set_yticks(range(len(rows)), [r["method"] for r in rows])
    a1.set_xlabel("IQM of final accuracy (tasks x seeds)")
    a2.set_xlabel(f"P(method > {baseline})")
    a2.axvline(0.5, color="k", lw=0.8, ls="--")
    for a in (a1, a2):
        a.grid(alpha=0.25, axis="x")
    fig.suptitle("aggregate across tasks: stratified bootstrap 95% CIs", fontsize=11)
    fig.tight_layout()
    return fig


def fig_compute(rows: list[dict], colour: dict):
    plt = _style()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.8 * len(tasks), 5.8), squeeze=False)
    shades = {"train": "#4c72b0", "replaced": "#dd8452", "discarded": "#c44e52", "downsampled": "#8172b3", "profile": "#55a868",
              "generate": "#4c72b0", "score": "#937860", "select": "#da8bc3", "update": "#c44e52", "overhead": "#8c8c8c"}
    for j, task in enumerate(tasks):
        sel = [r for r in rows if r["task"] == task]
        names = [r["method"] for r in sel]
        for i, (key, parts, label) in enumerate((("by_purpose", PURPOSES, "rollouts generated, by fate"), ("seconds", PHASES, "charged seconds, by phase"))):
            ax = axes[i][j]
            left = np.zeros(len(sel))
            for p in parts:
                vals = np.array([r[key][p] for r in sel])
                if vals.any():
                    ax.barh(range(len(sel)), vals, left=left, color=shades[p], label=p)
                    left += vals
            if key == "by_purpose":
                rep = np.array([r["replayed"] for r in sel])
                if rep.any():
                    ax.barh(range(len(sel)), rep, left=left, color="#dd8452", hatch="//", alpha=0.5, label="replayed (trained again, not generated)")
            ax.set_yticks(range(len(sel)), names)
            ax.set_xlabel(label)
            ax.set_title(task)
            if j == len(tasks) - 1:
                ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("compute breakdown (mean over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


HTML_HEAD = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}}
table{{border-collapse:collapse;margin:0.6em 0 1.2em;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
th{{background:#f3f3f3}}img{{max-width:100%;margin:0.5em 0}}code{{background:#f5f5f5;padding:1px 4px}}
</style></head><body>
"""
HTML_TAIL = """<script>
// each figure records whether it decoded (the headless-browser test reads this back)
for (const img of document.images) {{ const mark = () => img.dataset.rendered = (img.naturalWidth > 0) ? "1" : "0";
  if (img.complete) mark(); else {{ img.onload = mark; img.onerror = mark; }} }}
</script></body></html>"""


class Doc:
    """The report as a list of blocks, rendered to markdown (figures linked) and HTML (figures embedded)."""

    def __init__(self, out: Path):
        self.out, self.md, self.html = out, [], []
        self.figures: list[str] = []

    def h(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.md.append(text + "\n")
        esc = html.escape(text)
        esc = esc.replace("**", "")  # bold markers only matter in markdown
        self.html.append(f"<p>{esc}</p>")

    def code(self, text: str) -> None:
        self.md.append(f"```\n{text}\n```\n")
        self.html.append(f"<pre><code>{html.escape(text)}</code></pre>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        if rows:
            self.md.append(md_table(header, rows) + "\n")
            self.html.append(html_table(header, rows))

    def figure(self, fig, name: str, caption: str) -> None:
        if fig is None:
            return
        import matplotlib.pyplot as plt

        fig_dir = self.out / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(fig_dir / f"{name}.png", dpi=150)
        fig.savefig(fig_dir / f"{name}.svg")
        plt.close(fig)
        png = base64.b64encode((fig_dir / f"{name}.png").read_bytes()).decode()
        self.md.append(f"![{caption}](figures/{name}.png)\n\n*{caption}* ([SVG](figures/{name}.svg))\n")
        self.html.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        self.figures.append(name)

    def write(self, title: str) -> None:
        atomic_write(self.out / "report.md", "\n".join(self.md))
        atomic_write(self.out / "report.html", HTML_HEAD.format(title=html.escape(title)) + "\n".join(self.html) + HTML_TAIL.format())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    return obj


def render_report(source: str | Path, out: str | Path | None = None, baseline: str | None = None, command: str | None = None, wandb_mode: str = "offline") -> Path:
    """Build every table and figure for one sweep's results; returns the report directory."""
    res = load_results(source)
    claim = res.claim or {}
    baseline = baseline or claim.get("baseline") or ("grpo" if "grpo" in res.methods else res.methods[0])
    if baseline not in res.methods:
        raise ConfigError(f"--baseline {baseline}: not a method of {res.root} ({', '.join(res.methods)})")
    out = Path(out or Path("reports") / res.name)
    doc = Doc(out)
    colour = colours(res.methods)
    title = f"{res.name}: RLVR comparison report"
    doc.h(title, 1)
    doc.p(f"Regenerate: `{command or f'rlvr report {source}'}` (reads only the results store `{res.root}`).")
    seeds = sorted({len(res.group(t, m)) for t in res.tasks for m in res.methods} - {0})
    doc.p(f"{len(res.runs)} complete runs: {len(res.methods)} methods x {len(res.tasks)} tasks x {'/'.join(map(str, seeds))} seeds; "
          f"baseline {baseline}. Intervals are 95% percentile-bootstrap CIs over seeds unless stated otherwise."
          + (f" Not included (incomplete): {', '.join(res.skipped)}." if res.skipped else ""))
    data: dict[str, Any] = {"name": res.name, "baseline": baseline, "runs": len(res.runs)}
    if claim:
        sentence, decided = decide_claim(res, claim)
        doc.h("Claim")
        doc.p(sentence)
        data["claim"] = {"sentence": sentence, "rows": decided}

    finals = final_table(res)
    data["final"] = finals
    doc.h("Final accuracy and area under the curve")
    doc.table(["task", "method", "seeds", "initial", "final eval/accuracy", "AUC (acc vs budget / budget)"],
              [[r["task"], r["method"], r["seeds"], f"{r['initial']:.3f}", fmt_ci(*r["final"]), fmt_ci(*r["auc"])] for r in finals])
    metric = claim.get("metric", "eval/accuracy")
    if metric != "eval/accuracy":  # the claim is about another metric: its final values too
        doc.h(f"Final {metric}")
        doc.table(["task", "method", "seeds", "initial", f"final {metric}"],
                  [[t, m, len(g), f"{np.mean([r.evals[0][metric] for r in g]):.3f}", fmt_ci(*stats.bootstrap_ci(np.array([r.final(metric) for r in g])))]
                   for t in res.tasks for m in res.methods if (g := res.group(t, m))])
    doc.h("Accuracy vs compute")
    for axis in ("rollouts", "flops", "seconds"):
        doc.figure(fig_curves(res, axis, colour), f"accuracy_vs_{axis}", f"eval/accuracy vs {AXES[axis]}, per task: mean and 95% bootstrap CI over seeds")
    if any("eval/pass@4" in r.evals[-1] for r in res.runs):
        doc.figure(fig_curves(res, res.unit, colour, "eval/pass@4"), "pass4_vs_budget", f"eval/pass@4 vs {AXES[res.unit]}")

    targets = target_table(res, baseline, tuple(dict.fromkeys(["rollouts", "flops", res.unit])), claim.get("target", "final") if claim.get("test", "speedup") == "speedup" else "final")
    data["budget_to_target"] = targets
    doc.h(f"Budget to reach {baseline}'s {'peak (99%)' if claim.get('target') == 'peak99' else 'final accuracy'}")
    doc.table(["task", "axis", "method", "target acc", f"{baseline} needs", "method needs", f"speed-up ({baseline} / method)"],
              [[r["task"], r["axis"], r["method"], f"{r['target']:.3f}", fmt_ci(*r["baseline_budget"]), fmt_ci(*r["method_budget"]), fmt_ci(*r["speedup"], 2)] for r in targets])
    doc.figure(fig_targets(targets, baseline, colour), "budget_to_target", f"budget to reach {baseline}'s target")

    agg = aggregate_table(res, baseline)
    data["aggregate"] = agg
    doc.h("Aggregate across tasks")
    doc.table(["method", "IQM final accuracy", "mean final accuracy", f"P(method > {baseline})"],
              [[r["method"], fmt_ci(*r["iqm"]), fmt_ci(*r["mean"]), fmt_ci(*r["poi"]) if "poi" in r else "-"] for r in agg])
    doc.figure(fig_aggregate(agg, baseline, colour), "aggregate", "IQM and probability of improvement (stratified bootstrap over seeds within tasks)")

    comp = compute_table(res)
    data["compute"] = comp
    doc.h("Compute breakdown")
    doc.table(["task", "method", "generated", "trained (fresh)", "replaced", "discarded", "down-sampled away", "profiling", "replayed", "FLOPs", "generate s", "update s", "generate / update"],
              [[r["task"], r["method"], f"{r['rollouts']:.0f}", f"{r['by_purpose']['train']:.0f}", f"{r['by_purpose']['replaced']:.0f}",
                f"{r['by_purpose']['discarded']:.0f}", f"{r['by_purpose']['downsampled']:.0f}", f"{r['by_purpose']['profile']:.0f}",
                f"{r['replayed']:.0f}", f"{r['flops']:.3g}", f"{r['seconds']['generate']:.1f}", f"{r['seconds']['update']:.1f}",
                f"{r['seconds']['generate'] / max(r['seconds']['update'], 1e-9):.2f}"] for r in comp])
    doc.figure(fig_compute(comp, colour), "compute", "what each method generated and where its time went")

    abl = ablation_table(res)
    data["ablations"] = abl
    if abl:
        doc.h("Ablations (each switch vs the full method)")
        doc.table(["task", "ablation", "full method", "ablation final", "full final", "difference", "P(ablation > full)"],
                  [[r["task"], r["method"], r["full"], f"{r['ablation']:.3f}", f"{r['full_mean']:.3f}", fmt_ci(*r["diff"]), fmt_ci(*r["poi"])] for r in abl])
    probes = sorted(res.root.glob("probe_variance-*.json"))
    if probes:
        doc.h("Gradient variance at the warm start (`rlvr probe-variance`)")
        for path in probes:
            pv = json.loads(path.read_text())
            doc.p(f"{pv['task']}: {pv['batches']} independent batches of {pv['prompts']} prompts x {pv['group_size']} samples, "
                  f"pass@K estimators with K = {pv['k']}; every estimator sees the same samples. SNR = ||E g||^2 / trace Cov[g].")
            doc.table(["estimator", "trace Cov[g]", "||E g||", "SNR", "mean advantage"],
                      [[r["estimator"], f"{r['trace_cov']:.3e}", f"{r['mean_grad_norm']:.3e}", f"{r['snr']:.3f}", f"{r['adv_mean']:.4f}"] for r in pv["rows"]])
        data["probe_variance"] = [json.loads(p.read_text()) for p in probes]
    doc.h("Diagnostics over training")
    doc.figure(fig_diagnostics(res, colour), "diagnostics", "training diagnostics vs rollouts (mean over seeds)")
    doc.write(title)
    atomic_write(out / "data.json", json.dumps(_jsonable(data), indent=1))
    if wandb_mode != "disabled":
        log_to_wandb(res, out, doc.figures, data, wandb_mode)
    return out


def log_to_wandb(res: Results, out: Path, figures: list[str], data: dict, mode: str) -> None:
    """The same figures and tables in a W&B run of job type `report` (offline by default; files under the
    results directory, never in the committed report)."""
    from harness.wandb_log import quiet_wandb_env

    quiet_wandb_env(res.root / "report-wandb", mode)
    import wandb

    run = wandb.init(project="rlvr-harness", name=f"report-{res.name}", job_type="report", mode=mode,
                     dir=str(res.root / "report-wandb"), config={"sweep": res.name, "baseline": data["baseline"]})
    run.log({f"report/{name}": wandb.Image(str(out / "figures" / f"{name}.png")) for name in figures})
    rows = [[r["task"], r["method"], r["seeds"], *r["final"], *r["auc"]] for r in data["final"]]
    run.log({"report/final": wandb.Table(columns=["task", "method", "seeds", "final", "final_lo", "final_hi", "auc", "auc_lo", "auc_hi"], data=rows)})
    run.finish()


# ----------------------------------------------------------------------------------------------------------------
# --compare


def compare(a: str | Path, b: str | Path, out: str | Path | None = None, y: str = "eval/accuracy") -> tuple[Path, list[dict]]:
    """Final accuracy per (task, method) in sweep A and sweep B: difference B - A with a bootstrap CI over
    seeds and Welch's t-test; a change is significant when the CI excludes 0."""
    from scipy import stats as sps

    ra, rb = load_results(a), load_results(b)
    rows = []
    for task in ra.tasks:
        for method in ra.methods:
            ga, gb = ra.group(task, method), rb.group(task, method)
            if not ga or not gb:
                continue
            xa, xb = np.array([r.final(y) for r in ga]), np.array([r.final(y) for r in gb])
            d = diff_ci(xb, xa)
            p = float(sps.ttest_ind(xb, xa, equal_var=False).pvalue) if len(xa) > 1 and len(xb) > 1 and (xa.std() + xb.std()) > 0 else float("nan")
            change = "better" if d[1] > 0 else "worse" if d[2] < 0 else "no significant change"
            rows.append({"task": task, "method": method, "a": float(xa.mean()), "b": float(xb.mean()), "diff": d, "p": p, "change": change,
                         "seeds": (len(xa), len(xb))})
    out = Path(out or Path("reports") / f"compare-{ra.name}-vs-{rb.name}")
    doc = Doc(out)
    doc.h(f"{rb.name} vs {ra.name}: final {y}", 1)
    doc.p(f"Regenerate: `rlvr report --compare {a} {b}`. Difference = B - A with a 95% bootstrap CI over seeds; "
          "Welch's t-test p-value beside it. 'worse' marks a significant regression.")
    doc.table(["task", "method", "seeds A/B", f"A ({ra.name})", f"B ({rb.name})", "B - A", "p (Welch)", "verdict"],
              [[r["task"], r["method"], "/".join(map(str, r["seeds"])), f"{r['a']:.3f}", f"{r['b']:.3f}", fmt_ci(*r["diff"]),
                f"{r['p']:.3g}", r["change"]] for r in rows])
    doc.write(f"compare {ra.name} {rb.name}")
    atomic_write(out / "data.json", json.dumps(_jsonable(rows), indent=1))
    return out, rows
