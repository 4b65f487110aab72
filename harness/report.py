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
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats as sps

from harness import stats
from harness.plain import ConfigError
from harness.store import RunStore, atomic_write, read_jsonl

AXES = {"rollouts": "rollouts generated", "flops": "FLOPs (generation, forward, training)", "tokens": "tokens generated",
        "seconds": "charged seconds (process CPU time)", "wall_seconds": "wall-clock seconds"}
NOT_PURPOSES = ("trained", "replayed")  # ledger/rollouts_* keys that count trained rows, not generated rollouts by fate
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
    controls: dict | None = None  # the sweep file's `controls:` (A/A and planted-handicap arms), if any

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
    from harness.sweep import load_sweep, sweep_file

    source = sweep_file(source)
    raw: dict = {}
    if source.is_file():
        sweep = load_sweep(source)
        root, name, raw = sweep.out_dir, sweep.name, sweep.raw
    else:
        root, name = source, source.name
        if (root / "sweep.yaml").exists():
            raw = yaml.safe_load((root / "sweep.yaml").read_text()) or {}
    claim, controls = raw.get("claim"), raw.get("controls")
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
        summary = RunStore(run_dir).summary()
        if summary.get("status") != "complete":
            skipped.append(f"{c['name']}: {summary.get('error') if summary.get('status') == 'corrupt' else summary.get('status', 'not run')}")
            continue
        try:
            evals, metrics = read_jsonl(run_dir / "evals.jsonl"), read_jsonl(run_dir / "metrics.jsonl")
        except ValueError as e:  # a corrupt row: this run is left out and named, the rest are reported
            skipped.append(f"{c['name']}: {e}")
            continue
        method = c["algo"] + (f"-{c['variant']}" if c.get("variant") else "")
        runs.append(Run(c["name"], method, c["algorithm"], c["task"], c["seed"], evals, metrics, summary))
    if not runs:
        raise ConfigError(f"{root}: no complete runs to report ({len(skipped)} cells not complete)")
    units = {c.get("unit", "rollouts") for c in cells}
    return Results(name, root, runs, skipped, claim, units.pop() if len(units) == 1 else "rollouts", controls)


# ----------------------------------------------------------------------------------------------------------------
# Numbers


def seed_curves(runs: list[Run], x: str, y: str = "eval/accuracy", points: int = 61, xmax: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(grid [points], curves [seeds, points]): each seed's curve interpolated onto a grid from 0 to the
    smallest last x among the seeds (or xmax), so no seed is extrapolated."""
    ends = [run.curve(x, y)[0][-1] for run in runs]
    grid = np.linspace(0.0, min(ends) if xmax is None else xmax, points)
    return grid, np.stack([stats.interpolate(*run.curve(x, y), grid) for run in runs])


def band(curves: np.ndarray, conf: float = stats.CONF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a Student-t band, per grid point. curves [seeds, points]; no band below MIN_SEEDS."""
    mean = curves.mean(0)
    if len(curves) < stats.MIN_SEEDS:
        return mean, mean, mean
    half = sps.t.ppf(0.5 + conf / 2, len(curves) - 1) * curves.std(0, ddof=1) / np.sqrt(len(curves))
    return mean, mean - half, mean + half


def _num(v: float, digits: int) -> str:
    if math.isinf(v):
        return "never" if v > 0 else "-inf"
    if math.isnan(v):
        return "n/a"
    if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.{digits}g}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def fmt_ci(point: float, lo: float, hi: float, digits: int = 3) -> str:
    """'point [lo, hi]', or the point alone when there is no interval (too few seeds)."""
    return f"{_num(point, digits)} [{_num(lo, digits)}, {_num(hi, digits)}]" if not math.isnan(lo) else _num(point, digits)


def fmt_diff(d: dict, digits: int = 3) -> str:
    """A paired difference: '+0.031 [+0.012, +0.050]' (signed), or the point alone without an interval."""
    f = lambda v: "n/a" if math.isnan(v) else f"{v:+.{digits}f}"  # noqa: E731
    return f"{f(d['point'])} [{f(d['lo'])}, {f(d['hi'])}]" if not math.isnan(d["lo"]) else f(d["point"])


def fmt_speedup(r: dict) -> str:
    """'1.52x [1.31, 1.77]' with censoring: 'never' seeds are counted, never given a number of their own."""
    p, lo, hi = r["speedup"]
    text = f"{p:.2f}x" + (f" [{lo:.2f}, {hi:.2f}]" if not math.isnan(lo) else "")
    cen = r["censored"]
    notes = [f"{who} never reached it on {k}/{r['log']['n']} seeds" for who, k in (("baseline", cen["base"]), ("method", cen["method"])) if k]
    text += f" ({'; '.join(notes)}: censored at the budget)" if notes else ""
    if r.get("early"):
        text += f" ({r['early']} of {2 * r['log']['n']} curves cross the target within their first evaluation interval: resolution-limited)"
    return text


