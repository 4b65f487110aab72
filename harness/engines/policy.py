"""Policy: the embedded tiny Qwen2 with a character tokenizer, or any local transformers checkpoint.

Also the one function the trainer uses to score sequences: `completion_logprobs`.
"""
from __future__ import annotations

import functools
import inspect
import json
import string
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.utils.checkpoint
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.utils import logging as hf_logging

from harness.config import PolicyConfig
from harness.engines.vision import (
    IMAGE_TOKEN,
    MROPE_VLM_TYPES,
    PatchImages,
    QwenVLImages,
    TinyVLMConfig,
    TinyVLMForCausalLM,
    drop_placeholders,
    image_forward_kwargs,
    is_mrope_vlm,
    load_image_processor,
    placeholder_token_ids,
)
from harness.plain import ConfigError

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHARS = string.printable[:95]  # digits, letters, punctuation and space: any plain-text prompt encodes

hf_logging.disable_progress_bar()  # per-shard load/save bars would drown the run's own progress bar


def build_char_tokenizer(image_token: bool = False) -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, saved/loaded as a real transformers tokenizer.
    With `image_token`, a special `<image>` placeholder is appended (last id; text ids are unchanged)."""
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for ch in CHARS:
        vocab.setdefault(ch, len(vocab))
    if image_token:
        vocab[IMAGE_TOKEN] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    extra = {"extra_special_tokens": [IMAGE_TOKEN]} if image_token else {}  # skipped when decoding completions
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, **extra)


def build_embedded_model(cfg: PolicyConfig, vocab_size: int, seed: int, image_token_id: int | None = None) -> Qwen2ForCausalLM:
    """The tiny Qwen2; with `image_token_id`, the vision variant (harness.engines.vision) with a patch encoder."""
    vision = {} if image_token_id is None else {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "image_token_id": image_token_id}
    config = (TinyVLMConfig if vision else Qwen2Config)(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        **vision,
    )
    torch.manual_seed(seed)
    model = (TinyVLMForCausalLM if vision else Qwen2ForCausalLM)(config)
    model.config._attn_implementation = "sdpa"
    return model


@dataclass
class Policy:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    images: PatchImages | QwenVLImages | None = None  # how images become placeholder tokens and pixels (vision policies)
    chat: bool = False  # prompts become a user turn of the tokenizer's chat template (configure_prompts)
    system_prompt: str | None = None

    def configure_prompts(self, chat_template: str, system_prompt: str | None, images: bool) -> None:
        """Apply policy.chat_template ('auto' | 'on' | 'off') and policy.system_prompt for a task with or without images."""
        has = getattr(self.tokenizer, "chat_template", None) is not None
        if chat_template == "on" and (not has or images):
            raise ConfigError("policy.chat_template: on, but " + ("the tokenizer has no chat template" if not has else "image prompts are not templated yet"))
        self.chat = chat_template == "on" or (chat_template == "auto" and has and not images)
        if system_prompt is not None and not self.chat:
            raise ConfigError("policy.system_prompt: needs the chat template (policy.chat_template)")
        self.system_prompt = system_prompt

    def format_prompt(self, text: str) -> str:
        """A task's prompt as the model sees it: as is, or a user turn (after the system turn) of the chat template,
        ending where the assistant's answer starts."""
        if not self.chat:
            return text
        turns = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [{"role": "user", "content": text}]
        return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def eos_ids(self) -> list[int]:
        """Every id that ends a completion: the tokenizer's EOS first, then any the checkpoint's
        generation_config adds (chat models end a turn with their own token)."""
        extra = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        extra = [] if extra is None else [extra] if isinstance(extra, int) else list(extra)
        return list(dict.fromkeys([self.eos_id, *map(int, extra)]))

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    @property
    def is_vision(self) -> bool:
        return self.images is not None

    @property
    def max_positions(self) -> int | None:
        """Longest sequence (prompt + completion) the model's positions cover, if its config says."""
        config = self.model.config
        config = getattr(config, "text_config", None) or config  # vision-language models nest it
        return getattr(config, "max_position_embeddings", None)

    def prompt_inputs(self, problems) -> tuple[list[list[int]], torch.Tensor | None]:
        """Problems -> (prompt token lists [N], per-row pixels [N, ...] or None when the problems carry no images).
        An image becomes the policy's placeholder tokens ahead of the prompt text."""
        ids = self.encode([self.format_prompt(p.prompt) for p in problems])
        with_image = [p.image is not None for p in problems]
        if not any(with_image):
            return ids, None
        if not all(with_image):
            raise ValueError("a batch mixes problems with and without images")
        if not self.is_vision:
            raise ConfigError("task: its problems carry images but the policy has no image encoder "
                              "(use the embedded policy, or policy.path to a Qwen2-VL / Qwen2.5-VL checkpoint)")
        prefix = self.images.placeholder()
        return [prefix + x for x in ids], self.images.pixels([p.image for p in problems])

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @property
    def non_embedding_params(self) -> int:
        """N in the FLOP formula: parameters outside the token embedding (and a tied/untied LM head)."""
        emb = {id(p) for p in self.model.get_input_embeddings().parameters()}
        emb |= {id(p) for p in self.model.get_output_embeddings().parameters()}
        return sum(p.numel() for p in self.model.parameters() if id(p) not in emb)


