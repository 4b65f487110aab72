"""Hostile and careless inputs: verifiers that cannot be fooled or stalled, data and configs that fail loudly
with file:line, nothing run or read that should not be. Each test failed before its fix (issue 12)."""
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.config import ConfigError, from_dict, load_config
from tasks.base import DataError
from tasks.countdown import check_expression
from tasks.geometry_jsonl import GeometryJsonl, GeometryJsonlConfig
from tasks.jsonl_math import JsonlMath, JsonlMathConfig

REPO = Path(__file__).resolve().parent.parent

# MATH-style golds as the dataset writes them, a correct prediction written another way, and a wrong one that
# shares the gold's leading number (the old bare-gold parse rewarded it)
MATH_CASES = [
    ("3\\sqrt{3}", "The answer is $\\boxed{3\\sqrt{3}}$.", "$\\boxed{3}$"),
    ("2^{100}", "so we get $2^{100}$", "$2$"),
    ("5\\pi", "$\\boxed{5\\pi}$", "$5$"),
    ("\\sqrt{2}", "$\\boxed{\\sqrt 2}$", "$\\boxed{2}$"),
    ("x^2+1", "$\\boxed{x^2+1}$", "$\\boxed{x^2}$"),
    ("\\dfrac{3}{4}", "$\\boxed{0.75}$", "$\\boxed{3}$"),
    ("\\frac{1}{2}", "$\\frac{1}{2}$", "$\\frac{1}{3}$"),
    ("(2, 5]", "$\\boxed{(2,5]}$", "$\\boxed{[2,5]}$"),
    ("3+4i", "$\\boxed{3+4i}$", "$\\boxed{3}$"),
    ("\\{1,2\\}", "$\\boxed{\\{1,2\\}}$", "$\\boxed{\\{1,3\\}}$"),
    ("-7", "$\\boxed{-7}$", "$\\boxed{7}$"),
]
GSM8K_CASES = [  # full GSM8K answer fields: the gold follows '####'
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "The answer is 72", "The answer is 24"),
    ("So she made 10 + 8 = <<10+8=18>>18\n#### 1,080", "She made $1080.", "She made 1,800 dollars"),
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def math_task(tmp_path, rows):
    return JsonlMath(JsonlMathConfig(train_path=str(write_jsonl(tmp_path / "math.jsonl", rows)), eval_size=1))


def test_math_golds_read_as_latex_and_gsm8k(tmp_path):
    cases = MATH_CASES + GSM8K_CASES
    task = math_task(tmp_path, [{"question": f"q{i}", "answer": g} for i, (g, _, _) in enumerate(cases)])
    by_question = {p.prompt.split("\n")[0]: p for split in ("train", "eval") for p in task.problems(split)}
    problems = [by_question[f"q{i}"] for i in range(len(cases))]
    assert task.score_batch(problems, [good for _, good, _ in cases]) == [1.0] * len(cases)
    assert task.score_batch(problems, [bad for _, _, bad in cases]) == [0.0] * len(cases)
    assert task.score_batch(problems, [p.answer for p in problems]) == [1.0] * len(cases)  # the warm start's target


def test_unreadable_gold_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"math.jsonl:2: gold answer '\\\\frac\{' is not readable math"):
        math_task(tmp_path, [{"question": "a", "answer": "1"}, {"question": "b", "answer": "\\frac{"}, {"question": "c", "answer": "2"}])


HOSTILE = ["$10^{10^{10}}$", "$9!!!!$", "$" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "$", "$5$", "x" * 100_000]


def test_hostile_math_answers_score_zero_fast(tmp_path):
    task = math_task(tmp_path, [{"question": "q", "answer": "5"}, {"question": "r", "answer": "5"}])
    problem = task.problems("train")[0]
    t0 = time.monotonic()
    assert task.score_batch([problem] * len(HOSTILE), HOSTILE) == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert time.monotonic() - t0 < 10  # math-verify alone spends its 5 s timeout on each of the first three (15 s)


def slow_in_c(gold, completion):
    """A check stuck in C code (no signal handler runs until it returns): only killing the process stops it."""
    return sum(range(10**11)) == 0 if "slow" in completion else completion.strip("$ ") == gold