def by_seed(runs: list[Run], value) -> dict[int, float]:
    return {r.seed: float(value(r)) for r in runs}


def final_table(res: Results, y: str = "eval/accuracy") -> list[dict]:
    """Per task and method: initial and final y and AUC, means with t intervals over seeds, the mean eval
    standard error of one final evaluation, and every seed's value."""
    rows = []
    for task in res.tasks:
        for method in res.methods:
            runs = res.group(task, method)
            if runs:
                finals, aucs = by_seed(runs, lambda r: r.final(y)), by_seed(runs, _auc)
                se = [r.evals[-1].get(f"{y}_se", float("nan")) for r in runs]
                rows.append({"task": task, "method": method, "seeds": len(runs), "final": stats.t_interval(list(finals.values())),
                             "auc": stats.t_interval(list(aucs.values())), "initial": float(np.mean([r.evals[0][y] for r in runs])),
                             "eval_se": float(np.mean(se)), "per_seed": {"final": finals, "auc": aucs}})
    return rows


def _auc(run: Run) -> float:
    from harness.tune import objective_value

    return objective_value(run.evals, "auc")


TARGETS = ("gain", "final", "peak99")
# Speed-ups are measured to the baseline's warm start + this share of its gain: on the steep part of every
# default task's GRPO curve (README), where a 1.5x planted handicap is found (sweeps/controls.yaml).
TARGET_FRAC = 0.5


def target_accuracy(base: list[Run], how: str | float, frac: float = TARGET_FRAC, y: str = "eval/accuracy") -> float:
    """The accuracy a speed-up is measured to, from the baseline's runs alone: `gain` = its warm start + frac
    of its gain at the budget (the default, TARGET_FRAC: on the steep part of the curve), `final` = its final accuracy,
    `peak99` = 99% of the peak of its seed-mean curve, or a number given outright."""
    if not isinstance(how, str):
        return float(how)
    if how == "gain":
        return stats.gain_target(np.array([r.evals[0][y] for r in base]), np.array([r.final(y) for r in base]), frac)
    if how == "final":
        return float(np.mean([r.final(y) for r in base]))
    if how == "peak99":
        return 0.99 * float(np.nanmax(seed_curves(base, "rollouts", y)[1].mean(0)))
    raise ConfigError(f"claim.target: expected one of {list(TARGETS)} or a number, got {how!r}")


def target_table(res: Results, baseline: str, axes: tuple[str, ...] = ("rollouts", "flops"), target: str | float = "gain",
                 frac: float = TARGET_FRAC) -> list[dict]:
    """Budget each method needs to reach the baseline's target, paired by seed (stats.paired_speedup), per
    task and axis. Only seeds both methods ran are paired."""
    rows = []
    for task in res.tasks:
        base = res.group(task, baseline)
        if not base:
            continue
        tgt = target_accuracy(base, target, frac)
        for method in res.methods:
            runs = res.group(task, method)
            if not runs or method == baseline:
                continue
            seeds = sorted({r.seed for r in base} & {r.seed for r in runs})
            if not seeds:  # nothing to pair: the paired table reports the unpaired difference instead
                continue
            b = [next(r for r in base if r.seed == s) for s in seeds]
            m = [next(r for r in runs if r.seed == s) for s in seeds]
            for axis in axes:
                out = stats.paired_speedup([r.curve(axis) for r in b], [r.curve(axis) for r in m], tgt)
                rows.append({"task": task, "axis": axis, "method": method, "seeds": seeds, **out})
    return rows


def paired_table(res: Results, baseline: str, y: str = "eval/accuracy", axis: str | None = None, target: str | float = "gain",
                 frac: float = TARGET_FRAC) -> list[dict]:
    """Every method against the baseline, per task, paired by seed: the difference in final y and in AUC
    (t intervals, p, MDE) and the speed-up to the baseline's target on `axis`; sorted best first."""
    axis = axis or res.unit
    speed = {(r["task"], r["method"]): r for r in target_table(res, baseline, (axis,), target, frac)}
    rows = []
    for task in res.tasks:
        base = res.group(task, baseline)
        if not base:
            continue
        for method in res.methods:
            runs = res.group(task, method)
            if not runs or method == baseline:
                continue
            d_final = stats.difference(by_seed(runs, lambda r: r.final(y)), by_seed(base, lambda r: r.final(y)))
            d_auc = stats.difference(by_seed(runs, _auc), by_seed(base, _auc))
            rows.append({"task": task, "method": method, "final": d_final, "auc": d_auc, "speedup": speed.get((task, method)),
                         "verdict": stats.decide(d_final), "axis": axis})
    return sorted(rows, key=lambda r: (res.tasks.index(r["task"]), -r["final"]["point"]))


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
    and seconds by phase (charged clock, and wall-clock beside it), from each run's final ledger."""
    purposes = sorted({k.removeprefix("ledger/rollouts_") for r in res.runs for k in r.summary
                       if k.startswith("ledger/rollouts_") and k.removeprefix("ledger/rollouts_") not in NOT_PURPOSES})
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
                "by_purpose": {p: mean(f"ledger/rollouts_{p}") for p in purposes},
                "replayed": mean("ledger/rollouts_replayed"),
                "trained": mean("ledger/rollouts_trained"),
                "flops": mean("ledger/flops"),
                "seconds": {p: mean(f"time/{p}") for p in PHASES},
                "charged": mean("time/charged"),
                "wall": mean("wall/charged"),
            })
    return rows


