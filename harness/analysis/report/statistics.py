"""The report's numbers: tables with CIs (final, budget-to-target, paired, aggregate, compute, ablations), the
claim verdicts and the controls' checks. Statistics themselves live in harness/analysis/stats.py."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.analysis import stats
from harness.analysis.report.results import PHASES, Results, Run, by_seed, run_auc, seed_curves
from harness.core.ledger import GENERATED
from harness.plain import ConfigError


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


def final_table(res: Results, y: str = "eval/accuracy") -> list[dict]:
    """Per task and method: initial and final y and AUC, means with t intervals over seeds, the mean eval
    standard error of one final evaluation, and every seed's value."""
    rows = []
    for task in res.tasks:
        for method in res.methods:
            runs = res.group(task, method)
            if runs:
                finals, aucs = by_seed(runs, lambda r: r.final(y)), by_seed(runs, run_auc)
                se = [r.evals[-1].get(f"{y}_se", float("nan")) for r in runs]
                rows.append({"task": task, "method": method, "seeds": len(runs), "final": stats.t_interval(list(finals.values())),
                             "auc": stats.t_interval(list(aucs.values())), "initial": float(np.mean([r.evals[0][y] for r in runs])),
                             "eval_se": float(np.mean(se)), "per_seed": {"final": finals, "auc": aucs}})
    return rows


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
            d_auc = stats.difference(by_seed(runs, run_auc), by_seed(base, run_auc))
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
    purposes = sorted({k.removeprefix(GENERATED) for r in res.runs for k in r.summary if k.startswith(GENERATED)})
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
                "by_purpose": {p: mean(GENERATED + p) for p in purposes},
                "replayed": mean("ledger/rows_replayed"),
                "trained": mean("ledger/rows_trained"),
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


def skipped_words(skipped: list[str], show: int = 6) -> str:
    """'66 cells not complete (64 not run, 2 running): a-s3: running, ...' with at most `show` names."""
    by_state: dict[str, int] = {}
    for entry in skipped:
        state = entry.rsplit(": ", 1)[-1]
        by_state[state] = by_state.get(state, 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items(), key=lambda kv: -kv[1]))
    names = "; ".join(skipped[:show]) + ("; ..." if len(skipped) > show else "")
    return f"{len(skipped)} cells not complete ({states}): {names}"


def fmt_mde(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def fmt_reached(budgets: list[float]) -> str:
    done = [b for b in budgets if math.isfinite(b)]
    never = len(budgets) - len(done)
    return (_num(float(np.mean(done)), 3) if done else "never") + (f" ({never}/{len(budgets)} never)" if never and done else "")


def target_words(target: str | float, frac: float, baseline: str) -> str:
    if not isinstance(target, str):
        return f"accuracy {target}"
    return {"gain": f"{baseline}'s mean warm-start accuracy + {frac:.0%} of its mean gain at the budget",
            "final": f"{baseline}'s mean final accuracy", "peak99": f"99% of the peak of {baseline}'s mean curve"}[target]
