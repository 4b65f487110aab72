"""The report as documents: report.md, a self-contained report.html, data.json, the W&B mirror and --compare."""
from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis import stats
from harness.analysis.report.figures import colours, fig_aggregate, fig_compute, fig_curves, fig_diagnostics, fig_speedups
from harness.analysis.report.results import AXES, Results, by_seed, load_results
from harness.analysis.report.statistics import (
    TARGET_FRAC,
    ablation_table,
    aggregate_table,
    compute_table,
    control_results,
    decide_claim,
    decide_variance,
    final_table,
    fmt_ci,
    fmt_diff,
    fmt_mde,
    fmt_reached,
    fmt_speedup,
    paired_table,
    skipped_words,
    target_table,
    target_words,
)
from harness.core.store import atomic_write
from harness.plain import ConfigError


def _controls_doc(doc: "Doc", c: dict) -> None:
    doc.h("Controls: does the instrument work?")
    if "aa" in c:
        aa = c["aa"]
        doc.p(f"**A/A: {aa['method']} is {c['baseline']} under another random stream; every flagged difference is a false "
              f"positive. Flagged: {aa['flagged']} of {aa['total']} comparisons ({aa['rate']:.1%}; 5% expected at 95% intervals).**")
        doc.table(["task", "comparison", f"{aa['method']} - {c['baseline']}", "MDE", "verdict"],
                  [[x["task"], x["what"], fmt_diff(x["diff"], 3), fmt_mde(x["diff"]["mde"]), x["verdict"]] for x in aa["comparisons"]])
    if "handicap" in c:
        h = c["handicap"]
        found = sum(r["detected"] for r in h["rows"])
        doc.p(f"**Planted handicap: {h['method']} generates {h['factor']}x the groups it trains on, so its true speed-up in "
              f"{h['axis']} is {1 / h['factor']:.2f}x. Detected as slower (CI below 1) on {found} of {len(h['rows'])} tasks.**")
        doc.table(["task", "target acc", f"speed-up in {h['axis']}", "MDE", "detected (CI < 1)", f"CI holds {1 / h['factor']:.2f}"],
                  [[r["task"], f"{r['target']:.3f}", fmt_speedup(r), "-" if math.isnan(r["mde"]) else f"{r['mde']:.2f}x",
                    "yes" if r["detected"] else "no", "yes" if r["covers_truth"] else "no"] for r in h["rows"]])


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
          + (f" Not included: {skipped_words(res.skipped)}." if res.skipped else ""))
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
              f"fixed by {baseline} alone ({target_words(target, frac, baseline)}). A verdict needs the final-accuracy CI to exclude 0.")
        doc.table(["task", "method", "seeds", "final acc difference", "MDE", "verdict", "AUC difference", f"speed-up in {axis}", "speed-up MDE"],
                  [[r["task"], r["method"], r["final"]["n"], fmt_diff(r["final"]), fmt_mde(r["final"]["mde"]), r["verdict"], fmt_diff(r["auc"]),
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
    doc.p(f"Target: {target_words(target, frac, baseline)}. Per seed, the first crossing of the target (linear between "
          "evaluations); a seed that never reaches it within its budget is censored there and counted, never given a number.")
    doc.table(["task", "axis", "method", "target acc", f"{baseline} needs (mean of reached)", "method needs (mean of reached)", f"speed-up ({baseline} / method)", "MDE"],
              [[r["task"], r["axis"], r["method"], f"{r['target']:.3f}", fmt_reached(r["base_budget"]), fmt_reached(r["method_budget"]),
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
                  [[r["task"], r["method"], r["full"], f"{r['ablation']:.3f}", f"{r['full_mean']:.3f}", fmt_diff(r["diff"]), fmt_mde(r["diff"]["mde"]),
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


def log_to_wandb(res: Results, out: Path, figures: list[str], data: dict, mode: str) -> None:
    """The same figures and tables in a W&B run of job type `report` (offline by default; files under the
    results directory, never in the committed report)."""
    from harness.core.wandb_log import quiet_wandb_env

    quiet_wandb_env(res.root / "report-wandb", mode)
    import wandb

    run = wandb.init(project="rlvr-harness", name=f"report-{res.name}", job_type="report", mode=mode,
                     dir=str(res.root / "report-wandb"), config={"sweep": res.name, "baseline": data["baseline"]})
    run.log({f"report/{name}": wandb.Image(str(out / "figures" / f"{name}.png")) for name in figures})
    rows = [[r["task"], r["method"], r["seeds"], *r["final"], *r["auc"]] for r in data["final"]]
    run.log({"report/final": wandb.Table(columns=["task", "method", "seeds", "final", "final_lo", "final_hi", "auc", "auc_lo", "auc_hi"], data=rows)})
    run.finish()


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
                f"{r['p']:.3g}", fmt_mde(r["diff"]["mde"]), r["change"]] for r in rows])
    doc.write(f"compare {ra.name} {rb.name}")
    atomic_write(out / "data.json", json.dumps(_jsonable(rows), indent=1))
    return out, rows