def ablation_table(res: Results, y: str = "eval/accuracy") -> list[dict]:
    """Each method whose algorithm has a 'full' method (label == algorithm name) against it: the paired
    difference in final accuracy (t interval, MDE) and P(ablation > full)."""
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
                         "diff": stats.difference(by_seed(a, lambda r: r.final(y)), by_seed(f, lambda r: r.final(y))),
                         "poi": stats.probability_of_improvement_ci(xa[:, None], xf[:, None])})
    return rows


# ----------------------------------------------------------------------------------------------------------------
# The claim a preset sweep tests


def _power_note(mde: float, unit: str = "") -> str:
    return "" if math.isnan(mde) else f"; the smallest effect these seeds detect with 80% power is {mde:.3f}{unit}"


def _overall_verdict(words: list[str], any_few_undecidable: bool = False) -> str:
    """A claim's verdict from its per-task words (held / contradicted / anything else = not shown, and
    'too few seeds'): undecidable when every task (or, with any_few_undecidable, any task) lacks an interval."""
    few = words.count("too few seeds")
    if words and (few == len(words) or (any_few_undecidable and few)):
        return "not decidable: too few seeds"
    held, against = words.count("held"), words.count("contradicted")
    if words and held == len(words):
        return "held"
    if words and against == len(words):
        return "was contradicted"
    return "held on some tasks only" if held else "was contradicted on some tasks" if against else "was not shown"


def decide_claim(res: Results, claim: dict) -> tuple[str, list[dict]]:
    """One sentence: did the sweep file's `claim` hold, with the paired interval that decides it and its
    minimum detectable effect. The claim is {text, method, baseline, test: speedup | poi | difference,
    axis + target (+ target_frac) for speedup, metric for poi / difference}; a list of baselines gives one
    sentence each."""
    if isinstance(claim["baseline"], list):  # one claim against several baselines (e.g. POPO vs GRPO and DAPO)
        decided = [decide_claim(res, {**claim, "baseline": b}) for b in claim["baseline"]]
        return "\n\n".join(s for s, _ in decided), [r for _, rows in decided for r in rows]
    method, baseline, test = claim["method"], claim["baseline"], claim.get("test", "speedup")
    text = claim["text"].rstrip(".")
    if test == "speedup":
        axis, target, frac = claim.get("axis", "rollouts"), claim.get("target", "gain"), float(claim.get("target_frac", TARGET_FRAC))
        rows = [r for r in target_table(res, baseline, (axis,), target, frac) if r["method"] == method]
        parts, words = [], []
        for r in rows:
            p, lo, hi = r["speedup"]
            if math.isnan(lo):
                words.append("too few seeds")
                parts.append(f"{r['task']}: {p:.2f}x from {r['log']['n']} seeds (no interval below {stats.MIN_SEEDS})")
                continue
            words.append("held" if lo > 1.0 else "contradicted" if hi < 1.0 else "not shown")
            parts.append(f"{r['task']}: {fmt_speedup(r)}, {words[-1]}; detectable at 80% power: {r['mde']:.2f}x or more "
                         f"(target accuracy {r['target']:.3f})")
        verdict, held = _overall_verdict(words), words.count("held")
        what = {"gain": f"{baseline}'s warm start + {frac:.0%} of its gain", "final": f"{baseline}'s final accuracy",
                "peak99": f"99% of {baseline}'s peak"}.get(target, f"accuracy {target}") if isinstance(target, str) else f"accuracy {target}"
        return (f"**Claim: {text} — {verdict} on this setup** (held on {held}/{len(rows)} tasks). Speed-up in {axis} to reach "
                f"{what}, {baseline} / {method}: geometric mean over seeds with a paired t 95% CI; it holds where the CI "
                f"lies above 1 and is contradicted where it lies below 1: {'; '.join(parts)}."), rows
    metric = claim.get("metric", "eval/accuracy")
    per_task = [r for r in paired_table(res, baseline, metric) if r["method"] == method]
    diffs = "; ".join(f"{r['task']}: {fmt_diff(r['final'])} ({r['verdict']}{_power_note(r['final']['mde'])})" for r in per_task)
    if test == "difference":
        words = [{"better": "held", "worse": "contradicted"}.get(r["verdict"], r["verdict"]) for r in per_task]
        verdict, better = _overall_verdict(words, any_few_undecidable=True), words.count("held")
        return (f"**Claim: {text} — {verdict} on this setup** (held on {better}/{len(per_task)} tasks). Final {metric}, "
                f"{method} - {baseline}, paired by seed, t 95% CI: {diffs}."), per_task
    agg = {r["method"]: r for r in aggregate_table(res, baseline, metric)}
    if method not in agg or "poi" not in agg[method]:
        return f"**Claim: {text} — not decidable** (no complete runs of {method} and {baseline} on every task).", []
    p, lo, hi = agg[method]["poi"]
    verdict = "held" if lo > 0.5 else ("was contradicted" if hi < 0.5 else "was not shown")
    return (f"**Claim: {text} — {verdict} on this setup.** P({method} > {baseline}) on final {metric} across tasks x seeds = "
            f"{fmt_ci(p, lo, hi)} (stratified bootstrap 95% CI; it holds where the CI lies above 0.5). Per task, "
            f"{method} - {baseline} paired by seed: {diffs}."), [agg[method], *per_task]


