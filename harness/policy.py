"""Policy: the embedded tiny Qwen2 with a character tokenizer, or any local transformers checkpoint.

Also the one function the trainer uses to score sequences: `completion_logprobs`.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # per-shard load/save bars would drown the run's own progress bar

from harness.config import PolicyConfig

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHARS = string.printable[:95]  # digits, letters, punctuation and space: any plain-text prompt encodes


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, saved/loaded as a real transformers tokenizer."""
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for ch in CHARS:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def build_embedded_model(cfg: PolicyConfig, vocab_size: int, seed: int) -> Qwen2ForCausalLM:
    config = Qwen2Config(
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
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    return model


@dataclass
class Policy:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @property
    def non_embedding_params(self) -> int:
        """N in the FLOP formula: parameters outside the token embedding (and a tied/untied LM head)."""
        emb = {id(p) for p in self.model.get_input_embeddings().parameters()}
        emb |= {id(p) for p in self.model.get_output_embeddings().parameters()}
        return sum(p.numel() for p in self.model.parameters() if id(p) not in emb)


def load_policy(path: str | Path) -> Policy:
    """Any local transformers causal LM checkpoint with its tokenizer (no hub access)."""
    tok_cfg = Path(path) / "tokenizer_config.json"
    tok_class = json.loads(tok_cfg.read_text()).get("tokenizer_class") if tok_cfg.exists() else None
    if tok_class in (None, "TokenizersBackend", "PreTrainedTokenizerFast"):
        # A plain tokenizer.json (ours): AutoTokenizer would pick the model type's tokenizer class
        # (Qwen2Tokenizer for our Qwen2) and rebuild its pre-tokenizer, silently dropping spaces.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Policy(model, tokenizer)


def embedded_policy(cfg: PolicyConfig, seed: int) -> Policy:
    tok = build_char_tokenizer()
    return Policy(build_embedded_model(cfg, len(tok), seed), tok)


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
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log pi(y_t | x, y_<t) of the completions under `model` (one forward pass, vectorised).

    prompt_ids/mask [B, P] left-padded; completion_ids/mask [B, L] right-padded.
    Returns logp [B, L] (0 where masked) and, if asked, the entropy of the full next-token distribution [B, L].
    Logits are divided by `temperature`, matching the sampler's behaviour log-probs. Outputs live on the model's device.
    """
    dev = next(model.parameters()).device
    prompt_ids, prompt_mask, completion_ids, completion_mask = (
        x.to(dev) for x in (prompt_ids, prompt_mask, completion_ids, completion_mask)
    )
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    P = prompt_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
    logits = logits[:, P - 1 : -1].float() / temperature
    logz = torch.logsumexp(logits, -1)
    logp = logits.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - logz
    logp = logp * completion_mask
    ent = None
    if with_entropy:
        probs = torch.softmax(logits, -1)
        ent = (logz - (probs * logits).sum(-1)) * completion_mask
    return logp, ent


def supervised_loss(model: torch.nn.Module, prompts: list[list[int]], targets: list[list[int]], pad_id: int) -> torch.Tensor:
    """Mean token cross-entropy on the target tokens only (prompt tokens are context)."""
    p_ids, p_mask = left_pad(prompts, pad_id)
    width = max(len(t) for t in targets)
    t_ids = torch.full((len(targets), width), pad_id, dtype=torch.long)
    t_mask = torch.zeros_like(t_ids)
    for i, t in enumerate(targets):
        t_ids[i, : len(t)] = torch.tensor(t)
        t_mask[i, : len(t)] = 1
    logp, _ = completion_logprobs(model, p_ids, p_mask, t_ids, t_mask)
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
