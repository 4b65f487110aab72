"""Sweep runner: grid expansion, file:line errors, failures and retries, warm starts built once, and the
SIGKILL-at-random-moments test (every cell ends with exactly one complete, uncorrupted, exact result)."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import learning

from harness.config import ConfigError
from harness.core.store import complete_runs, read_jsonl
from harness.experiments.runner import Progress, cell_state, plan_jobs, run_sweep, warm_start_slots
from harness.experiments.sweep import load_sweep, parse_sweep
from harness.plain import to_dict

REPO = Path(__file__).resolve().parent.parent
TINY_BASE = {
    "policy": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64, "warm_start": False},
    "train": {"prompts_per_step": 4, "group_size": 4, "lr": 1.0e-3, "checkpoint_every": 2},
    "wandb": {"mode": "disabled"},
    "task_args": {"train_size": 200, "eval_size": 16},
}


def write_sweep(path: Path, **fields) -> Path:
    data = {
        "name": "t",
        "out_dir": str(path.parent / "runs"),
        "budget": {"amount": 96, "eval_every": 48, "eval_prompts": 8, "eval_samples": 2},
        "base": TINY_BASE,
        "algos": ["grpo"],
        "tasks": ["arithmetic"],
        "seeds": [0],
        "executor": {"workers": 2},
        **fields,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rlvr_sweep(file: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(file), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# -- the grid ----------------------------------------------------------------------------------------------------


def test_grid_expansion_labels_and_merge_order(tmp_path):
    sweep = parse_sweep({
        "name": "g",
        "out_dir": str(tmp_path),
        "base": {**TINY_BASE, "train.lr": 1.0e-3},
        "budget": {"amount": 500},
        "algos": ["grpo", {"label": "popo-noreplay", "algo": "popo", "algo_args": {"replay": False}, "train.lr": 2.0e-3}],
        "tasks": ["arithmetic", {"task": "countdown", "budget.amount": 700}],
        "variants": [{"label": "small", "train.group_size": 2}, {"label": "big"}],
        "seeds": 2,
        "executor": {"threads": 1},
    })
    assert len(sweep.cells) == 2 * 2 * 2 * 2
    c = sweep.cell("popo-noreplay", "countdown", 1, "small")
    assert c.name == "popo-noreplay-countdown-small-s1" and c.config.run_name == c.name
    assert (c.config.algo, c.config.task, c.config.seed, c.config.threads) == ("popo", "countdown", 1, 1)
    assert c.config.algo_args == {"replay": False}
    assert c.config.train.lr == 2.0e-3 and c.config.train.group_size == 2  # entry beats base; variant applies
    assert c.config.budget.amount == 700 and sweep.cell("grpo", "arithmetic", 0, "big").config.budget.amount == 500
    assert sweep.cell("grpo", "arithmetic", 0, "big").config.train.lr == 1.0e-3
    assert len({c.name for c in sweep.cells}) == len(sweep.cells)


@pytest.mark.parametrize("patch, match", [
    ({"algos": ["grpo", {"algo": "popo", "algo_args": {"replay_size": 3}}]}, r"s\.yaml:\d+: cell popo-arithmetic-s0: unknown field 'algo_args.replay_size'"),
    ({"algos": ["gpro"]}, r"cell gpro-arithmetic-s0: .*unknown algorithm 'gpro'.*grpo"),
    ({"budget": {"amount": -1}}, r"s\.yaml:\d+: cell grpo-arithmetic-s0: budget.amount: must be > 0"),
    ({"seeds": [0, 0]}, r"s\.yaml:\d+: seeds: expected a count or a list of distinct integers"),
    ({"algos": ["grpo", "grpo"]}, r"algos: label 'grpo' appears twice"),
    ({"executor": {"workers": 0}}, r"s\.yaml:\d+: executor.workers: must be > 0"),
    ({"sedes": [1]}, r"s\.yaml:\d+: unknown sweep field 'sedes' \(did you mean 'seeds'\?\)"),
    ({"base": {**TINY_BASE, "threads": 4}}, r"base.threads: set executor.threads"),
    ({"plugins": ["no_such_module_xyz"]}, r"plugins: cannot import 'no_such_module_xyz'"),
])
def test_bad_sweep_files_name_the_line(tmp_path, patch, match):
    with pytest.raises(ConfigError, match=match):
        load_sweep(write_sweep(tmp_path / "s.yaml", **patch))


def test_error_line_points_at_the_offending_entry(tmp_path):
    path = write_sweep(tmp_path / "s.yaml", algos=["grpo", {"algo": "popo", "algo_args": {"replay_size": 3}}])
    with pytest.raises(ConfigError) as e:
        load_sweep(path)
    line = int(str(e.value).split(":")[1])
    assert "replay_size" in path.read_text().splitlines()[line - 1]


def test_changed_sweep_refuses_to_mix_results(tmp_path):
    path = write_sweep(tmp_path / "s.yaml")
    assert all(j.status == "done" for j in run_sweep(load_sweep(path), out=open(os.devnull, "w")))
    changed = load_sweep(write_sweep(tmp_path / "s.yaml", base={**TINY_BASE, "train": {**TINY_BASE["train"], "lr": 0.5}}))
    assert cell_state(changed.cells[0])[0] == "conflict" and "train.lr" in cell_state(changed.cells[0])[1]
    with pytest.raises(ConfigError, match="different config"):
        run_sweep(changed, out=open(os.devnull, "w"))


def test_progress_eta_counts_only_work_done_in_this_session(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", seeds=2))
    jobs = plan_jobs(sweep, sweep.cells)
    p = Progress(sweep, jobs, out=open(os.devnull, "w"))
    p.t0 -= 10.0  # 10 s in, one cell done and the other half way
    jobs[0].status, jobs[1].status = "done", "running"
    p.progress[jobs[1].name] = (0.5, 0.25)
    header = p.header()
    assert "done 1 | running 1 | pending 0 | failed 0" in header and "ETA 0m03s" in header  # 0.5 left at 0.15/s
    assert "50.0%  eval/accuracy 0.250" in "\n".join(p.lines())


# -- running -----------------------------------------------------------------------------------------------------


def test_failures_are_recorded_retried_and_never_stop_the_sweep(tmp_path):
    marker = tmp_path / "failed-once"
    path = write_sweep(
        tmp_path / "s.yaml",
        plugins=["tests.plugins.faulty"],
        algos=[
            "grpo",
            {"label": "flaky", "algo": "faulty", "algo_args": {"fail": "once", "marker": str(marker)}},
            {"label": "nan", "algo": "faulty", "algo_args": {"fail": "always", "marker": str(tmp_path / "m2")}},
        ],
        executor={"workers": 2, "retries": 1},
    )
    proc = rlvr_sweep(path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # a failed cell makes the exit code non-zero
    runs = tmp_path / "runs"
    status = {c: json.loads((runs / c / "summary.json").read_text()) for c in ("grpo-arithmetic-s0", "flaky-arithmetic-s0", "nan-arithmetic-s0")}
    assert status["grpo-arithmetic-s0"]["status"] == "complete"
    assert status["flaky-arithmetic-s0"]["status"] == "complete" and marker.exists()  # failed once, resumed
    assert status["nan-arithmetic-s0"]["status"] == "failed"
    assert "FloatingPointError" in status["nan-arithmetic-s0"]["error"] and "nan" in status["nan-arithmetic-s0"]["error"]
    events = read_jsonl(runs / "events.jsonl")
    ends = [(e["job"], e["event"]) for e in events if e["event"] != "start"]
    assert ends.count(("flaky-arithmetic-s0", "retry")) == 1 and ("flaky-arithmetic-s0", "done") in ends
    assert ends.count(("nan-arithmetic-s0", "retry")) == 1 and ends.count(("nan-arithmetic-s0", "failed")) == 1
    assert "failed   nan-arithmetic-s0: FloatingPointError" in out and "2/3 cells complete, 1 failed" in out
    # the flaky cell's metrics, after a failure and a resume, are a clean sequence of steps
    steps = [r["step"] for r in read_jsonl(runs / "flaky-arithmetic-s0" / "metrics.jsonl")]
    assert steps == list(range(1, len(steps) + 1))


def test_warm_start_is_built_once_before_the_cells_that_need_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    base = {**TINY_BASE, "policy": {**TINY_BASE["policy"], "warm_start": True},
            "pretrain": {"steps": 20, "min_steps": 10, "check_every": 10, "check_prompts": 8, "batch_size": 16}}
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", base=base, algos=["grpo", "rloo"]))
    jobs = plan_jobs(sweep, sweep.cells)
    assert [j.kind for j in jobs] == ["pretrain", "run", "run"] and all(j.needs == jobs[0].name for j in jobs[1:])
    done = run_sweep(sweep, out=open(os.devnull, "w"))
    assert all(j.status == "done" for j in done)
    assert len(list((tmp_path / "cache" / "warm_start").glob("arithmetic-*[!k]"))) == 1
    assert plan_jobs(sweep, sweep.cells)[0].kind == "run"  # cached now: no warm-start job
    # both workers' threads built it (every cell was waiting on it); the cells ran on one thread each
    starts = {r["job"]: r["threads"] for r in read_jsonl(sweep.out_dir / "events.jsonl") if r["event"] == "start"}
    assert starts == {jobs[0].name: 2, **{c.name: 1 for c in sweep.cells}}


@pytest.mark.parametrize("free, ready, slots", [(2, 0, 2), (2, 1, 1), (4, 1, 3), (1, 0, 1), (1, 3, 1)])
def test_a_warm_start_takes_the_slots_no_ready_job_can_use(free, ready, slots):
    assert warm_start_slots(free, ready) == slots


def test_warm_starts_build_the_same_weights_on_any_thread_count(tmp_path, monkeypatch):
    """What lets a warm start take idle workers' threads: its key leaves the count out, so the weights must not
    depend on it (checked on the embedded default model, whose matmuls are large enough to be split)."""
    from safetensors.torch import load_file

    from harness.config import load_config
    from harness.experiments.pretrain import warm_start

    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    pre = ["pretrain.steps=20", "pretrain.min_steps=10", "pretrain.check_every=10", "pretrain.check_prompts=8", "pretrain.batch_size=16"]
    weights = []
    for threads in (1, 2):
        path = warm_start(load_config(None, ["task=arithmetic", *pre, f"threads={threads}"]), progress=False)
        weights.append(load_file(path / "model.safetensors"))
        shutil.rmtree(path)
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _finished_cells(runs: Path, names: list[str]) -> dict:
    out = {}
    for name in names:
        root = runs / name
        assert json.loads((root / "summary.json").read_text())["status"] == "complete", name
        metrics, evals = read_jsonl(root / "metrics.jsonl"), read_jsonl(root / "evals.jsonl")
        assert [r["step"] for r in metrics] == list(range(1, len(metrics) + 1)), f"{name}: lost or duplicated steps"
        points = [e["budget_point"] for e in evals]
        assert points == sorted(set(points)), f"{name}: duplicated evaluations"
        out[name] = (learning(metrics), learning(evals))
    return out


def _workers_of(runs: Path) -> list[int]:
    """PIDs of processes (other than this one) with a file of this sweep's directory open: its workers log there."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        if any(t.startswith(str(runs)) for t in targets):
            pids.append(int(proc.name))
    return pids


