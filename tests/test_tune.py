"""rlvr tune: budget-matched objectives, pruning at budget points, two workers sharing one journal study,
and a trial whose worker was killed being failed by its stale heartbeat and retried from its checkpoint."""
import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from test_sweep import REPO, write_sweep

from harness.config import ConfigError
from harness.core.store import read_jsonl
from harness.experiments.sweep import load_sweep
from harness.experiments.tune import curve_values, objective_value, open_storage, tune_worker

SPACE = {"grpo": {"train.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "algo_args.clip_high": {"choices": [0.2, 0.28]}}}


def tune_file(tmp_path, **tune):
    budget = tune.pop("budget", {"amount": 96, "eval_every": 32, "eval_prompts": 8, "eval_samples": 2})
    return write_sweep(tmp_path / "s.yaml", budget=budget, tune={"trials": 4, "startup_trials": 2, "space": SPACE, **tune})


def test_objectives_against_hand_computed_curves():
    evals = [{"budget_point": b, "eval/accuracy": a} for b, a in ((0, 0.2), (100, 0.4), (200, 0.4), (250, 0.9))]
    values = curve_values(evals, "auc")
    # trapezoids: 30, +40, +32.5 -> running area / budget point
    assert [v[0] for v in values] == [0, 1, 2] and [v[1] for v in values] == [0.4, 0.4, 0.9]
    assert [v[2] for v in values] == pytest.approx([30 / 100, 70 / 200, 102.5 / 250])
    assert objective_value(evals, "final") == 0.9
    with pytest.raises(ValueError):
        objective_value(evals[:1], "auc")


@pytest.mark.parametrize("space, match", [
    ({"grpo": {"train.lr": {"low": 1e-2, "high": 1e-4}}}, r"s\.yaml:\d+: tune.space.grpo.train.lr: need low < high"),
    ({"grpo": {"train.lr": {"min": 1}}}, r"tune.space.grpo.train.lr: expected"),
    ({"grpo": {"train.lrr": {"low": 1e-4, "high": 1e-3}}}, r"unknown field 'train.lrr'"),
    ({"popo": {"train.lr": {"low": 1e-4, "high": 1e-3}}}, r"tune.space.popo: not an algorithm label of this sweep"),
])
def test_bad_search_spaces_are_refused_before_any_compute(tmp_path, space, match):
    with pytest.raises(ConfigError, match=match):
        tune_worker(load_sweep(tune_file(tmp_path, space=space)))


def test_a_trial_below_the_median_at_a_budget_point_is_pruned_and_recorded(tmp_path):
    sweep = load_sweep(tune_file(tmp_path, trials=2, startup_trials=1, budget={"amount": 256, "eval_every": 32, "eval_prompts": 8, "eval_samples": 2}))
    study = optuna.create_study(study_name="t.grpo.arithmetic", storage=open_storage(sweep.tune, sweep.out_dir), direction="maximize")
    dists = {"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "algo_args.clip_high": optuna.distributions.CategoricalDistribution([0.2, 0.28])}
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-3, "algo_args.clip_high": 0.2}, distributions=dists,
                                              value=1.0, intermediate_values={i: 1.0 for i in range(8)}))
    tune_worker(sweep, out=open("/dev/null", "w"))
    trial = study.get_trials()[-1]
    assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [0, 1]  # pruned at the 2nd point
    (run,) = (tmp_path / "runs" / "tune" / "grpo-arithmetic").glob("p*-s0")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "pruned" and "budget point 2" in summary["error"]


def _tune(file, *args):
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "tune", str(file), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_workers_share_one_journal_study(tmp_path):
    file = tune_file(tmp_path, trials=6)
    procs = [_tune(file), _tune(file)]  # two independent `rlvr tune` processes, as from two shells
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("trial" in out and "FAILED" not in out and "Traceback" not in out for out in outs), outs
    study = optuna.load_study(study_name="t.grpo.arithmetic", storage=open_storage(load_sweep(file).tune, tmp_path / "runs"))
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.number for t in trials}) == 6
    pids = {line.split()[1].rstrip("]") for out in outs for line in out.splitlines() if line.startswith("[tune ")}
    assert len(pids) == 2  # both workers ran trials
    best = yaml.safe_load((tmp_path / "runs" / "tune" / "best.yaml").read_text())
    assert best["t.grpo.arithmetic"]["value"] == study.best_value


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_failed_by_heartbeat_and_resumed(tmp_path):
    budget = {"amount": 1600, "eval_every": 320, "eval_prompts": 8, "eval_samples": 2}
    space = {"grpo": {"train.lr": {"choices": [1e-3]}}}  # fixed: the retry must complete
    file = tune_file(tmp_path, trials=1, heartbeat=0.2, grace=1.0, budget=budget, space=space)
    proc = _tune(file)
    deadline = time.time() + 120
    runs = tmp_path / "runs" / "tune" / "grpo-arithmetic"
    while time.time() < deadline and sum(len(read_jsonl(p)) for p in runs.glob("*/metrics.jsonl")) < 30:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)  # the dead trial's heartbeat goes stale
    out = _tune(file).communicate(timeout=300)[0]
    assert "had no heartbeat; failed and re-queued" in out, out
    study = optuna.load_study(study_name="t.grpo.arithmetic", storage=open_storage(load_sweep(file).tune, tmp_path / "runs"))
    trials = study.get_trials()
    assert len(trials) == 2, (out, [(t.state, t.user_attrs) for t in trials])
    dead, retry = trials
    assert dead.state == TrialState.FAIL and "stale" in dead.user_attrs["error"]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params and retry.user_attrs["retry_of"] == 0
    (run,) = runs.glob("p*-s0")  # the same directory: the retry resumed the dead trial's run
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert steps == list(range(1, 101))
