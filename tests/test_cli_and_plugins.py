"""Command line, plugin registry and entry points, local checkpoints, every GRPO switch through a real run."""
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import tiny_run_config

import harness.engines.policy
from harness import registry
from harness.config import ConfigError, load_config
from harness.core.trainer import Trainer
from harness.engines.checkpoints import source_path
from harness.engines.policy import embedded_policy

ROOT = Path(__file__).parent.parent


def rlvr(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_list_shows_plugins_with_papers():
    out = rlvr("list")
    assert out.returncode == 0
    for name in ("grpo", "dr_grpo", "rloo", "arithmetic", "countdown", "jsonl_math", "torch"):
        assert f"  {name} " in out.stdout
    assert "arXiv:2402.03300" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["train.lrr=1"], "unknown field 'train.lrr' (did you mean 'train.lr'?)"),
    (["algo=ppo2"], "unknown algorithm 'ppo2'"),
    (["task=chess"], "unknown task 'chess'"),
    (["train.group_size=many"], "train.group_size: expected int, got 'many'"),
    (["sweeps/runs/missing.yaml"], "no such config file"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = rlvr("run", *args)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_shipped_run_configs_load():
    for path in sorted((ROOT / "sweeps" / "runs").glob("*.yaml")):
        load_config(path)


def test_entry_point_plugins_register(monkeypatch):
    @dataclass
    class EchoConfig:
        loud: bool = False

    class FakeEntryPoint:
        def load(self):
            registry.ALGORITHMS.register("echo", config=EchoConfig(), description="test plugin")(object)

    reg = registry.Registry("algorithm", "rlvr_harness.algorithms", ["algorithms"])
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "rlvr_harness.algorithms" else [])
    monkeypatch.setattr(registry, "ALGORITHMS", reg)
    assert "echo" in reg.names()
    assert reg.build_config("echo", {"loud": "true"}, "algo_args").loud is True
    with pytest.raises(ConfigError, match="unknown field 'algo_args.quiet'"):
        reg.build_config("echo", {"quiet": 1}, "algo_args")


def test_policy_path_loads_a_local_checkpoint(tmp_path):
    policy = embedded_policy(load_config(None, []).policy, seed=3)
    policy.save(tmp_path / "ckpt")
    cfg = tiny_run_config(tmp_path, f"policy.path={tmp_path / 'ckpt'}")
    t = Trainer(cfg, progress=False)
    assert t.policy.non_embedding_params == policy.non_embedding_params
    assert t.run()["status"] == "complete"
    with pytest.raises(ConfigError, match="policy.path: no such file or directory"):
        load_config(None, [f"policy.path={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="package 'no_such_pkg' is not installed"):
        load_config(None, ["policy.path=pkg:no_such_pkg/model.gguf"])
    with pytest.raises(ConfigError, match="the package has no file 'nope.gguf'"):
        load_config(None, ["policy.path=pkg:harness/nope.gguf"])
    assert source_path("pkg:harness/engines/policy.py").samefile(Path(harness.engines.policy.__file__))  # a file inside an installed package


@pytest.mark.parametrize("switches", [
    ["algo=dr_grpo"],
    ["algo=rloo"],
    ["algo_args.baseline=loo", "algo_args.adv_norm=std"],
    ["algo_args.loss_agg=seq-mean-token-mean", "algo_args.clip_high=0.28", "algo_args.dual_clip=3"],
    ["algo_args.loss_agg=seq-mean-token-sum", "algo_args.entropy_coef=0.01"],
    ["algo_args.kl_coef=0.05", "algo_args.kl_estimator=k2", "train.ppo_epochs=2", "train.minibatches=2"],
    ["sampler.top_p=0.9", "sampler.temperature=0.8", "train.grad_clip=null"],
    ["budget.unit=flops", "budget.amount=2e8", "budget.eval_every=1e8"],
    ["budget.unit=seconds", "budget.amount=0.5", "budget.eval_every=0.25"],
])
@pytest.mark.parametrize("task", ["arithmetic", "countdown"])
def test_every_switch_runs(tmp_path, switches, task):
    s = Trainer(tiny_run_config(tmp_path, f"task={task}", "task_args.train_size=64", *switches), progress=False).run()
    assert s["status"] == "complete" and s["step"] > 0