def _describe(pids: list[int]) -> list[str]:
    """pid, parent pid and command line of each process, for a failure message."""
    out = []
    for pid in pids:
        try:
            ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            out.append(f"{pid} (parent {ppid}): " + Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
        except OSError:
            out.append(f"{pid} (gone)")
    return out


def _rows_written(runs: Path) -> int:
    return sum(len(read_jsonl(p)) for p in runs.glob("*/metrics.jsonl"))



def test_complete_runs_lists_only_the_cells_whose_summary_says_complete(tmp_path):
    for name, summary in [("b-done", '{"status": "complete"}'), ("a-done", '{"status": "complete"}'),
                          ("failed", '{"status": "failed"}'), ("torn", '{"status": "compl'), ("new", None)]:
        (tmp_path / name).mkdir()
        if summary is not None:
            (tmp_path / name / "summary.json").write_text(summary)
    (tmp_path / "events.jsonl").write_text("")
    assert complete_runs(tmp_path) == [tmp_path / "a-done", tmp_path / "b-done"]

@pytest.mark.parametrize("parent_alive", [True, False])
def test_a_process_whose_parent_died_before_it_was_tied_to_it_kills_itself(parent_alive):
    """PR_SET_PDEATHSIG acts only from the moment it is set: a worker whose parent died just before must notice
    by itself (its parent pid changed), or it would run on, orphaned, writing into its run directory."""
    code = ("import os; from harness.experiments.executors import die_with_parent; "
            f"die_with_parent(os.getppid(){'' if parent_alive else ' + 1'}); print('still here')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    if parent_alive:
        assert (proc.returncode, proc.stdout) == (0, "still here\n"), proc.stderr
    else:
        assert (proc.returncode, proc.stdout) == (-signal.SIGKILL, ""), proc.stderr


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_gives_exactly_the_uninterrupted_results(tmp_path):
    steps = 24  # per cell; evaluations every 2 steps and checkpoints every 3, so kills land between them too
    fields = dict(algos=["grpo", "popo"], seeds=2, budget={"amount": 16 * steps, "eval_every": 32, "eval_prompts": 8, "eval_samples": 2},
                  base={**TINY_BASE, "train": {**TINY_BASE["train"], "checkpoint_every": 3}})
    (tmp_path / "ref").mkdir()
    (tmp_path / "killed").mkdir()
    ref = write_sweep(tmp_path / "ref" / "s.yaml", **fields)
    killed = write_sweep(tmp_path / "killed" / "s.yaml", **fields)
    names = [c.name for c in load_sweep(ref).cells]

    proc = rlvr_sweep(ref)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    reference = _finished_cells(tmp_path / "ref" / "runs", names)

    # kill moments: once before any worker has started, then at random amounts of training done
    runs = tmp_path / "killed" / "runs"
    targets = sorted(random.Random(0).sample(range(3, len(names) * steps - 3), 4))
    for target in [0] + targets:
        proc = rlvr_sweep(killed)
        deadline = time.time() + 120
        if target == 0:
            time.sleep(0.3)
        while target and _rows_written(runs) < target and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # the sweep process only: its workers must die with it
        proc.wait()
        deadline = time.time() + 10
        while _workers_of(runs) and time.time() < deadline:
            time.sleep(0.1)
        assert not (left := _workers_of(runs)), f"a worker outlived the killed sweep (target {target}): {_describe(left)}"
    proc = rlvr_sweep(killed)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert _finished_cells(runs, names) == reference
    assert "4 complete, 0 to run" in rlvr_sweep(killed).communicate(timeout=120)[0]  # idempotent
    starts = [e["job"] for e in read_jsonl(runs / "events.jsonl") if e["event"] == "start"]
    assert len(starts) >= len(names) + 3  # cells really were interrupted mid-run and resumed


def _private_network() -> bool:
    """True inside a network namespace with only loopback (as `make test` runs): Ray probes off-machine
    addresses when it starts, and no test may send traffic off the machine."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]  # per network namespace, unlike /sys/class/net
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


@pytest.mark.slow
@pytest.mark.skipif(not _private_network(), reason="starts Ray: run inside `make test`'s private network namespace")
def test_ray_executor_on_a_local_two_cpu_instance_matches_the_local_pool(tmp_path):
    pytest.importorskip("ray")
    fields = dict(algos=["grpo", "popo"], executor={"workers": 2})
    for kind in ("local", "ray"):
        (tmp_path / kind).mkdir()
        file = write_sweep(tmp_path / kind / "s.yaml", **fields)
        out, _ = rlvr_sweep(file, "--executor", kind).communicate(timeout=300)
        assert "2/2 cells complete" in out, out
    assert "executor: ray, 2 worker(s) x 1 thread(s), cluster CPUs 2.0" in out
    names = ["grpo-arithmetic-s0", "popo-arithmetic-s0"]
    assert _finished_cells(tmp_path / "ray" / "runs", names) == _finished_cells(tmp_path / "local" / "runs", names)


def test_a_cell_forked_from_the_preloaded_server_equals_one_in_a_fresh_process(tmp_path):
    """The local executor forks cells from a server that imported everything once; the learning metrics must be
    those of the same cell run by `python -P -m harness.experiments.worker` (what Ray runs)."""
    from harness.experiments.executors import LocalExecutor, run_job_process, worker_env
    from harness.experiments.runner import Job

    sweep = load_sweep(write_sweep(tmp_path / "s.yaml", algos=["popo"]))
    cell = sweep.cells[0]
    rows = []
    for how in ("fork", "process"):
        data = {**to_dict(cell.config), "out_dir": str(tmp_path / how)}
        job = Job(cell.name, "run", data, [], tmp_path / f"{how}.log")
        if how == "fork":
            ex = LocalExecutor(1, 1)
            ex.submit(job)
            while not (done := ex.wait(0.2)):
                pass
            ex.shutdown()
            assert done[0][1] == 0, job.log.read_text()
        else:
            assert run_job_process(job.command(), str(job.log), worker_env(1), str(REPO)) == 0, job.log.read_text()
        root = tmp_path / how / cell.name
        rows.append((learning(read_jsonl(root / "metrics.jsonl")), learning(read_jsonl(root / "evals.jsonl"))))
    assert rows[0] == rows[1] and len(rows[0][0]) > 1
