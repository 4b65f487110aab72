"""Hyperparameter search with optuna over a sweep's algorithms x tasks, budget-matched and compute-fair.

    rlvr tune sweeps/X.yaml [--workers 2] [--trials 40] [--storage postgresql://...]

The sweep file's `tune:` section declares a search space per algorithm label:

    tune:
      trials: 20             # finished (complete + pruned) trials per study, shared by all workers
      objective: auc         # auc: area under accuracy-vs-budget / budget; final: accuracy at the budget
      pruner: median         # median | wilcoxon | none; both compare trials at the same budget points
      space:
        grpo: {train.lr: {low: 1.0e-4, high: 3.0e-3, log: true}}
        popo: {algo_args.buffer_size: {low: 8, high: 64, step: 8}, algo_args.priority: {choices: [stale, kl]}}

One study per (algorithm, task), named `<sweep>.<algo>.<task>`. Every trial is a run of the same budget
(in the sweep's unit); intermediate values are reported at the budget points where it evaluates, so a
trial is only ever compared with others at equal compute. Storage: a journal file under the sweep's
out_dir by default (any number of processes on one machine or a shared filesystem), or an RDB URL for
several machines. A trial whose worker died is failed once its heartbeat is `grace` seconds old and
re-queued with the same parameters; its run directory is keyed by the parameters, so the retry resumes
from the dead trial's checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.config import RunConfig, build_run_config
from harness.plain import ConfigError, config_hash, doc, from_dict, located, section_line, set_dotted, to_dict

PARAM_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass
class TuneConfig:
    trials: int = doc("Finished (complete or pruned) trials per study, counted across all workers.", 20)
    objective: Literal["auc", "final"] = doc(
        "auc: trapezoid area under eval/accuracy vs budget, divided by the budget; final: eval/accuracy at the budget.", "auc")
    pruner: Literal["median", "wilcoxon", "none"] = doc(
        "median: prune below the median of earlier trials' running auc at the same budget point; wilcoxon: paired "
        "signed-rank test of accuracy at the budget points so far against the best trial's.", "median")
    sampler: Literal["tpe", "random"] = doc("optuna sampler (seeded by sampler_seed plus the worker's pid).", "tpe")
    sampler_seed: int = doc("Base seed of the sampler.", 0)
    startup_trials: int = doc("Trials before TPE and the pruner start acting.", 4)
    seeds: list = doc("Run seeds averaged by the objective (pruning watches the first).", factory=lambda: [0])
    storage: str | None = doc("None: journal file <out_dir>/tune/optuna.journal; or an RDB URL (sqlite:///..., postgresql://...).", None)
    heartbeat: float = doc("Seconds between a running trial's heartbeats.", 30.0)
    grace: float = doc("A running trial whose last heartbeat is older than this is failed and re-queued.", 300.0)
    max_retry: int = doc("Re-queues of the same parameters after workers died on them.", 2)
    space: dict = doc("Algorithm label -> {dotted RunConfig field: {low, high, log?, step?} or {choices: [...]}}.", factory=dict)

    def validate(self) -> None:
        if self.trials < 1 or self.heartbeat <= 0 or self.grace <= self.heartbeat or self.max_retry < 0:
            raise ConfigError("tune: need trials >= 1, heartbeat > 0, grace > heartbeat, max_retry >= 0")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"tune.seeds: expected a non-empty list of integers, got {self.seeds!r}")
        if not self.space:
            raise ConfigError("tune.space: declare at least one algorithm's search space")
        for algo, params in self.space.items():
            if not isinstance(params, dict) or not params:
                raise ConfigError(f"tune.space.{algo}: expected a mapping of dotted fields to ranges")
            for name, spec in params.items():
                where = f"tune.space.{algo}.{name}"
                if not isinstance(spec, dict) or not set(spec) <= PARAM_KEYS:
                    raise ConfigError(f"{where}: expected {{low, high, log?, step?}} or {{choices: [...]}}, got {spec!r}")
                if "choices" in spec:
                    if not isinstance(spec["choices"], list) or not spec["choices"] or set(spec) != {"choices"}:
                        raise ConfigError(f"{where}: choices must be a non-empty list, alone")
                elif not {"low", "high"} <= set(spec) or not _num(spec["low"]) < _num(spec["high"]):
                    raise ConfigError(f"{where}: need low < high")


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ConfigError(f"tune.space: {x!r} is not a number") from None


def parse_tune(data: Any, lines: dict[str, int], where: str) -> TuneConfig:
    try:
        cfg = from_dict(TuneConfig, data, "tune")
        cfg.validate()
    except ConfigError as e:
        raise located(where, section_line(str(e), lines, "tune"), str(e)) from None
    return cfg


def suggest(trial, name: str, spec: dict) -> Any:
    """An optuna suggestion: categorical for choices, int when low, high (and step) are integers, else float."""
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    log = bool(spec.get("log", False))
    if all(isinstance(spec.get(k, 1), int) and not isinstance(spec.get(k, 1), bool) for k in ("low", "high", "step")):
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=log)
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec.get("step"), log=log)


def trial_config(base: RunConfig, params: dict, out_dir: Path, seed: int) -> RunConfig:
    """The cell's config with the trial's parameters; its directory is keyed by the parameters, so a retry
    of the same parameters (or a duplicate suggestion) resumes or reuses the same run."""
    data = to_dict(base)
    for name, value in params.items():
        set_dotted(data, name, value)
    data.update(seed=seed, out_dir=str(out_dir), name=f"p{config_hash(params)[:10]}-s{seed}")
    return build_run_config(data)


# ----------------------------------------------------------------------------------------------------------------
# Objective values from an evaluation curve


def curve_values(evals: list[dict], objective: str) -> list[tuple[int, float, float]]:
    """[(budget-point index, point accuracy, running objective)] for each eval after the start.
    Running auc at point b = trapezoid area of accuracy over [0, b] / b; running final = accuracy at b."""
    out, area = [], 0.0
    for prev, cur in zip(evals, evals[1:]):
        b0, b1 = prev["budget_point"], cur["budget_point"]
        area += 0.5 * (prev["eval/accuracy"] + cur["eval/accuracy"]) * (b1 - b0)
        running = area / b1 if objective == "auc" else cur["eval/accuracy"]
        out.append((len(out), cur["eval/accuracy"], running))
    return out


def objective_value(evals: list[dict], objective: str) -> float:
    values = curve_values(evals, objective)
    if not values:
        raise ValueError("no evaluation after the start of the run")
    return values[-1][2]


# ----------------------------------------------------------------------------------------------------------------
# Storage, heartbeats, stale trials


def open_storage(cfg: TuneConfig, out_dir: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if cfg.storage and "://" in cfg.storage:
        return optuna.storages.RDBStorage(cfg.storage, engine_kwargs={"pool_pre_ping": True} if not cfg.storage.startswith("sqlite") else None)
    path = Path(cfg.storage) if cfg.storage else out_dir / "tune" / "optuna.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def fail_stale_trials(study, grace: float, max_retry: int) -> list[int]:
    """Fail RUNNING trials whose heartbeat is older than `grace` s and re-queue their parameters (up to
    max_retry times per original trial). Safe when several workers do it at once: only the worker whose state
    change succeeds re-queues. Returns the numbers of the trials failed here."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat", t.datetime_start.timestamp() if t.datetime_start else now)
        if now - beat <= grace:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "error", f"stale: no heartbeat for {now - beat:.0f} s")
            if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker finished or failed it first
            continue
        failed.append(t.number)
        retries = t.user_attrs.get("retries", 0)
        if retries < max_retry:
            study.enqueue_trial(t.params, user_attrs={"retries": retries + 1, "retry_of": t.user_attrs.get("retry_of", t.number)})
    return failed


