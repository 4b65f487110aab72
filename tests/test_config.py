import pytest

from harness.config import ConfigError, RunConfig, describe, load_config


def test_defaults_validate_and_overrides_coerce():
    cfg = load_config(None, ["algo=rloo", "task=countdown", "train.lr=1e-4", "budget.amount=5e3", "sampler.max_new_tokens=null"])
    assert cfg.algo == "rloo" and cfg.task == "countdown"
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.budget.amount == 5000.0
    assert cfg.sampler.max_new_tokens is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown field 'train.lrr' (did you mean 'train.lr'?)"),
        ("train.lr=fast", "train.lr: expected float, got 'fast'"),
        ("train.group_size=2.5", "train.group_size: expected int"),
        ("algo=grpoo", "unknown algorithm 'grpoo' (did you mean 'grpo'?)"),
        ("task=sudoku", "unknown task 'sudoku'"),
        ("budget.unit=steps", "budget.unit: expected one of ['rollouts', 'tokens', 'flops', 'seconds']"),
        ("algo_args.clip_hgh=0.3", "unknown field 'algo_args.clip_hgh' (did you mean 'algo_args.clip_high'?)"),
        ("task_args.operators=+/", "task_args.operators"),
        ("sampler.top_p=1.5", "sampler.top_p: must be in (0, 1]"),
        ("policy.num_heads=3", "policy.hidden_size: 128 is not divisible by num_heads=3"),
        ("pretrain.band=[0.7,0.2]", "pretrain.band"),
        ("train", "expected key=value"),
    ],
)
def test_bad_input_names_the_field(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_errors_name_file_and_line(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("algo: grpo\ntrain:\n  lr: 0.001\n  group_sise: 8\n")
    with pytest.raises(ConfigError, match=r"run.yaml:4: unknown field 'train.group_sise'"):
        load_config(p)
    p.write_text("algo: grpo\ntrain: [1,\n")
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: invalid YAML"):
        load_config(p)
    p.write_text("task: countdown\ntask_args:\n  max_numbr: 9\n")
    with pytest.raises(ConfigError, match=r"run.yaml:3: unknown field 'task_args.max_numbr'"):
        load_config(p)


def test_yaml_and_cli_merge(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("algo: dr_grpo\ntrain:\n  lr: 2e-4\n  group_size: 4\n")
    cfg = load_config(p, ["train.group_size=16"])
    assert cfg.algo == "dr_grpo" and cfg.train.lr == pytest.approx(2e-4) and cfg.train.group_size == 16


def test_every_field_is_documented():
    lines = describe(RunConfig)
    assert lines and all(line.split("#", 1)[1].strip() for line in lines)


def test_cli_errors_are_not_blamed_on_the_file(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("algo: grpo\ntrain:\n  lr: 0.001\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["train.lr=oops"])
    assert str(e.value) == "train.lr: expected float, got 'oops'"


def test_yaml_11_boolean_words_stay_words_on_the_cli():
    cfg = load_config(None, ["algo=popo", "algo_args.reuse=pop", "algo_args.replay=off", "algo_args.quality_gate=yes"])
    from harness.registry import resolve_plugins

    algo_cfg, _ = resolve_plugins(cfg)
    assert algo_cfg.replay is False and algo_cfg.quality_gate is True
