"""rlvr report on a synthetic results store whose statistics are known in closed form, --compare, and the
HTML report rendered by headless Chromium."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis.report import compare, load_results, render_report

B = 1000.0  # budget in rollouts; evaluations every 100
POINTS = np.arange(0, B + 1, 100.0)
REPO = Path(__file__).resolve().parent.parent


def write_run(root: Path, name: str, acc, *, flops_per_rollout=1e6, seconds_per_rollout=0.01, purposes=None, diag=0.5):
    run = root / name
    run.mkdir(parents=True)
    evals = [{"step": i, "budget_point": b, "unit": "rollouts", "rollouts": b, "tokens": 10 * b, "flops": flops_per_rollout * b,
              "seconds": seconds_per_rollout * b, "eval/accuracy": float(a), "eval/pass@4": float(min(1.0, 2 * a))}
             for i, (b, a) in enumerate(zip(POINTS, acc))]
    metrics = [{"step": i + 1, "rollouts": b, "train/effective_group_frac": diag, "grad/norm": 1.0} for i, b in enumerate(POINTS[1:])]
    (run / "evals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    purposes = purposes or {"train": B}
    summary = {"status": "complete", "ledger/rollouts": B, "ledger/flops": flops_per_rollout * B, "ledger/rows_trained": purposes.get("train", 0),
               "ledger/rows_replayed": 0, **{f"ledger/generated/{k}": v for k, v in purposes.items()},
               "time/generate": 3.0, "time/update": 6.0, "time/charged": 9.5}
    (run / "summary.json").write_text(json.dumps(summary))


def synthetic_store(root: Path, seeds=3, offset=0.0) -> Path:
    """grpo climbs linearly 0.2 -> 0.3; fast climbs 0.2 -> 0.4 (reaches 0.3 at half the budget, 2x);
    fast-nox (an ablation of fast) ends at 0.35; seeds differ by +-0.01 (mean unchanged) except where noted."""
    frac = POINTS / B
    cells = []
    curves = {"grpo": 0.2 + 0.1 * frac + offset, "fast": 0.2 + 0.2 * frac, "fast-nox": 0.2 + 0.15 * frac}
    algorithm = {"grpo": "grpo", "fast": "fast", "fast-nox": "fast"}
    for task in ("arithmetic", "countdown"):
        for method, curve in curves.items():
            for seed in range(seeds):
                name = f"{method}-{task}-s{seed}"
                jitter = 0.01 * (seed - (seeds - 1) / 2) if method == "fast-nox" else 0.0
                write_run(root, name, curve + jitter * frac,
                          purposes={"train": 600, "discarded": 400} if method == "fast" else {"train": B}, diag=0.3 if method == "fast" else 0.6)
                cells.append({"name": name, "algo": method, "task": task, "variant": None, "seed": seed, "algorithm": algorithm[method], "unit": "rollouts"})
    (root / "cells.json").write_text(json.dumps({"name": root.name, "cells": cells}))
    return root


CLAIM = "claim: {text: fast reaches grpo's final accuracy with fewer rollouts, method: fast, baseline: grpo, test: speedup, axis: rollouts, target: final}\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = synthetic_store(tmp_path_factory.mktemp("store") / "synth")
    (root / "sweep.yaml").write_text(CLAIM)
    out = render_report(root, tmp_path_factory.mktemp("report") / "synth", wandb_mode="disabled")
    return out, json.loads((out / "data.json").read_text())


def test_final_accuracy_auc_and_intervals_match_closed_forms(report):
    _, data = report
    rows = {(r["task"], r["method"]): r for r in data["final"]}
    assert rows["arithmetic", "grpo"]["final"] == pytest.approx([0.3, 0.3, 0.3])  # identical seeds: a zero-width CI
    assert rows["arithmetic", "fast"]["final"] == pytest.approx([0.4, 0.4, 0.4])
    # finals 0.34 / 0.35 / 0.36: a Student-t interval with 2 degrees of freedom
    half = sps.t.ppf(0.975, 2) * 0.01 / np.sqrt(3)
    assert rows["countdown", "fast-nox"]["final"] == pytest.approx([0.35, 0.35 - half, 0.35 + half])
    assert rows["countdown", "fast-nox"]["per_seed"]["final"] == pytest.approx({"0": 0.34, "1": 0.35, "2": 0.36})  # by seed, in data.json
    # the area under a line from a to b over the budget, divided by the budget, is (a + b) / 2
    assert rows["arithmetic", "grpo"]["auc"][0] == pytest.approx(0.25) and rows["arithmetic", "fast"]["auc"][0] == pytest.approx(0.3)


def test_budget_to_target_and_speedup(report):
    _, data = report
    rows = {(r["task"], r["axis"], r["method"]): r for r in data["budget_to_target"]}
    fast = rows["arithmetic", "rollouts", "fast"]
    assert fast["target"] == pytest.approx(0.3)
    assert fast["base_budget"] == pytest.approx([B] * 3) and fast["method_budget"] == pytest.approx([B / 2] * 3)
    assert fast["speedup"] == pytest.approx([2.0, 2.0, 2.0]) and fast["seeds"] == [0, 1, 2]
    assert rows["arithmetic", "flops", "fast"]["speedup"][0] == pytest.approx(2.0)
    # fast-nox's seeds end at 0.34 / 0.35 / 0.36 on lines from 0.2: each crosses 0.3 at its own budget
    nox = rows["countdown", "rollouts", "fast-nox"]
    assert nox["method_budget"] == pytest.approx([B * 0.1 / (0.15 + j) for j in (-0.01, 0.0, 0.01)])
    assert nox["speedup"][0] == pytest.approx(np.exp(np.mean(np.log(B / np.array(nox["method_budget"])))))
    assert ("arithmetic", "rollouts", "grpo") not in rows  # the baseline is the reference, not a row


def test_aggregate_iqm_and_probability_of_improvement(report):
    _, data = report
    agg = {r["method"]: r for r in data["aggregate"]}
    assert agg["grpo"]["iqm"] == pytest.approx([0.3] * 3) and "poi" not in agg["grpo"]
    assert agg["fast"]["poi"] == pytest.approx([1.0] * 3)  # every fast run beats every grpo run on both tasks
    # fast-nox finals 0.34 / 0.35 / 0.36 on both tasks: IQM over the 6 scores trims one from each end
    assert agg["fast-nox"]["iqm"][0] == pytest.approx(0.35)


def test_claim_compute_and_ablation_tables(report):
    out, data = report
    assert data["claim"]["sentence"].startswith("**Claim: fast reaches grpo's final accuracy with fewer rollouts — held on this setup** (held on 2/2 tasks)")
    assert "2.00x [2.00, 2.00], held" in data["claim"]["sentence"]
    comp = {(r["task"], r["method"]): r for r in data["compute"]}
    assert comp["arithmetic", "fast"]["by_purpose"]["discarded"] == 400 and comp["arithmetic", "fast"]["trained"] == 600
    (abl,) = [r for r in data["ablations"] if r["task"] == "arithmetic"]
    assert (abl["method"], abl["full"]) == ("fast-nox", "fast")
    assert abl["diff"]["point"] == pytest.approx(-0.05) and abl["diff"]["hi"] < 0 and abl["poi"] == pytest.approx([0.0] * 3)
    md = (out / "report.md").read_text()
    assert md.startswith("# synth: RLVR comparison report\n\nRegenerate: `rlvr report")
    for fig in ("accuracy_vs_rollouts", "accuracy_vs_flops", "accuracy_vs_seconds", "speedup", "aggregate", "compute", "diagnostics", "pass4_vs_budget"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 5000 and (out / "figures" / f"{fig}.svg").exists()
        assert f"figures/{fig}.png" in md


def test_incomplete_runs_are_listed_not_averaged(tmp_path):
    root = synthetic_store(tmp_path / "s", seeds=2)
    (root / "fast-arithmetic-s1" / "summary.json").write_text(json.dumps({"status": "failed"}))
    res = load_results(root)
    assert len(res.group("arithmetic", "fast")) == 1 and res.skipped == ["fast-arithmetic-s1: failed"]


def test_compare_flags_significant_changes(tmp_path):
    a = synthetic_store(tmp_path / "a", seeds=4)
    b = synthetic_store(tmp_path / "b", seeds=4, offset=0.05)  # grpo better by 0.05 everywhere, the rest unchanged
    out, rows = compare(a, b, tmp_path / "cmp")
    verdict = {(r["task"], r["method"]): r for r in rows}
    assert verdict["arithmetic", "grpo"]["change"] == "better" and verdict["arithmetic", "grpo"]["diff"]["point"] == pytest.approx(0.05)
    assert verdict["arithmetic", "grpo"]["diff"]["method"] == "paired t"  # both sweeps ran seeds 0-3
    assert verdict["arithmetic", "fast-nox"]["change"] == "no significant change"
    worse, _ = compare(b, a, tmp_path / "cmp2")
    assert "| worse |" in (worse / "report.md").read_text()


def test_rlvr_report_compare_prints_each_change_and_fails_on_a_regression(tmp_path, capsys):
    from harness.cli import main

    a = synthetic_store(tmp_path / "a", seeds=4)
    b = synthetic_store(tmp_path / "b", seeds=4, offset=0.05)
    assert main(["report", "--compare", str(a), str(b), "--out", str(tmp_path / "up"), "--fail-on-regression"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("arithmetic") and " grpo " in x)
    assert re.search(r"diff \+0\.050 \[\+0\.\d{3}, \+0\.\d{3}\]  p \S+  better$", line), line
    assert main(["report", "--compare", str(b), str(a), "--out", str(tmp_path / "down"), "--fail-on-regression"]) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_html_renders_every_figure_in_headless_chromium(report, tmp_path):
    out, _ = report
    html = out / "report.html"
    n_figures = len(list((out / "figures").glob("*.png")))
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                          "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert len(re.findall(r'data-rendered="1"', dom)) == n_figures and 'data-rendered="0"' not in dom
    artefact = REPO / ".test-artifacts" / "report-screenshot.png"
    artefact.parent.mkdir(exist_ok=True)
    artefact.unlink(missing_ok=True)
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,2400",
                    f"--screenshot={artefact}", html.as_uri()], capture_output=True, timeout=120)
    assert artefact.stat().st_size > 20_000  # a page with figures on it, saved for people to look at


def test_a_poi_claim_on_another_metric_is_decided_by_its_stratified_interval(tmp_path):
    from harness.analysis.report import decide_claim

    res = load_results(synthetic_store(tmp_path / "s", seeds=3))
    claim = {"text": "fast improves pass@4", "method": "fast", "baseline": "grpo", "test": "poi", "metric": "eval/pass@4"}
    sentence, rows = decide_claim(res, claim)
    assert sentence.startswith("**Claim: fast improves pass@4 — held on this setup.**") and "1.000 [1.000, 1.000]" in sentence
    sentence, _ = decide_claim(res, {**claim, "method": "grpo", "baseline": "fast"})
    assert "was contradicted" in sentence


def test_paired_ranking_against_the_baseline_and_inline_markdown_in_html(report):
    out, data = report
    rows = [r for r in data["paired"] if r["task"] == "arithmetic"]
    assert [r["method"] for r in rows] == ["fast", "fast-nox"]  # best first
    assert rows[0]["final"]["point"] == pytest.approx(0.1) and rows[0]["verdict"] == "better"
    assert rows[0]["final"]["per_seed"] == pytest.approx([0.1] * 3) and rows[0]["speedup"]["speedup"][0] > 1
    page = (out / "report.html").read_text()
    assert "**" not in page and "`" not in page.split("<script>")[0] and "<strong>Claim:" in page and "<code>rlvr report" in page


def test_two_seeds_give_no_intervals_and_a_warning(tmp_path):
    root = synthetic_store(tmp_path / "two", seeds=2)
    out = render_report(root, tmp_path / "rep", wandb_mode="disabled")
    data = json.loads((out / "data.json").read_text())
    md = (out / "report.md").read_text()
    assert "Warning: only 2 seed(s)" in md
    assert all(r["verdict"] == "too few seeds" for r in data["paired"])
    assert all(r["final"][1] == "nan" for r in data["final"])  # no zero-width interval pretending to be one


def test_controls_section_flags_the_planted_handicap_and_not_the_a_a_arm(tmp_path):
    root = tmp_path / "ctl"
    rng = np.random.default_rng(0)
    frac = POINTS / B
    cells = []
    for task in ("arithmetic", "countdown"):
        for seed in range(8):
            rate = 0.3 + 0.03 * rng.normal()
            arms = {"grpo": 0.2 + rate * frac + 0.004 * rng.normal(size=len(frac)) * (frac > 0),
                    "grpo-aa": 0.2 + (rate + 0.03 * rng.normal()) * frac,  # the same method: another seed stream
                    "grpo-handicap": 0.2 + rate * frac / 1.5}
            for method, acc in arms.items():
                name = f"{method}-{task}-s{seed}"
                write_run(root, name, acc)
                cells.append({"name": name, "algo": method, "task": task, "variant": None, "seed": seed,
                              "algorithm": {"grpo-handicap": "grpo_handicap"}.get(method, "grpo"), "unit": "rollouts"})
    (root / "cells.json").write_text(json.dumps({"name": "ctl", "cells": cells}))
    (root / "sweep.yaml").write_text("controls: {baseline: grpo, aa: grpo-aa, handicap: {method: grpo-handicap, factor: 1.5, target_frac: 0.5}}\n")
    out = render_report(root, tmp_path / "rep", wandb_mode="disabled")
    ctl = json.loads((out / "data.json").read_text())["controls"]
    assert ctl["aa"]["total"] == 6 and ctl["aa"]["flagged"] == 0
    assert [r["detected"] for r in ctl["handicap"]["rows"]] == [True, True]
    assert all(r["covers_truth"] for r in ctl["handicap"]["rows"])
    assert "Detected as slower (CI below 1) on 2 of 2 tasks" in (out / "report.md").read_text()


def test_claims_against_several_baselines_by_paired_difference_and_variance(tmp_path):
    from harness.analysis.report import decide_claim, decide_variance

    res = load_results(synthetic_store(tmp_path / "s", seeds=3))
    sentence, rows = decide_claim(res, {"text": "fast is faster", "method": "fast", "baseline": ["grpo", "fast-nox"],
                                        "test": "speedup", "axis": "rollouts", "target": "gain"})
    first, second = sentence.split("\n\n")
    assert "held on this setup** (held on 2/2 tasks)" in first and "grpo / fast" in first
    assert "fast-nox / fast" in second and len(rows) == 4
    sentence, rows = decide_claim(res, {"text": "fast improves pass@4", "method": "fast", "baseline": "grpo", "test": "difference",
                                        "metric": "eval/pass@4"})
    assert "— held on this setup** (held on 2/2 tasks)" in sentence and "+0.200" in sentence  # 2 x (0.4 - 0.3)
    probe = {"task": "arithmetic", "batches": 8, "rows": [{"estimator": "l2o", "snr": 0.5}, {"estimator": "pkpo", "snr": 1.5}]}
    assert "was contradicted" in decide_variance([probe], {"text": "l2o has the higher SNR", "method": "l2o", "baseline": "pkpo"})
    with pytest.raises(Exception, match="not in the probe table"):
        decide_variance([probe], {"text": "x", "method": "l2o", "baseline": "nope"})


def test_report_reads_what_runs_declare_and_the_ledger_names_of_older_runs(tmp_path):
    """The diagnostics figure draws what each run declared (a plugin's own curve too); runs written before runs
    declared them get their registered algorithm's declarations; summaries with the ledger's old key names
    (ledger/rollouts_<purpose>, ledger/rollouts_{trained,replayed}) fill the compute table as the new ones do."""
    from harness.analysis.report.statistics import compute_table

    root = synthetic_store(tmp_path / "synth", seeds=2)
    new = json.loads((root / "fast-arithmetic-s0" / "summary.json").read_text())
    for name in ("fast-arithmetic-s0", "fast-arithmetic-s1"):  # a plugin that declares a curve of its own
        path = root / name / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "diagnostics": {"fast/knob": "the knob (fast)"}}))
    for name in ("fast-countdown-s0", "fast-countdown-s1"):  # written before the rename: old ledger names
        path = root / name / "summary.json"
        old = {("ledger/rollouts_" + k.removeprefix("ledger/generated/") if k.startswith("ledger/generated/") else
                k.replace("ledger/rows_", "ledger/rollouts_")): v for k, v in json.loads(path.read_text()).items()}
        assert "ledger/rollouts_discarded" in old and "ledger/rollouts_trained" in old
        path.write_text(json.dumps(old))
    cells = json.loads((root / "cells.json").read_text())["cells"]
    for c in cells:
        c["algorithm"] = "pods" if c["algo"] == "grpo" else c["algorithm"]  # a registered algorithm without a declaration
    (root / "cells.json").write_text(json.dumps({"name": "synth", "cells": cells}))
    res = load_results(root)
    assert res.diagnostics["fast/knob"] == "the knob (fast)"
    assert res.diagnostics["pods/kept_reward_var"] == "kept reward variance (PODS)"  # from the registry
    assert res.diagnostics["grad/norm"] == "gradient norm"
    assert "offpolicy/staleness" not in res.diagnostics  # no run here is POPO
    rows = {(r["task"], r["method"]): r for r in compute_table(res)}
    assert rows["countdown", "fast"]["by_purpose"] == rows["arithmetic", "fast"]["by_purpose"] == {"train": 600, "discarded": 400}
    assert rows["countdown", "fast"]["trained"] == new["ledger/rows_trained"] == 600