class Heartbeat:
    """Stamps trial.user_attrs['heartbeat'] every `interval` seconds from a background thread."""

    def __init__(self, trial, interval: float):
        self.trial, self.interval = trial, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # storage briefly unavailable: the next beat tries again
                pass

    def __enter__(self):
        self.trial.set_user_attr("heartbeat", time.time())
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


# ----------------------------------------------------------------------------------------------------------------
# One worker


def make_study(cfg: TuneConfig, storage, name: str):
    import optuna

    sampler = (optuna.samplers.TPESampler(n_startup_trials=cfg.startup_trials, seed=cfg.sampler_seed + os.getpid())
               if cfg.sampler == "tpe" else optuna.samplers.RandomSampler(seed=cfg.sampler_seed + os.getpid()))
    pruner = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=1),
        "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2),
        "none": optuna.pruners.NopPruner,
    }[cfg.pruner]()
    for attempt in range(5):  # two workers creating the same new study can race; the loser loads it
        try:
            return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                       direction="maximize", load_if_exists=True)
        except optuna.exceptions.DuplicatedStudyError:
            time.sleep(0.2 * (attempt + 1))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def run_trial(trial, cfg: TuneConfig, base: RunConfig, out_dir: Path, space: dict) -> float:
    """Train the trial's runs (one per seed) and return the mean objective; raises TrialPruned."""
    import optuna

    from harness.core.trainer import Trainer

    params = {name: suggest(trial, name, spec) for name, spec in space.items()}
    values = []
    for i, seed in enumerate(cfg.seeds):
        rcfg = trial_config(base, params, out_dir, seed)
        trial.set_user_attr(f"run_s{seed}", str(Path(rcfg.out_dir) / rcfg.run_name))
        reported: set[int] = set()

        def on_eval(evals: list[dict]) -> None:
            if i > 0:  # pruning watches the first seed's curve
                return
            for step, point, running in curve_values(evals, cfg.objective):
                if step not in reported:
                    trial.report(point if cfg.pruner == "wilcoxon" else running, step)
                    reported.add(step)
            if reported and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at budget point {max(reported) + 1} x {rcfg.budget.eval_every:g} {rcfg.budget.unit}")

        trainer = Trainer(rcfg, progress=False)
        summary = trainer.run(on_eval=on_eval)
        evals = trainer.store.evals()
        on_eval(evals)  # a run finished earlier (same parameters) reports its whole curve
        if summary.get("status") != "complete":
            raise RuntimeError(f"run {trainer.store.root} ended {summary.get('status')}")
        values.append(objective_value(evals, cfg.objective))
    value = sum(values) / len(values)
    if not math.isfinite(value):
        raise FloatingPointError(f"objective is {value}")
    return value