def control_results(res: Results, controls: dict) -> dict:
    """The controls of a sweep: {baseline, aa, handicap: {method, factor, axis, target_frac}}.

    A/A: every paired comparison the report makes between the A/A arm and the baseline (final accuracy, AUC,
    speed-up to the target, per task) is a false positive when flagged; the rate over all of them is returned.
    Handicap: the speed-up of the handicapped arm on `axis`, per task; detected when its CI lies below 1, and
    `covers_truth` says whether the CI holds the planted 1 / factor."""
    baseline = controls.get("baseline", "grpo")
    out: dict[str, Any] = {"baseline": baseline}
    aa = controls.get("aa")
    if aa:
        rows = [r for r in paired_table(res, baseline) if r["method"] == aa]
        checks = []
        for r in rows:
            checks += [(r["task"], "final accuracy", r["final"]), (r["task"], "AUC", r["auc"])]
            if r["speedup"]:
                checks.append((r["task"], f"log speed-up in {r['axis']}", r["speedup"]["log"]))
        decided = [(t, what, d, stats.decide(d)) for t, what, d in checks]
        flagged = [x for x in decided if x[3] in ("better", "worse")]
        out["aa"] = {"method": aa, "comparisons": [{"task": t, "what": w, "diff": d, "verdict": v} for t, w, d, v in decided],
                     "flagged": len(flagged), "total": len(decided), "rate": len(flagged) / max(len(decided), 1)}
    hc = controls.get("handicap")
    if hc:
        factor, axis = float(hc.get("factor", 1.5)), hc.get("axis", "rollouts")
        rows = [r for r in target_table(res, baseline, (axis,), "gain", float(hc.get("target_frac", TARGET_FRAC))) if r["method"] == hc["method"]]
        out["handicap"] = {"method": hc["method"], "factor": factor, "axis": axis, "rows": [
            {**r, "detected": r["speedup"][2] < 1.0, "covers_truth": r["speedup"][1] <= 1 / factor <= r["speedup"][2]} for r in rows]}
    return out


def _controls_doc(doc: "Doc", c: dict) -> None:
    doc.h("Controls: does the instrument work?")
    if "aa" in c:
        aa = c["aa"]
        doc.p(f"**A/A: {aa['method']} is {c['baseline']} under another random stream; every flagged difference is a false "
              f"positive. Flagged: {aa['flagged']} of {aa['total']} comparisons ({aa['rate']:.1%}; 5% expected at 95% intervals).**")
        doc.table(["task", "comparison", f"{aa['method']} - {c['baseline']}", "MDE", "verdict"],
                  [[x["task"], x["what"], fmt_diff(x["diff"], 3), _mde(x["diff"]["mde"]), x["verdict"]] for x in aa["comparisons"]])
    if "handicap" in c:
        h = c["handicap"]
        found = sum(r["detected"] for r in h["rows"])
        doc.p(f"**Planted handicap: {h['method']} generates {h['factor']}x the groups it trains on, so its true speed-up in "
              f"{h['axis']} is {1 / h['factor']:.2f}x. Detected as slower (CI below 1) on {found} of {len(h['rows'])} tasks.**")
        doc.table(["task", "target acc", f"speed-up in {h['axis']}", "MDE", "detected (CI < 1)", f"CI holds {1 / h['factor']:.2f}"],
                  [[r["task"], f"{r['target']:.3f}", fmt_speedup(r), "-" if math.isnan(r["mde"]) else f"{r['mde']:.2f}x",
                    "yes" if r["detected"] else "no", "yes" if r["covers_truth"] else "no"] for r in h["rows"]])


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