def load_policy(path: str | Path, image_size: int = 64) -> Policy:
    """Any local transformers causal LM checkpoint with its tokenizer (no hub access), including the embedded
    vision model and Qwen2-VL / Qwen2.5-VL (their images are resized to about image_size pixels square)."""
    tok_cfg = Path(path) / "tokenizer_config.json"
    tok_class = json.loads(tok_cfg.read_text()).get("tokenizer_class") if tok_cfg.exists() else None
    if tok_class in (None, "TokenizersBackend", "PreTrainedTokenizerFast"):
        # A plain tokenizer.json (ours): AutoTokenizer would pick the model type's tokenizer class
        # (Qwen2Tokenizer for our Qwen2) and rebuild its pre-tokenizer, silently dropping spaces.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if config.model_type in MROPE_VLM_TYPES:
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, attn_implementation="sdpa", dtype=torch.float32)
        return Policy(model, tokenizer, load_image_processor(path, model.config, image_size))
    # float32 master weights whatever the checkpoint holds: a bf16 AdamW update below bf16's resolution is lost
    # (policy.dtype sets the compute dtype)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa", dtype=torch.float32)
    return Policy(model, tokenizer, PatchImages(model.config) if isinstance(model, TinyVLMForCausalLM) else None)


def embedded_policy(cfg: PolicyConfig, seed: int, vision: bool = False) -> Policy:
    """The embedded tiny model; `vision` adds the image encoder and the <image> token (for image tasks)."""
    tok = build_char_tokenizer(image_token=vision)
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN) if vision else None
    model = build_embedded_model(cfg, len(tok), seed, image_token_id)
    return Policy(model, tok, PatchImages(model.config) if vision else None)


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids [B, P], mask [B, P]) left-padded to the longest, so every prompt ends at column P-1."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token ([B, T] -> [B, T])."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