@pytest.mark.parametrize("in_thread", [False, True])
def test_a_stuck_check_is_killed_at_its_deadline_and_counted(tmp_path, monkeypatch, in_thread):
    import threading

    task = math_task(tmp_path, [{"question": "q", "answer": "5"}, {"question": "r", "answer": "5"}])
    task.cfg.verify_timeout_s = 0.5
    monkeypatch.setattr("tasks.mathcheck.check", slow_in_c)  # forked children inherit the patch
    problem, out = task.problems("train")[0], {}
    texts = ["$5$", "slow", "$5$", "slow", "$4$", "$5$"]
    t0 = time.monotonic()
    score = lambda: out.update(r=task.score_batch([problem] * len(texts), texts))  # noqa: E731
    if in_thread:  # math-verify's own alarm refuses to work off the main thread
        thread = threading.Thread(target=score)
        thread.start()
        thread.join(30)
    else:
        score()
    assert out["r"] == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0] and task.timeouts == 2
    assert time.monotonic() - t0 < 30  # killed at its deadlines: the C loop alone would run for minutes


def test_countdown_padding_does_not_make_a_right_answer_wrong():
    assert check_expression(" " * 300 + "3*4+1" + "\n" * 50, [3, 4, 1], 13)
    assert not check_expression("1+" * 150 + "1", [1] * 151, 151)  # long expressions stay refused


@pytest.mark.parametrize("text, message", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", r"cfg.yaml:4: .*more than 20 aliases"),
    ("algo: grpo\ntask: countdown\nalgo: rloo\n", r"cfg.yaml:3: .*duplicate key 'algo'"),
    ("train:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", r"cfg.yaml:3: .*duplicate key 'lr'"),
])
def test_yaml_alias_bombs_and_duplicate_keys_are_refused(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("override", ["budget.amount=nan", "budget.eval_every=.nan", "algo_args.kl_coef=nan", "train.lr=inf", "task_args.verify_timeout_s=nan"])
def test_non_finite_numbers_are_refused(override):
    extra = ["task=jsonl_math", "task_args.train_path=x.jsonl"] if "verify" in override else []
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_config(None, extra + [override])


@pytest.mark.parametrize("raw, message", [
    (b'{"question": "a", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n', "x.jsonl:2: not UTF-8"),
    (b'{"question": "a", "answer": ' + b"9" * 5000 + b"}\n", "x.jsonl:1: unreadable JSON value"),
    (b'{"question": ' + b"[" * 100_000 + b"]" * 100_000 + b', "answer": "1"}\n', "x.jsonl:1: (JSON nested too deeply|not valid JSON)"),
    (b"\x00\x01\x02\xff\xfe", "x.jsonl:1: not UTF-8"),
])
def test_binary_latin1_huge_and_nested_lines_name_file_and_line(tmp_path, raw, message):
    path = tmp_path / "x.jsonl"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message):
        JsonlMath(JsonlMathConfig(train_path=str(path), eval_size=0))


def test_duplicates_are_dropped_before_the_hold_out(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(100)]
    rows += rows[:30]  # 23% repeated lines
    with pytest.warns(UserWarning, match="30 repeated problems dropped"):
        task = JsonlMath(JsonlMathConfig(train_path=str(write_jsonl(tmp_path / "m.jsonl", rows)), eval_size=20))
    train = {p.prompt for p in task.problems("train")}
    assert not train & {p.prompt for p in task.problems("eval")}
    assert len(train) == 80


def test_conflicting_repeats_eval_overlap_and_same_file_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"a.jsonl:3: the same problem as .*a.jsonl:1 with another answer"):
        JsonlMath(JsonlMathConfig(train_path=str(write_jsonl(tmp_path / "a.jsonl", [{"question": "q", "answer": "1"}, {"question": "r", "answer": "1"}, {"question": "q", "answer": "2"}])), eval_size=0))
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": f"q{i}", "answer": "1"} for i in range(10)])
    held = write_jsonl(tmp_path / "eval.jsonl", [{"question": "z", "answer": "1"}, {"question": "q3", "answer": "1"}])
    with pytest.raises(DataError, match=r"eval.jsonl: 1 of 2 problems are also in .*train.jsonl \(first: .*eval.jsonl:2\)"):
        JsonlMath(JsonlMathConfig(train_path=str(train), eval_path=str(held)))
    with pytest.raises(ConfigError, match="task_args.eval_path: the same file as train_path"):
        JsonlMath(JsonlMathConfig(train_path=str(train), eval_path=str(tmp_path / "." / "train.jsonl")))