def _figure_legend(fig, colour: dict, methods: list[str], counts: dict[str, str] | None = None) -> None:
    """One legend for the whole figure, naming every method drawn in it (with its seed count)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour[m], lw=2, label=m + (f" ({counts[m]})" if counts and m in counts else "")) for m in methods]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 4), frameon=False)


def _budget_axis(ax, axis: str) -> None:
    """Engineering tick labels (1.5M, 300G): no scientific offset text to collide with the axis label."""
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(AXES.get(axis, axis))


def fig_curves(res: Results, axis: str, colour: dict, y: str = "eval/accuracy"):
    plt = _style()
    fig, axes = plt.subplots(1, len(res.tasks), figsize=(4.6 * len(res.tasks), 3.4), squeeze=False)
    drawn: dict[str, str] = {}
    for ax, task in zip(axes[0], res.tasks):
        for method in res.methods:
            runs = res.group(task, method)
            if not runs:
                continue
            grid, curves = seed_curves(runs, axis, y)
            mean, lo, hi = band(curves)
            ax.plot(grid, mean, color=colour[method], lw=1.8)
            ax.fill_between(grid, lo, hi, color=colour[method], alpha=0.18, lw=0)
            drawn.setdefault(method, f"n={len(runs)}")
        ax.set_title(task)
        _budget_axis(ax, axis)
        ax.set_ylabel(f"{y} (held-out)")
        ax.grid(alpha=0.25)
    _figure_legend(fig, colour, list(drawn), drawn)
    fig.suptitle(f"{y} vs {AXES.get(axis, axis)}: mean over seeds, 95% t band", fontsize=11)
    fig.tight_layout()
    return fig


def fig_diagnostics(res: Results, colour: dict):
    keys = [k for k in DIAGNOSTICS if any(k in m for r in res.runs for m in r.metrics)]
    if not keys:
        return None
    plt = _style()
    fig, axes = plt.subplots(len(keys), len(res.tasks), figsize=(4.4 * len(res.tasks), 2.6 * len(keys)), squeeze=False, sharex="col")
    drawn: list[str] = []
    for j, task in enumerate(res.tasks):
        for i, key in enumerate(keys):
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
                    ax.plot(grid, np.nanmean(ys, 0), color=colour[method], lw=1.4)
                drawn += [method] if method not in drawn else []
            if i == 0:
                ax.set_title(task, fontsize=11)
            if j == 0:
                ax.set_ylabel(DIAGNOSTICS[key], fontsize=9)
            _budget_axis(ax, "rollouts")
            if i < len(keys) - 1:
                ax.set_xlabel("")
            ax.grid(alpha=0.25)
    _figure_legend(fig, colour, drawn)
    fig.suptitle("diagnostics over training (mean over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def fig_speedups(rows: list[dict], baseline: str, colour: dict):
    """Speed-up (baseline budget / method budget to the target) per method, task and axis, with its paired
    CI on a log axis; 1 = as fast as the baseline. Methods with censored seeds are marked, never given a bar."""
    rows = [r for r in rows if r["log"]["n"]]
    if not rows:
        return None
    plt = _style()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    axes_ = list(dict.fromkeys(r["axis"] for r in rows))
    per = max(len([r for r in rows if r["task"] == t and r["axis"] == a]) for t in tasks for a in axes_)
    fig, axes = plt.subplots(len(axes_), len(tasks), figsize=(4.6 * len(tasks), (0.45 * per + 1.3) * len(axes_)), squeeze=False)
    for i, axis in enumerate(axes_):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            sel = [r for r in rows if r["task"] == task and r["axis"] == axis]
            for k, r in enumerate(sel):
                p, lo, hi = r["speedup"]
                err = None if math.isnan(lo) else [[p - lo], [hi - p]]
                ax.errorbar(p, k, xerr=err, fmt="o", color=colour[r["method"]], capsize=3)
                cen = r["censored"]["method"] + r["censored"]["base"]
                if cen:
                    ax.annotate(f"{cen} censored", (p, k), xytext=(4, 5), textcoords="offset points", fontsize=7)
            ax.axvline(1.0, color="k", lw=0.8, ls="--")
            _ratio_axis(ax)
            ax.set_yticks(range(len(sel)), [r["method"] for r in sel])
            ax.set_ylim(-0.6, len(sel) - 0.4)
            ax.set_title(f"{task}: {AXES.get(axis, axis)}", fontsize=10)
            ax.grid(alpha=0.25, axis="x")
    fig.suptitle(f"speed-up to {baseline}'s target ({baseline} budget / method budget), paired by seed, 95% t CI", fontsize=11)
    fig.tight_layout()
    return fig


def _ratio_axis(ax) -> None:
    """A log axis for ratios with a few plain labels (0.5x, 0.67x, 1x, 1.5x, ...), no crowded minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.25, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())


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


SHADES = ["#4c72b0", "#dd8452", "#c44e52", "#8172b3", "#55a868", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]


