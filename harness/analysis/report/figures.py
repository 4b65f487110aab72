"""The report's figures (matplotlib): curves with CI bands, diagnostics, speed-ups, aggregates, compute shares."""
from __future__ import annotations

import math
import warnings

import numpy as np

from harness.analysis import stats
from harness.analysis.report.results import AXES, PHASES, Results, band, seed_curves

PALETTE = {"grpo": "#4d4d4d", "dr_grpo": "#8c564b", "rloo": "#e377c2", "dapo": "#1f77b4", "popo": "#d62728",
           "sgpo": "#2ca02c", "pods": "#ff7f0e", "maxpo": "#9467bd"}


EXTRA_COLOURS = ["#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#ffbb78"]


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
    labels = res.diagnostics
    keys = [k for k in labels if any(k in m for r in res.runs for m in r.metrics)]
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
                ax.set_ylabel(labels[key], fontsize=9)
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