def write_images(tmp_path, rows_images):
    """A JSONL whose lines point at the given image names; returns its path."""
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "ok.png")
    rows = [{"image": name, "question": f"q{i}", "choices": ["1", "2"], "answer": "A"} for i, name in enumerate(rows_images)]
    return write_jsonl(root / "train.jsonl", rows)


def load_images(path, **kw):
    cfg = from_dict(GeometryJsonlConfig, {"train_path": str(path), "eval_size": 1, **kw})
    cfg.validate()
    return GeometryJsonl(cfg)


def test_image_paths_stay_inside_image_root(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(secret)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "link.png").symlink_to(secret)
    for name in ("../secret.png", str(secret), "link.png"):
        path = write_images(tmp_path, ["ok.png", "ok.png", name])
        with pytest.raises(DataError, match=r"train.jsonl:3: image path .* leads outside image_root"):
            load_images(path)


def test_huge_and_bomb_images_are_refused_before_decoding(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    Image.new("L", (12_000, 12_000)).save(root / "big.png")  # 144 megapixels, a few hundred kB compressed
    path = write_images(tmp_path, ["ok.png", "ok.png", "big.png"])
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"train.jsonl:3: image .*big.png is 12000x12000 pixels; max_image_pixels"):
        load_images(path)
    assert time.monotonic() - t0 < 5
    Image.new("1", (20_000, 20_000)).save(root / "bomb.png")  # 400 Mpx: PIL's own bomb error, as a data error
    with pytest.raises(DataError, match=r"train.jsonl:3: .*bomb.png"):
        load_images(write_images(tmp_path, ["ok.png", "ok.png", "bomb.png"]), max_image_pixels=10**12)


# -- safety --------------------------------------------------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_runs_no_code_and_fails_the_run_by_name(tmp_path):
    import torch
    from conftest import tiny_run_config

    from harness.core.trainer import Trainer

    cfg = tiny_run_config(tmp_path, "name=evil")
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    (tmp_path / "evil" / "checkpoint").mkdir(parents=True)
    torch.save({"step": 1, "x": payload}, tmp_path / "evil" / "checkpoint" / "state.pt")
    trainer = Trainer(cfg, progress=False)
    with pytest.raises(ValueError, match=r"evil/checkpoint/state.pt: unreadable checkpoint .*delete it"):
        trainer.run()
    assert not marker.exists()
    summary = trainer.store.summary()
    assert summary["status"] == "failed" and "state.pt" in summary["error"]