def fig_compute(rows: list[dict], colour: dict):
    plt = _style()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    purposes = list(dict.fromkeys(p for r in rows for p in r["by_purpose"]))
    shade = dict(zip(purposes + list(PHASES), SHADES * 3))
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.8 * len(tasks), 5.8), squeeze=False)
    for j, task in enumerate(tasks):
        sel = [r for r in rows if r["task"] == task]
        names = [r["method"] for r in sel]
        for i, (key, parts, label) in enumerate((("by_purpose", purposes, "rollouts generated, by fate"), ("seconds", PHASES, "charged seconds, by phase"))):
            ax = axes[i][j]
            left = np.zeros(len(sel))
            for p in parts:
                vals = np.array([r[key].get(p, 0.0) for r in sel])
                if vals.any():
                    ax.barh(range(len(sel)), vals, left=left, color=shade[p], label=p)
                    left += vals
            if key == "by_purpose":
                rep = np.array([r["replayed"] for r in sel])
                if rep.any():
                    ax.barh(range(len(sel)), rep, left=left, color="#dd8452", hatch="//", alpha=0.5, label="replayed (trained again, not generated)")
            ax.set_yticks(range(len(sel)), names)
            _budget_axis(ax, label)
            ax.set_title(task)
    handles = {}
    for ax in axes.ravel():  # one legend for the figure: every rollout fate and time phase drawn anywhere
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 5), frameon=False, fontsize=8)
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