def completion_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    pixel_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log pi(y_t | x, y_<t) of the completions under `model` (one forward pass, vectorised).

    prompt_ids/mask [B, P] left-padded; completion_ids/mask [B, L] right-padded; pixel_values [B, C, S, S] for
    image prompts (vision policies), or None.
    Returns logp [B, L] (0 where masked) and, if asked, the entropy of the full next-token distribution [B, L].
    Logits are divided by `temperature`, matching the sampler's behaviour log-probs. Outputs live on the model's device.
    """
    dev = next(model.parameters()).device
    prompt_ids, prompt_mask, completion_ids, completion_mask = (
        x.to(dev) for x in (prompt_ids, prompt_mask, completion_ids, completion_mask)
    )
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    L = completion_ids.shape[1]
    if pixel_values is None:  # logits of the completion positions only: at a 150k vocabulary the rest is most of the memory
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), **keep_last(model, L + 1)).logits
    elif is_mrope_vlm(model):  # Qwen2-VL family: the model computes its M-RoPE positions from the ids and the image grid
        logits = model(input_ids=ids, attention_mask=mask, **image_forward_kwargs(model, ids, pixel_values.to(dev))).logits
    else:
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), pixel_values=pixel_values.to(dev)).logits
    logits = drop_placeholders(logits[:, -L - 1 : -1], placeholder_token_ids(model))
    logp, ent = token_logprobs(logits, completion_ids, temperature, with_entropy)
    return logp * completion_mask, None if ent is None else ent * completion_mask


CHUNK_ELEMENTS = 1 << 24  # float32 logits token_logprobs holds at once (64 MiB)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logits [B, L, V] (any float dtype), targets [B, L] -> (float32 log-prob of each target at `temperature` [B, L],
    entropy of each next-token distribution [B, L] or None).

    Rows go through in chunks of at most CHUNK_ELEMENTS logits under activation checkpointing: the float32 copies
    a large vocabulary needs (upcast, softmax) then exist one chunk at a time, in the forward and in the backward.
    A small vocabulary fits in one chunk and is computed directly."""
    B, L, V = logits.shape
    flat, tgt = logits.reshape(B * L, V), targets.reshape(B * L)
    rows = max(1, CHUNK_ELEMENTS // V)
    if rows >= B * L:
        logp, ent = _row_logprobs(flat, tgt, temperature, with_entropy)
    else:
        parts = [torch.utils.checkpoint.checkpoint(_row_logprobs, flat[i : i + rows], tgt[i : i + rows], temperature, with_entropy, use_reentrant=False)
                 for i in range(0, B * L, rows)]
        logp, ent = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return logp.view(B, L), ent.view(B, L) if with_entropy else None


def _row_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [N, V], targets [N] -> (log-probs [N], entropies [N], or an empty tensor without with_entropy)."""
    logits = logits.float() / temperature
    logz = torch.logsumexp(logits, -1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    ent = logz - (torch.softmax(logits, -1) * logits).sum(-1) if with_entropy else logz.new_zeros(0)
    return logp, ent


def keep_last(model: torch.nn.Module, n: int) -> dict:
    """Forward kwargs that make `model` compute logits for its last n positions only, if its forward can."""
    return {"logits_to_keep": n} if _forward_takes(type(model), "logits_to_keep") else {}


@functools.cache
def _forward_takes(cls: type, name: str) -> bool:
    """Whether cls.forward has parameter `name` (read once per class: completion_logprobs runs every mini-batch)."""
    return name in inspect.signature(cls.forward).parameters


def supervised_loss(model: torch.nn.Module, prompts: list[list[int]], targets: list[list[int]], pad_id: int, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
    """Mean token cross-entropy on the target tokens only (prompt tokens are context)."""
    p_ids, p_mask = left_pad(prompts, pad_id)
    width = max(len(t) for t in targets)
    t_ids = torch.full((len(targets), width), pad_id, dtype=torch.long)
    t_mask = torch.zeros_like(t_ids)
    for i, t in enumerate(targets):
        t_ids[i, : len(t)] = torch.tensor(t)
        t_mask[i, : len(t)] = 1
    logp, _ = completion_logprobs(model, p_ids, p_mask, t_ids, t_mask, pixel_values=pixel_values)
    return -(logp.sum() / t_mask.sum())


__all__ = [
    "Policy",
    "build_char_tokenizer",
    "build_embedded_model",
    "completion_logprobs",
    "embedded_policy",
    "left_pad",
    "load_policy",
    "positions",
    "supervised_loss",
]