@pytest.mark.parametrize("name", ["../..", "a/b", "..", "/tmp/x"])
def test_run_names_stay_inside_out_dir(name):
    with pytest.raises(ConfigError, match="name: .* must be one directory name inside out_dir"):
        load_config(None, [f"name={name}"])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_results_respect_the_umask(tmp_path, umask, mode):
    import os

    import torch

    from harness.core.store import atomic_torch_save, atomic_write

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "summary.json", "{}")
        atomic_torch_save({"a": torch.zeros(1)}, tmp_path / "state.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "state.pt").stat().st_mode & 0o777 == mode


def test_failed_atomic_writes_leave_no_partial_files(tmp_path, monkeypatch):
    import errno
    import os

    from harness.core.store import atomic_write

    target = tmp_path / "summary.json"
    atomic_write(target, '{"status": "running"}')

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, '{"status": "complete"}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert target.read_text() == '{"status": "running"}'


# -- sweeps --------------------------------------------------------------------------------------------------------


def tiny_sweep(tmp_path, **fields):
    from test_sweep import write_sweep

    return write_sweep(tmp_path / "s.yaml", **fields)


def test_cells_that_would_share_a_directory_are_refused(tmp_path):
    from harness.experiments.sweep import load_sweep

    path = tiny_sweep(tmp_path, algos=[{"label": "a-b", "algo": "grpo"}, {"label": "a", "algo": "rloo"}],
                      tasks=[{"label": "c", "task": "arithmetic"}, {"label": "b-c", "task": "arithmetic"}])
    with pytest.raises(ConfigError, match=r"s.yaml: cells \(a-b, c, -\) and \(a, b-c, -\) would share the directory a-b-c-s0"):
        load_sweep(path)


def test_workers_ignore_modules_in_the_working_directory(tmp_path):
    import subprocess
    import sys

    path = tiny_sweep(tmp_path, plugins=["tests.plugins.faulty"])
    hostile = tmp_path / "cwd"
    hostile.mkdir()
    for name in ("tasks.py", "algorithms.py", "harness.py"):
        (hostile / name).write_text("raise SystemExit('imported from the working directory')\n")
    rlvr = Path(sys.executable).parent / "rlvr"  # the console script: its folder, not the cwd, leads sys.path
    sweep = subprocess.run([str(rlvr), "sweep", str(path)], cwd=hostile, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert json.loads((tmp_path / "runs" / "grpo-arithmetic-s0" / "summary.json").read_text())["status"] == "complete"


def test_dotted_exception_names_are_the_sweep_error(tmp_path):
    from harness.experiments.runner import Job, _error_of

    log = tmp_path / "x.log"
    log.write_text("Traceback (most recent call last):\n  File \"x\", line 1\nharness.config.ConfigError: train.lr: bad\n")
    assert _error_of(Job("x", "run", {}, [], log), 1) == "harness.config.ConfigError: train.lr: bad"


def test_corrupt_summary_and_config_name_the_file_and_the_rest_go_on(tmp_path):
    import subprocess
    import sys

    from harness.analysis.report import load_results
    from harness.experiments.runner import status_table
    from harness.experiments.sweep import load_sweep

    path = tiny_sweep(tmp_path, seeds=[0, 1, 2])
    assert subprocess.run([sys.executable, "-m", "harness.cli", "sweep", str(path)], cwd=REPO, capture_output=True).returncode == 0
    runs = tmp_path / "runs"
    (runs / "grpo-arithmetic-s0" / "summary.json").write_text('{"status": "compl')
    (runs / "grpo-arithmetic-s1" / "config.yaml").write_text("algo: [unclosed\n")
    sweep = load_sweep(path)
    table = status_table(sweep)
    assert "s0" in table and "summary.json: unreadable" in table and "config.yaml: unreadable" in table
    res = load_results(path)
    assert [r.name for r in res.runs] == ["grpo-arithmetic-s1", "grpo-arithmetic-s2"]  # s1's results are intact
    assert any("grpo-arithmetic-s0: " in s and "summary.json: unreadable" in s for s in res.skipped)
    rerun = subprocess.run([sys.executable, "-m", "harness.cli", "sweep", str(path)], cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout
    assert "skipped  grpo-arithmetic-s1" in rerun.stdout and "config.yaml: unreadable" in rerun.stdout
    assert json.loads((runs / "grpo-arithmetic-s0" / "summary.json").read_text())["status"] == "complete"  # redone


# -- interrupts, W&B, the CLI --------------------------------------------------------------------------------------



def test_sigint_checkpoints_exits_130_and_the_rerun_equals_an_uninterrupted_run(tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import TINY, learning

    from harness.core.store import read_jsonl

    def args(name):
        return [sys.executable, "-m", "harness.cli", "run", "-q", *TINY, "policy.warm_start=false", f"out_dir={tmp_path}",
                f"name={name}", "threads=1", "train.prompts_per_step=4", "train.group_size=4", "budget.amount=1600",
                "budget.eval_every=800", "budget.eval_prompts=8", "budget.eval_samples=2", "wandb.mode=disabled",
                "train.checkpoint_every=1000", "task_args.train_size=200", "task_args.eval_size=16"]

    metrics = tmp_path / "i" / "metrics.jsonl"
    proc = subprocess.Popen(args("i"), cwd=REPO, stderr=subprocess.PIPE, text=True)
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 10:
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait() == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted at step" in err and "rerun the same command" in err
    summary = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] >= 10  # no step lost despite checkpoint_every=1000
    assert subprocess.run(args("i"), cwd=REPO, capture_output=True).returncode == 0
    assert subprocess.run(args("u"), cwd=REPO, capture_output=True).returncode == 0
    for f in ("metrics.jsonl", "evals.jsonl"):
        assert learning(read_jsonl(tmp_path / "i" / f)) == learning(read_jsonl(tmp_path / "u" / f))


def test_interrupted_warm_start_resumes_exactly(tmp_path, monkeypatch):
    import torch

    from harness.experiments.pretrain import warm_start
    from harness.signals import Interrupted

    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "a"))
    overrides = ["policy.hidden_size=32", "policy.num_layers=1", "policy.num_heads=2", "policy.num_kv_heads=1",
                 "policy.intermediate_size=64", "pretrain.steps=60", "pretrain.check_every=20", "pretrain.min_steps=60",
                 "task_args.train_size=200", "task_args.eval_size=32", "threads=1"]
    cfg = load_config(None, overrides)
    calls = iter(range(1000))
    monkeypatch.setattr("harness.experiments.pretrain.stop_requests", lambda: _Stopper(lambda: 2 if next(calls) >= 30 else None))  # SIGINT before step 31
    with pytest.raises(Interrupted, match="warm start interrupted at step 30"):
        warm_start(cfg, progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "a"))
    resumed = warm_start(cfg, progress=False)
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "b"))
    straight = warm_start(cfg, progress=False)
    a = json.loads((resumed / "meta.json").read_text())
    assert a["history"] == json.loads((straight / "meta.json").read_text())["history"]
    assert not list((tmp_path / "a" / "warm_start").glob("*.partial.pt"))
    from safetensors.torch import load_file

    wa, wb = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _Stopper:
    """stop_requests() stand-in: yields a callable saying which signal arrived."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        return self.fn

    def __exit__(self, *exc):
        return False


def test_wandb_mode_from_the_environment_wins_and_online_without_key_fails_clearly(tmp_path, monkeypatch):
    from conftest import tiny_run_config

    from harness.core.trainer import Trainer

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = tiny_run_config(tmp_path, "wandb.mode=offline", "name=env")
    assert Trainer(cfg, progress=False).run()["status"] == "complete"
    assert not (tmp_path / "env" / "wandb-files").exists()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    trainer = Trainer(tiny_run_config(tmp_path, "wandb.mode=online", "name=online"), progress=False)
    with pytest.raises(ConfigError, match="wandb.mode: online needs a W&B API key"):
        trainer.run()
    assert trainer.store.summary()["status"] == "failed"


def test_closed_stdout_is_not_a_traceback():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "config"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `| head` that has left
    err = proc.stderr.read()
    assert proc.wait() == 0 and err == ""


# -- installation --------------------------------------------------------------------------------------------------


def test_cache_is_the_user_cache_directory(monkeypatch, tmp_path):
    from harness.core.store import cache_root

    monkeypatch.delenv("RLVR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "rlvr-harness"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "rlvr-harness"


def test_the_wheel_ships_the_presets_and_they_load_by_name(tmp_path):
    import subprocess
    import sys
    import zipfile

    from harness.experiments.sweep import load_sweep

    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    presets = sorted(p.name for p in (REPO / "sweeps").glob("*.yaml"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("sweeps/") and n.endswith(".yaml")) == presets
    assert load_sweep("quickstart").name == load_sweep("sweeps/quickstart.yaml").name == "quickstart"


def test_transformers_pin_is_bounded_and_the_sampler_uses_current_arguments(tiny_policy):
    import tomllib
    import warnings

    from harness.engines.sampler import TorchSampler

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("transformers>=") and ",<5." in d for d in deps)
    sampler = TorchSampler(tiny_policy.model, tiny_policy.eos_id, tiny_policy.pad_id, fast=False)  # the model's own forward
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        sampler.generate([[5, 6, 7]] * 2, max_new_tokens=4, seed=0)


# -- silent wrong data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [["train.group_size=1"], ["algo=rloo", "train.group_size=1"], ["algo=dapo", "train.group_size=1"],
                                       ["algo=maxpo", "train.group_size=4"]])
def test_group_sizes_that_train_nothing_are_refused(overrides):
    with pytest.raises(ConfigError, match="train.group_size"):
        load_config(None, overrides)


def test_over_long_prompts_are_refused_at_load_with_file_and_line(tmp_path):
    from conftest import TINY

    from harness.core.trainer import Trainer

    rows = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(20)]
    rows.insert(7, {"question": "x" * 100_000, "answer": "1"})
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    cfg = load_config(None, TINY + ["policy.warm_start=false", "task=jsonl_math", f"task_args.train_path={path}", "task_args.eval_size=4",
                                    "task_args.max_new_tokens=8", f"out_dir={tmp_path}", "wandb.mode=disabled", "train.prompts_per_step=4"])
    with pytest.raises(DataError, match=r"long.jsonl:8: prompt is 100009 tokens; with max_new_tokens=8 that exceeds the policy's 128 positions"):
        Trainer(cfg, progress=False)


def test_cpu_clock_charges_work_done_in_child_processes():
    """The bounded math verifier checks answers in forked children: their CPU time is the run's cost too."""
    import subprocess
    import sys

    from harness.core.ledger import Ledger

    ledger = Ledger(flops_per_token=1.0, clock="cpu")
    with ledger.phase("score"):
        subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"], check=True)
    assert ledger.seconds["score"] >= 0.35