def inline_html(text: str) -> str:
    """The inline markdown the report writes (`code`, **bold**) as HTML, everything else escaped."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


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
        self.html.append(f"<p>{inline_html(text)}</p>")

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
    claimed = claim.get("baseline")
    baseline = baseline or (claimed[0] if isinstance(claimed, list) else claimed) or ("grpo" if "grpo" in res.methods else res.methods[0])
    if baseline not in res.methods:
        raise ConfigError(f"--baseline {baseline}: not a method of {res.root} ({', '.join(res.methods)})")
    out = Path(out or Path("reports") / res.name)
    doc = Doc(out)
    colour = colours(res.methods)
    title = f"{res.name}: RLVR comparison report"
    doc.h(title, 1)
    doc.p(f"Regenerate: `{command or f'rlvr report {source}'}` (reads only the results store `{res.root}`).")
    counts = {len(res.group(t, m)) for t in res.tasks for m in res.methods} - {0}
    evals = sorted({(r.summary.get("eval_prompts"), r.summary.get("eval_samples")) for r in res.runs} - {(None, None)})
    doc.p(f"{len(res.runs)} complete runs: {len(res.methods)} methods x {len(res.tasks)} tasks x {'/'.join(map(str, sorted(counts)))} seeds; "
          f"baseline {baseline}." + (f" Each evaluation: {' / '.join(f'{p} held-out prompts x {n} samples' for p, n in evals)}." if evals else "")
          + " Comparisons are paired by seed (methods at one seed share the warm start, prompts, sampling seeds and "
          "eval seed) with Student-t 95% intervals; each states its minimum detectable effect (MDE): the true "
          "difference these seeds would find with 80% power. Charged seconds are process CPU time; wall-clock is shown beside it."
          + (f" Not included: {_skipped_words(res.skipped)}." if res.skipped else ""))
    if min(counts) < stats.MIN_SEEDS:
        doc.p(f"**Warning: only {min(counts)} seed(s) for some methods: no intervals and no verdicts for them.** "
              f"Intervals need at least {stats.MIN_SEEDS} seeds; a comparison that can separate methods needs about 10-20.")
    data: dict[str, Any] = {"name": res.name, "baseline": baseline, "runs": len(res.runs)}
    frac = float(claim.get("target_frac", TARGET_FRAC))
    target = claim.get("target", "gain") if claim.get("test", "speedup") == "speedup" else "gain"
    if claim:
        sentence, decided = decide_claim(res, claim)
        doc.h("Claim")
        doc.p(sentence)
        data["claim"] = {"sentence": sentence, "rows": decided}

    if res.controls:
        ctl = control_results(res, res.controls)
        _controls_doc(doc, ctl)
        data["controls"] = ctl

    paired = paired_table(res, baseline, axis=claim.get("axis") if claim.get("test", "speedup") == "speedup" else None, target=target, frac=frac)
    data["paired"] = paired
    if paired:
        axis = paired[0]["axis"]
        doc.h(f"Every method against {baseline}, paired by seed")
        doc.p(f"Per task, best first. Final accuracy and AUC: method - {baseline}, mean over seeds of the per-seed difference. "
              f"Speed-up: {baseline}'s {axis} to its target / the method's (geometric mean over seeds); the target is "
              f"fixed by {baseline} alone ({_target_words(target, frac, baseline)}). A verdict needs the final-accuracy CI to exclude 0.")
        doc.table(["task", "method", "seeds", "final acc difference", "MDE", "verdict", "AUC difference", f"speed-up in {axis}", "speed-up MDE"],
                  [[r["task"], r["method"], r["final"]["n"], fmt_diff(r["final"]), _mde(r["final"]["mde"]), r["verdict"], fmt_diff(r["auc"]),
                    fmt_speedup(r["speedup"]) if r["speedup"] else "-", f"{r['speedup']['mde']:.2f}x" if r["speedup"] and not math.isnan(r["speedup"]["mde"]) else "-"]
                   for r in paired])

    finals = final_table(res)
    data["final"] = finals
    doc.h("Final accuracy and area under the curve")
    doc.table(["task", "method", "seeds", "initial", "final eval/accuracy (t CI)", "eval SE of one run", "AUC (acc vs budget / budget)"],
              [[r["task"], r["method"], r["seeds"], f"{r['initial']:.3f}", fmt_ci(*r["final"]), f"{r['eval_se']:.3f}", fmt_ci(*r["auc"])] for r in finals])
    metric = claim.get("metric", "eval/accuracy")
    if metric != "eval/accuracy":  # the claim is about another metric: its final values too
        doc.h(f"Final {metric}")
        doc.table(["task", "method", "seeds", "initial", f"final {metric}"],
                  [[t, m, len(g), f"{np.mean([r.evals[0][metric] for r in g]):.3f}", fmt_ci(*stats.t_interval([r.final(metric) for r in g]))]
                   for t in res.tasks for m in res.methods if (g := res.group(t, m))])
    doc.h("Accuracy vs compute")
    for axis in dict.fromkeys(("rollouts", "flops", res.unit, "seconds")):
        doc.figure(fig_curves(res, axis, colour), f"accuracy_vs_{axis}", f"eval/accuracy vs {AXES[axis]}, per task: mean and 95% t band over seeds")
    if any("eval/pass@4" in r.evals[-1] for r in res.runs):
        doc.figure(fig_curves(res, res.unit, colour, "eval/pass@4"), "pass4_vs_budget", f"eval/pass@4 vs {AXES[res.unit]}")

    targets = target_table(res, baseline, tuple(dict.fromkeys(["rollouts", "flops", res.unit, "seconds"])), target, frac)
    data["budget_to_target"] = targets
    doc.h(f"Budget to reach {baseline}'s target")
    doc.p(f"Target: {_target_words(target, frac, baseline)}. Per seed, the first crossing of the target (linear between "
          "evaluations); a seed that never reaches it within its budget is censored there and counted, never given a number.")
    doc.table(["task", "axis", "method", "target acc", f"{baseline} needs (mean of reached)", "method needs (mean of reached)", f"speed-up ({baseline} / method)", "MDE"],
              [[r["task"], r["axis"], r["method"], f"{r['target']:.3f}", _reached(r["base_budget"]), _reached(r["method_budget"]),
                fmt_speedup(r), "-" if math.isnan(r["mde"]) else f"{r['mde']:.2f}x"] for r in targets])
    doc.figure(fig_speedups(targets, baseline, colour), "speedup", f"speed-up to {baseline}'s target, paired by seed")

    agg = aggregate_table(res, baseline)
    data["aggregate"] = agg
    doc.h("Aggregate across tasks")
    doc.table(["method", "IQM final accuracy", "mean final accuracy", f"P(method > {baseline})"],
              [[r["method"], fmt_ci(*r["iqm"]), fmt_ci(*r["mean"]), fmt_ci(*r["poi"]) if "poi" in r else "-"] for r in agg])
    doc.figure(fig_aggregate(agg, baseline, colour), "aggregate", "IQM and probability of improvement (stratified bootstrap over seeds within tasks)")

    comp = compute_table(res)
    data["compute"] = comp
    purposes = list(dict.fromkeys(p for r in comp for p in r["by_purpose"]))
    doc.h("Compute breakdown")
    doc.table(["task", "method", "generated", *[f"{p}" for p in purposes], "replayed", "FLOPs", "generate s", "update s", "generate / update", "charged s (CPU)", "wall s"],
              [[r["task"], r["method"], f"{r['rollouts']:.0f}", *[f"{r['by_purpose'][p]:.0f}" for p in purposes],
                f"{r['replayed']:.0f}", f"{r['flops']:.3g}", f"{r['seconds']['generate']:.1f}", f"{r['seconds']['update']:.1f}",
                f"{r['seconds']['generate'] / max(r['seconds']['update'], 1e-9):.2f}", f"{r['charged']:.1f}", f"{r['wall']:.1f}"] for r in comp])
    doc.figure(fig_compute(comp, colour), "compute", "what each method generated and where its time went")

    abl = ablation_table(res)
    data["ablations"] = abl
    if abl:
        doc.h("Ablations (each switch vs the full method, paired by seed)")
        doc.table(["task", "ablation", "full method", "ablation final", "full final", "difference", "MDE", "verdict", "P(ablation > full)"],
                  [[r["task"], r["method"], r["full"], f"{r['ablation']:.3f}", f"{r['full_mean']:.3f}", fmt_diff(r["diff"]), _mde(r["diff"]["mde"]),
                    stats.decide(r["diff"]), fmt_ci(*r["poi"])] for r in abl])
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
        if claim.get("variance"):
            sentence = decide_variance(data["probe_variance"], claim["variance"])
            doc.p(sentence)
            data["variance_claim"] = sentence
    doc.h("Diagnostics over training")
    doc.figure(fig_diagnostics(res, colour), "diagnostics", "training diagnostics vs rollouts (mean over seeds)")
    doc.write(title)
    atomic_write(out / "data.json", json.dumps(_jsonable(data), indent=1))
    if wandb_mode != "disabled":
        log_to_wandb(res, out, doc.figures, data, wandb_mode)
    return out


def decide_variance(probes: list[dict], claim: dict) -> str:
    """The variance half of a claim, from `rlvr probe-variance` tables: {text, method, baseline, metric: snr |
    trace_cov}; held on a task where the method's SNR is higher (or its trace lower) than the baseline's. These
    are point estimates over the probe's batches: the sentence says so."""
    metric, parts, held = claim.get("metric", "snr"), [], 0
    for pv in probes:
        rows = {r["estimator"]: r for r in pv["rows"]}
        if claim["method"] not in rows or claim["baseline"] not in rows:
            raise ConfigError(f"claim.variance: estimators {claim['method']!r} / {claim['baseline']!r} not in the probe table "
                              f"({', '.join(rows)})")
        m, b = rows[claim["method"]][metric], rows[claim["baseline"]][metric]
        ok = m > b if metric == "snr" else m < b
        held += ok
        parts.append(f"{pv['task']}: {m:.3g} vs {b:.3g} ({'held' if ok else 'not held'}; {pv['batches']} batches)")
    verdict = "held" if held == len(probes) else "was contradicted" if not held else "held on some tasks only"
    return (f"**Variance claim: {claim['text'].rstrip('.')} — {verdict} on this setup.** {metric} of {claim['method']} vs "
            f"{claim['baseline']} at the warm start, point estimates from independent batches on the same samples: {'; '.join(parts)}.")


