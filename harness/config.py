"""Run configuration: dataclasses whose fields document themselves, YAML files and dotted CLI overrides.

    cfg = load_config("my.yaml", ["algo=grpo", "task=countdown", "train.lr=1e-4"])

Every error is a `ConfigError` naming the dotted field (and `file:line` when it came from a YAML file).
Plugin sections (`algo_args`, `task_args`) are checked against the plugin's own config dataclass. The
plain-data machinery lives in `harness.plain`; its names plugins use (`ConfigError`, `doc`, ...) are
re-exported here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.plain import (  # noqa: F401  re-exported: the names plugins and callers import from here
    ConfigError,
    config_hash,
    deep_merge,
    describe,
    doc,
    flat_keys,
    from_dict,
    parse_overrides,
    read_yaml,
    require_positive,
    set_dotted,
    to_dict,
    with_location,
)
from harness.registry import ALGORITHMS, TASKS, resolve_plugins


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
    dtype: Literal["float32", "bfloat16"] = doc(
        "Compute dtype of every forward pass (sampler, trainer, evaluation) through autocast; weights and optimizer "
        "state stay float32 (master weights), whatever the checkpoint's dtype. bfloat16 pays on GPUs and on CPUs with "
        "bf16 matmul units (AVX512-BF16, AMX); elsewhere it is far slower than float32 (bench/checkpoint.py measures it).", "float32")
    chat_template: Literal["auto", "on", "off"] = doc(
        "Wrap each prompt in the checkpoint's chat template as a user turn (on), or not (off); auto = on when policy.path's "
        "tokenizer has one and the task is text-only (the embedded model has none).", "auto")
    system_prompt: str | None = doc("System turn ahead of every prompt (needs the chat template).", None)

    def validate(self) -> None:
        if self.path is None and (self.chat_template == "on" or self.system_prompt is not None):
            raise ConfigError("policy.chat_template/system_prompt: the embedded model has no chat template; set policy.path to a checkpoint with one")
        require_positive(self, "policy.", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_positions", "image_size", "patch_size")
        if self.image_size % self.patch_size:
            raise ConfigError(f"policy.patch_size: {self.patch_size} does not divide image_size={self.image_size}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"policy.hidden_size: {self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"policy.num_kv_heads: {self.num_kv_heads} does not divide num_heads={self.num_heads}")
        if self.path is not None:
            from harness.engines.checkpoints import source_path  # engines build on config: imported when needed

            source_path(self.path)  # a missing file or package fails here, before any compute


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


def build_run_config(data: dict) -> RunConfig:
    """Plain data -> validated RunConfig, plugin sections checked: how every entry point (the CLI, a sweep's
    cells, a tuner's trials, a worker) makes a run's config."""
    cfg = from_dict(RunConfig, data)
    cfg.validate()
    resolve_plugins(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (optional) + dotted overrides -> validated RunConfig, plugin sections checked too."""
    data: dict = {}
    lines: dict[str, int] = {}
    if path is not None:
        data, lines = read_yaml(path)
    override_data = parse_overrides(overrides or [])
    try:
        cfg = build_run_config(deep_merge(data, override_data))
    except ConfigError as e:
        if path is None:
            raise
        raise with_location(e, Path(path), lines, flat_keys(override_data)) from None
    return cfg


_MISSING = object()


def changed_fields(stored: dict, current: dict) -> list[str]:
    """Dotted fields whose values differ between a stored resolved config and the current one. A field the
    stored config lacks counts only if its current value is not RunConfig's default: runs written before a
    field existed behaved as its default does, so they stay valid (resumable, complete) after an upgrade."""
    defaults = to_dict(RunConfig())
    for section, registry, name in (("task_args", TASKS, current.get("task")), ("algo_args", ALGORITHMS, current.get("algo"))):
        try:  # a plugin's own defaults: a field added to a task or algorithm config must not orphan older runs either
            preset = registry.get(name).config
        except ConfigError:  # an unknown plugin is reported elsewhere; compare as before
            continue
        if preset is not None:
            defaults[section] = to_dict(preset)

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
