"""Run configuration: dataclasses whose fields document themselves, YAML files and dotted CLI overrides.

    cfg = load_config("my.yaml", ["algo=grpo", "task=countdown", "train.lr=1e-4"])

Every error is a `ConfigError` naming the dotted field (and `file:line` when it came from a YAML file).
Plugin sections (`algo_args`, `task_args`) are checked against the plugin's own config dataclass.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and, where known, the file and line."""


def doc(text: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that carries its own documentation (shown by `rlvr run --help-config`)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


def require_positive(obj: Any, section: str, *names: str) -> None:
    """Raise a ConfigError naming `section.name` for the first field that is set and not > 0."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{section}{name}: must be > 0, got {value}")


@dataclass
class PolicyConfig:
    path: str | None = doc("Local Hugging Face checkpoint (model + tokenizer). None = the embedded tiny Qwen2.", None)
    hidden_size: int = doc("Embedded model: hidden width.", 128)
    num_layers: int = doc("Embedded model: transformer blocks.", 4)
    num_heads: int = doc("Embedded model: attention heads.", 4)
    num_kv_heads: int = doc("Embedded model: key/value heads (grouped-query attention).", 2)
    intermediate_size: int = doc("Embedded model: MLP width.", 512)
    max_positions: int = doc("Embedded model: longest prompt + completion in tokens.", 128)
    image_size: int = doc("Image tasks: images are resized to image_size x image_size pixels (a Qwen2-VL policy.path rounds it to a multiple of 28).", 64)
    patch_size: int = doc("Embedded model on image tasks: pixels per patch side; one image token per patch.", 8)
    warm_start: bool = doc("Embedded model: start RL from the cached supervised warm start (built when missing).", True)
    device: str = doc("torch device of the policy during RL, e.g. cpu or cuda.", "cpu")

    def validate(self) -> None:
        require_positive(self, "policy.", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_positions", "image_size", "patch_size")
        if self.image_size % self.patch_size:
            raise ConfigError(f"policy.patch_size: {self.patch_size} does not divide image_size={self.image_size}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"policy.hidden_size: {self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"policy.num_kv_heads: {self.num_kv_heads} does not divide num_heads={self.num_heads}")
        if self.path is not None and not Path(self.path).exists():
            raise ConfigError(f"policy.path: no such directory {self.path!r}")


@dataclass
class SamplerConfig:
    engine: str = doc("Rollout engine name (see `rlvr list`).", "torch")
    temperature: float = doc("Sampling temperature for training rollouts (also divides trainer logits).", 1.0)
    top_p: float = doc("Nucleus sampling mass; 1.0 = off.", 1.0)
    max_new_tokens: int | None = doc("Completion length cap; None = the task's own default.", None)
    engine_args: dict = doc("Extra keyword arguments of the engine (vllm: passed to vllm.LLM, e.g. gpu_memory_utilization).", factory=dict)
    correction: Literal["none", "token_truncate", "token_mask", "seq_truncate", "seq_mask"] = doc(
        "Correct the engine/trainer log-prob mismatch on fresh rollouts with w = pi_old(trainer) / mu(engine): per token "
        "or per sequence (product over tokens); truncate = min(w, cap) (TIS), mask = w where 1/cap <= w <= cap, else 0.",
        "none",
    )
    correction_cap: float = doc("The cap C of `correction`.", 2.0)

    def validate(self) -> None:
        require_positive(self, "sampler.", "temperature", "max_new_tokens")
        if self.correction_cap <= 1:
            raise ConfigError(f"sampler.correction_cap: must be > 1, got {self.correction_cap}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"sampler.top_p: must be in (0, 1], got {self.top_p}")


@dataclass
class TrainConfig:
    prompts_per_step: int = doc("Prompts drawn per step (groups per batch).", 32)
    group_size: int = doc("Rollouts per prompt (G).", 8)
    lr: float = doc("AdamW learning rate.", 3e-4)
    weight_decay: float = doc("AdamW weight decay.", 0.0)
    betas: tuple[float, float] = doc("AdamW betas.", (0.9, 0.99))
    ppo_epochs: int = doc("Passes over each batch.", 1)
    minibatches: int = doc("Optimizer steps per epoch (batch split into this many mini-batches).", 1)
    grad_clip: float | None = doc("Max global grad norm; None = no clipping.", 1.0)
    checkpoint_every: int = doc("Save a resumable checkpoint every this many steps.", 20)

    def validate(self) -> None:
        require_positive(self, "train.", "prompts_per_step", "group_size", "ppo_epochs", "minibatches", "checkpoint_every", "lr", "grad_clip")


BudgetUnit = Literal["rollouts", "tokens", "flops", "seconds"]


@dataclass
class BudgetConfig:
    unit: BudgetUnit = doc("What the budget counts: rollouts, tokens (generated), flops or seconds (charged).", "rollouts")
    amount: float = doc("Stop once the charged total in `unit` reaches this.", 20_000)
    eval_every: float = doc("Evaluate at every multiple of this many `unit`s (and at 0 and at the end).", 5_000)
    eval_prompts: int | None = doc("Held-out prompts per evaluation; None = the task's whole eval split.", None)
    eval_samples: int = doc("Samples per held-out prompt at the training temperature (unbiased pass@k for k <= this).", 16)
    eval_early: int = doc("Extra evaluations before the first eval_every, at eval_every / 2, / 4, ... (this many): "
                          "curves that rise fast at first then locate their early crossings of a target.", 0)
    clock: Literal["cpu", "wall"] = doc(
        "What charged seconds count: cpu = the run process's CPU time (all its threads; other processes on the "
        "machine do not inflate it), wall = elapsed time (use on a GPU, where the CPU waits). Both are logged.", "cpu")
    max_steps: int | None = doc("Optional hard cap on optimizer steps (a safety net, never the x-axis).", None)

    def validate(self) -> None:
        require_positive(self, "budget.", "amount", "eval_every", "eval_prompts", "eval_samples", "max_steps")
        if not 0 <= self.eval_early <= 10:
            raise ConfigError(f"budget.eval_early: need 0-10 extra early evaluations, got {self.eval_early}")


@dataclass
class PretrainConfig:
    steps: int = doc("Maximum supervised steps.", 3000)
    batch_size: int = doc("Sequences per supervised step.", 128)
    lr: float = doc("Peak AdamW learning rate (linear warm-up over 50 steps, then constant).", 3e-3)
    check_every: int = doc("Measure sampled accuracy every this many steps.", 100)
    min_steps: int = doc("Never stop before this many steps.", 200)
    band: tuple[float, float] = doc(
        "Stop once sampled pass@1 on held-out prompts lands in [lo, hi]: RL needs prompts it sometimes solves.",
        (0.2, 0.6),
    )
    check_prompts: int = doc("Held-out prompts per check (each sampled 8 times).", 64)

    def validate(self) -> None:
        lo, hi = self.band
        if not 0 <= lo < hi <= 1:
            raise ConfigError(f"pretrain.band: need 0 <= lo < hi <= 1, got {self.band}")
        require_positive(self, "pretrain.", "steps", "batch_size", "check_every", "check_prompts")


@dataclass
class WandbConfig:
    mode: Literal["offline", "online", "disabled"] = doc("W&B mode; offline by default (sync later with `wandb sync`).", "offline")
    project: str = doc("W&B project.", "rlvr-harness")
    entity: str | None = doc("W&B entity (team); None = your default.", None)


@dataclass
class RunConfig:
    algo: str = doc("Algorithm name (see `rlvr list`).", "grpo")
    algo_args: dict = doc("Overrides of the algorithm preset's switches (checked against its config class).", factory=dict)
    task: str = doc("Task name (see `rlvr list`).", "arithmetic")
    task_args: dict = doc("Task difficulty knobs (checked against the task's config class).", factory=dict)
    seed: int = doc("Seed for data order, sampling and initialisation.", 0)
    stream: int = doc("Offset of the sampling and mini-batch random streams at the same seed (0 = none): an A/A "
                      "control runs one method under two streams and must find no difference.", 0)
    threads: int = doc("torch intra-op threads (results are bit-identical only at a fixed count).", 2)
    out_dir: str = doc("Results store root; the run lives in out_dir/name.", "runs")
    name: str | None = doc("Run directory name; None = algo-task-seed.", None)
    policy: PolicyConfig = doc("Policy model.", factory=PolicyConfig)
    sampler: SamplerConfig = doc("Rollout engine.", factory=SamplerConfig)
    train: TrainConfig = doc("Optimisation.", factory=TrainConfig)
    budget: BudgetConfig = doc("Compute budget and evaluation schedule.", factory=BudgetConfig)
    pretrain: PretrainConfig = doc("Supervised warm start of the embedded model.", factory=PretrainConfig)
    wandb: WandbConfig = doc("Weights & Biases mirror of the results store.", factory=WandbConfig)

    @property
    def run_name(self) -> str:
        return self.name or f"{self.algo}-{self.task}-s{self.seed}"

    def validate(self) -> None:
        require_positive(self, "", "threads")
        if self.name is not None and (Path(self.name).name != self.name or self.name in ("", ".", "..") or "\x00" in self.name):
            raise ConfigError(f"name: {self.name!r} must be one directory name inside out_dir (no '/', '..' or empty)")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value) and hasattr(value, "validate"):
                value.validate()


# ----------------------------------------------------------------------------------------------------------------
# Building dataclasses from plain data, with errors that name the field


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` to type `tp` (a dataclass field annotation) or raise a ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict,) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):  # PyYAML reads 1e-4 as a string; accept it
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected float, got {value!r}")
        if not math.isfinite(number):  # nan compares false with every bound, so it would slip through validation
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected str, got {value!r}")
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a (nested) mapping, rejecting unknown keys with a did-you-mean hint."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"unknown field '{prefix}{key}'{hint}")
        kwargs[key] = coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (tuples become lists), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def config_hash(*parts: Any) -> str:
    """Stable short hash of plain data (used for caches)."""
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: '{k}' is a value, not a section")
        node = nxt
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """`["train.lr=1e-4", "algo=grpo"]` -> nested dict (values parsed as YAML scalars, coerced later)."""
    data: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override {item!r}: empty key")
        value = yaml.safe_load(raw) if raw else ""
        if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
            value = raw  # YAML 1.1 reads on/off/yes/no as booleans; keep the word, fields coerce it
        set_dotted(data, key.strip(), value)
    return data


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MAX_YAML_ALIASES = 20  # enough to share a few blocks; bounds what a crafted file can expand to


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (YAML would keep the last one silently) and more than
    MAX_YAML_ALIASES aliases (a few hundred bytes of nested aliases expand to billions of nodes)."""

    def compose_document(self):
        self.aliases = 0
        return super().compose_document()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_YAML_ALIASES} aliases (*name)", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_lines(root: yaml.Node | None) -> dict[str, int]:
    """Dotted key -> 1-based line number, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}{k.value}"
                lines[key] = k.start_mark.line + 1
                walk(v, key + ".")
        elif isinstance(node, yaml.SequenceNode):  # list items as key.0, key.1, ...
            for i, v in enumerate(node.value):
                lines[f"{prefix}{i}"] = v.start_mark.line + 1
                walk(v, f"{prefix}{i}.")

    if root is not None:
        walk(root, "")
    return lines


def read_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    path = Path(path)
    try:
        loader = _StrictLoader(path.read_text())
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else {}
        finally:
            loader.dispose()
        data = data if data is not None else {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    return data, _yaml_lines(root)


def _mentions(msg: str, key: str) -> bool:
    return f"'{key}'" in msg or msg.startswith(f"{key}:") or f" {key}:" in msg


def _with_location(err: ConfigError, path: Path, file_lines: dict[str, int], cli_keys: list[str]) -> ConfigError:
    """Prefix `file:line` when the offending key came from the YAML file rather than the command line."""
    msg = str(err)
    if any(_mentions(msg, k) for k in cli_keys):
        return err
    key = max((k for k in file_lines if _mentions(msg, k)), key=len, default=None)
    return ConfigError(f"{path}:{file_lines[key]}: {msg}" if key else f"{path}: {msg}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (optional) + dotted overrides -> validated RunConfig, plugin sections checked too."""
    data: dict = {}
    lines: dict[str, int] = {}
    if path is not None:
        data, lines = read_yaml(path)
    override_data = parse_overrides(overrides or [])
    try:
        cfg = from_dict(RunConfig, deep_merge(data, override_data))
        cfg.validate()
        from harness.registry import resolve_plugins

        resolve_plugins(cfg)
    except ConfigError as e:
        if path is None:
            raise
        raise _with_location(e, Path(path), lines, flat_keys(override_data)) from None
    return cfg