def _skipped_words(skipped: list[str], show: int = 6) -> str:
    """'66 cells not complete (64 not run, 2 running): a-s3: running, ...' with at most `show` names."""
    by_state: dict[str, int] = {}
    for entry in skipped:
        state = entry.rsplit(": ", 1)[-1]
        by_state[state] = by_state.get(state, 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items(), key=lambda kv: -kv[1]))
    names = "; ".join(skipped[:show]) + ("; ..." if len(skipped) > show else "")
    return f"{len(skipped)} cells not complete ({states}): {names}"


def _mde(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def _reached(budgets: list[float]) -> str:
    done = [b for b in budgets if math.isfinite(b)]
    never = len(budgets) - len(done)
    return (_num(float(np.mean(done)), 3) if done else "never") + (f" ({never}/{len(budgets)} never)" if never and done else "")


def _target_words(target: str | float, frac: float, baseline: str) -> str:
    if not isinstance(target, str):
        return f"accuracy {target}"
    return {"gain": f"{baseline}'s mean warm-start accuracy + {frac:.0%} of its mean gain at the budget",
            "final": f"{baseline}'s mean final accuracy", "peak99": f"99% of the peak of {baseline}'s mean curve"}[target]


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
    """Final accuracy per (task, method) in sweep A and sweep B: B - A with a t interval, paired by seed when
    both ran the same seeds (Welch otherwise), its p-value and MDE; a change is significant when the CI excludes 0."""
    ra, rb = load_results(a), load_results(b)
    rows = []
    for task in ra.tasks:
        for method in ra.methods:
            ga, gb = ra.group(task, method), rb.group(task, method)
            if not ga or not gb:
                continue
            d = stats.difference(by_seed(gb, lambda r: r.final(y)), by_seed(ga, lambda r: r.final(y)))
            rows.append({"task": task, "method": method, "a": float(np.mean([r.final(y) for r in ga])), "b": float(np.mean([r.final(y) for r in gb])),
                         "diff": d, "p": d["p"], "change": stats.decide(d).replace("difference", "change"), "seeds": (len(ga), len(gb))})
    out = Path(out or Path("reports") / f"compare-{ra.name}-vs-{rb.name}")
    doc = Doc(out)
    doc.h(f"{rb.name} vs {ra.name}: final {y}", 1)
    doc.p(f"Regenerate: `rlvr report --compare {a} {b}`. Difference = B - A with a 95% t interval, paired by seed where both "
          "sweeps ran the same seeds (Welch's t otherwise); MDE = the change these seeds detect with 80% power. "
          "'worse' marks a significant regression.")
    doc.table(["task", "method", "seeds A/B", f"A ({ra.name})", f"B ({rb.name})", "B - A", "test", "p", "MDE", "verdict"],
              [[r["task"], r["method"], "/".join(map(str, r["seeds"])), f"{r['a']:.3f}", f"{r['b']:.3f}", fmt_diff(r["diff"]), r["diff"]["method"],
                f"{r['p']:.3g}", _mde(r["diff"]["mde"]), r["change"]] for r in rows])
    doc.write(f"compare {ra.name} {rb.name}")
    atomic_write(out / "data.json", json.dumps(_jsonable(rows), indent=1))
    return out, rows