def tune_worker(sweep, only_algo: list[str] | None = None, out=None) -> None:
    """Run trials until every study of the sweep has `trials` finished (or running) ones."""
    import optuna
    from optuna.trial import TrialState

    from harness.core.store import RunStore

    out = out or sys.stdout
    cfg: TuneConfig = sweep.tune
    if cfg is None:
        raise ConfigError(f"{sweep.path}: no `tune:` section")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(cfg, sweep.out_dir)
    labels = sorted({c.algo for c in sweep.cells})
    unknown = [a for a in cfg.space if a not in labels]
    if unknown:
        raise ConfigError(f"tune.space.{unknown[0]}: not an algorithm label of this sweep ({', '.join(labels)})")
    tag = f"[tune {os.getpid()}]"
    for algo, task, study_name in studies(sweep, only_algo):
        space = cfg.space[algo]
        base = next(c for c in sweep.cells if c.algo == algo and c.task == task).config
        for name in space:  # a typo in the space fails before any compute
            trial_config(base, {name: _probe_value(space[name])}, sweep.out_dir, 0)
        study = make_study(cfg, storage, study_name)
        run_dir = sweep.out_dir / "tune" / f"{algo}-{task}"
        while True:
            stale = fail_stale_trials(study, cfg.grace, cfg.max_retry)
            if stale:
                print(f"{tag} {study_name}: trial(s) {stale} had no heartbeat; failed and re-queued", file=out, flush=True)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
            if finished + states.count(TrialState.RUNNING) >= cfg.trials and TrialState.WAITING not in states:
                break
            trial = study.ask()
            t0 = time.time()
            try:
                with Heartbeat(trial, cfg.heartbeat):
                    value = run_trial(trial, cfg, base, run_dir, space)
                study.tell(trial, value)
                line = f"value {value:.4f}"
            except optuna.TrialPruned as e:
                study.tell(trial, state=TrialState.PRUNED)
                for key, path in trial.user_attrs.items():
                    if key.startswith("run_s") and RunStore(path).summary().get("status") == "failed":
                        RunStore(path).write_summary(status="pruned", error=str(e))
                line = f"pruned ({e})"
            except Exception as e:  # a failed trial is recorded and never stops the study
                trial.set_user_attr("error", f"{type(e).__name__}: {e}")
                study.tell(trial, state=TrialState.FAIL)
                line = f"FAILED {type(e).__name__}: {e}"
            print(f"{tag} {study_name} trial {trial.number} {json.dumps(trial.params)}: {line} in {time.time() - t0:.0f} s", file=out, flush=True)


def _probe_value(spec: dict) -> Any:
    return spec["choices"][0] if "choices" in spec else spec["low"]


def run_tune(sweep, workers: int = 1, only_algo: list[str] | None = None, extra_args: list[str] | None = None, summary: bool = True) -> int:
    """`rlvr tune`: one worker in this process, or `workers` worker processes sharing the study storage;
    then the best trial of each study, printed and written to <out_dir>/tune/best.yaml."""
    import yaml

    from harness.experiments.executors import dies_with_this_process, worker_env

    if workers <= 1:
        tune_worker(sweep, only_algo)
    else:
        cmd = [sys.executable, "-m", "harness.cli", "tune", str(sweep.path), "--workers", "1", "--no-summary", *(extra_args or [])]
        procs = [subprocess.Popen(cmd, env=worker_env(sweep.executor.threads), preexec_fn=dies_with_this_process()) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"rlvr tune: worker exit codes {codes}", file=sys.stderr)
            return 1
    if not summary:
        return 0
    best = best_trials(sweep, only_algo)
    path = sweep.out_dir / "tune" / "best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(best, sort_keys=False))
    for name, b in best.items():
        print(f"{name}: " + (f"best {b['value']:.4f} (trial {b['trial']}) {json.dumps(b['params'])}" if b else "no complete trial"))
    print(f"best parameters: {path}")
    return 0


def best_trials(sweep, only_algo: list[str] | None = None) -> dict:
    """{study name: {value, params, trial} or None} read back from the storage."""
    import optuna

    storage = open_storage(sweep.tune, sweep.out_dir)
    best = {}
    for _, _, name in studies(sweep, only_algo):
        try:
            bt = optuna.load_study(study_name=name, storage=storage).best_trial
            best[name] = {"value": bt.value, "params": bt.params, "trial": bt.number}
        except (ValueError, KeyError):
            best[name] = None
    return best


def studies(sweep, only_algo: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(algorithm label, task label, study name) for every algorithm with a search space x every task."""
    tasks = dict.fromkeys(c.task for c in sweep.cells)
    return [(a, t, f"{sweep.name}.{a}.{t}") for a in sweep.tune.space if not only_algo or a in only_algo for t in tasks]