def changed_fields(stored: dict, current: dict) -> list[str]:
    """Dotted fields whose values differ between a stored resolved config and the current one. A field the
    stored config lacks counts only if its current value is not RunConfig's default: runs written before a
    field existed behaved as its default does, so they stay valid (resumable, complete) after an upgrade."""
    defaults = to_dict(RunConfig())

    def get(data: dict, dotted: str) -> Any:
        for part in dotted.split("."):
            if not isinstance(data, dict) or part not in data:
                return _MISSING
            data = data[part]
        return data

    out = []
    for key in sorted(set(flat_keys(stored)) | set(flat_keys(current))):
        old, new = get(stored, key), get(current, key)
        if isinstance(new, dict) or old == new or (old is _MISSING and new == get(defaults, key)):
            continue
        out.append(key)
    return out


_MISSING = object()


def flat_keys(data: dict, prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping, sections included: {"a": {"b": 1}} -> ["a", "a.b"]."""
    out = []
    for k, v in data.items():
        out.append(f"{prefix}{k}")
        if isinstance(v, dict):
            out.extend(flat_keys(v, f"{prefix}{k}."))
    return out


def describe(cls: type, prefix: str = "") -> list[str]:
    """Lines `field (type, default): doc` for `--help-config`."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(describe(tp, f"{prefix}{f.name}."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('doc', '')}")
    return out
