"""Vision policies: the embedded tiny VLM, and Qwen2-VL / Qwen2.5-VL checkpoints loaded from a local path.

The embedded one is a patch-embedding image encoder whose outputs fill the image placeholder tokens of a
tiny Qwen2 causal LM (the LLaVA / Qwen2-VL recipe at toy scale).

A prompt is `[<image>] * num_patches + question tokens`; the encoder turns pixels [B, C, S, S] into one
embedding per patch, written over the placeholders' token embeddings. Everything after the prompt embedding
is the unchanged Qwen2 decoder, so the sampler's static-cache fast path and the trainer's scoring pass work
as for text (they call `embed_prompt` instead of the token embedding for the prompt).

Qwen2-VL / Qwen2.5-VL run through their own transformers forward: images are resized to one fixed square size
(so every rollout has the same patch grid and pixels stack per row), prompts get `<|vision_start|>`,
`<|image_pad|>` x tokens, `<|vision_end|>` ahead of the text, and M-RoPE positions come from the model (prefill)
or from its rope deltas (cached decode steps).

The embedded model is a registered transformers class (`model_type = "rlvr_tiny_vlm"`): `save_pretrained` and
`AutoModelForCausalLM.from_pretrained` round-trip it offline, like any checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

IMAGE_TOKEN = "<image>"


class TinyVLMConfig(Qwen2Config):
    model_type = "rlvr_tiny_vlm"

    def __init__(self, image_size: int = 64, patch_size: int = 8, image_channels: int = 3, image_token_id: int = 3, **kwargs):
        self.image_size = image_size
        self.patch_size = patch_size
        self.image_channels = image_channels
        self.image_token_id = image_token_id
        super().__init__(**kwargs)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class PatchEncoder(nn.Module):
    """pixels [B, C, S, S] in [0, 1] (see to_pixels) -> patch embeddings [B, (S/p)^2, hidden]: a strided conv (one linear map per
    p x p patch), a learned 2-D position embedding per patch, and a LayerNorm to match the token embeddings' scale."""

    def __init__(self, cfg: TinyVLMConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.image_channels, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(cfg.num_patches, cfg.hidden_size))
        self.norm = nn.LayerNorm(cfg.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(pixels).flatten(2).transpose(1, 2) + self.pos)


class TinyVLMForCausalLM(Qwen2ForCausalLM):
    config_class = TinyVLMConfig

    def __init__(self, config: TinyVLMConfig):
        super().__init__(config)
        self.vision = PatchEncoder(config)
        self.post_init()
        nn.init.normal_(self.vision.pos, std=config.initializer_range)

    def embed_prompt(self, input_ids: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Prompt ids [B, P] (num_patches image tokens per row) and pixels [B, C, S, S] -> embeddings [B, P, hidden]."""
        x = self.model.embed_tokens(input_ids)
        slots = input_ids == self.config.image_token_id
        per_row = slots.sum(-1)
        if not bool((per_row == self.config.num_patches).all()):
            raise ValueError(f"each prompt needs exactly {self.config.num_patches} image tokens, got {sorted(set(per_row.tolist()))}")
        feats = self.vision(pixel_values.to(x.dtype))
        return x.masked_scatter(slots[..., None], feats)

    def forward(self, input_ids=None, pixel_values=None, inputs_embeds=None, **kwargs):
        """Standard causal-LM forward; with `pixel_values`, each row of `input_ids` holds num_patches image tokens."""
        if pixel_values is not None:
            inputs_embeds, input_ids = self.embed_prompt(input_ids, pixel_values), None
        return super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)


AutoConfig.register(TinyVLMConfig.model_type, TinyVLMConfig)
AutoModelForCausalLM.register(TinyVLMConfig, TinyVLMForCausalLM)


def to_pixels(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 RGB images [H, W, 3] (any size) -> "ink" [N, 3, size, size] = 1 - RGB / 255 (bilinear resize if needed).
    Diagrams are mostly white paper: as ink it is 0, so a blank patch feeds the encoder nothing but its position
    and the drawn strokes carry the signal (as white = 1 it swamps them; SFT then stalls at chance)."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        if img.shape[:2] != (size, size):
            img = np.asarray(Image.fromarray(img).convert("RGB").resize((size, size), Image.BILINEAR))
        out[i] = img
    return 1.0 - torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


MROPE_VLM_TYPES = {"qwen2_vl", "qwen2_5_vl"}


def is_mrope_vlm(model: torch.nn.Module) -> bool:
    """A transformers Qwen2-VL-family model (multimodal rotary positions computed by the model itself)."""
    return getattr(model.config, "model_type", None) in MROPE_VLM_TYPES


@dataclass
class PatchImages:
    """Image inputs of the embedded tiny VLM: num_patches `<image>` tokens, pixels [N, 3, S, S] in [0, 1]."""

    config: TinyVLMConfig

    def placeholder(self) -> list[int]:
        return [self.config.image_token_id] * self.config.num_patches

    def pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        return to_pixels(images, self.config.image_size)


@dataclass
class QwenVLImages:
    """Image inputs of a Qwen2-VL / Qwen2.5-VL checkpoint at one square `size` (a multiple of 28 pixels):
    pixels [N, P, D] (the processor's flattened patches of each image), P = (size / patch)^2."""

    processor: Any  # Qwen2VLImageProcessorPil (needs no torchvision)
    config: Any
    size: int

    def placeholder(self) -> list[int]:
        c = self.config
        merged = (self.size // self.processor.patch_size // self.processor.merge_size) ** 2
        return [c.vision_start_token_id] + [c.image_token_id] * merged + [c.vision_end_token_id]

    def pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        square = [np.asarray(Image.fromarray(im).convert("RGB").resize((self.size, self.size), Image.BICUBIC)) for im in images]
        pixels = self.size**2  # Qwen2-VL's size bounds are pixel counts: pin both to one square
        out = self.processor(square, size={"shortest_edge": pixels, "longest_edge": pixels}, return_tensors="pt")
        return out["pixel_values"].view(len(images), -1, out["pixel_values"].shape[-1])


def load_image_processor(path, config, size: int) -> QwenVLImages:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        processor = Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True)
    except OSError:  # no preprocessor_config.json: the Qwen2-VL defaults
        processor = Qwen2VLImageProcessorPil()
    factor = processor.patch_size * processor.merge_size
    return QwenVLImages(processor, config, max(factor, round(size / factor) * factor))


def placeholder_token_ids(model: torch.nn.Module) -> list[int]:
    """Token ids that only ever stand for images: never sampled, and excluded from the trainer's softmax too,
    so behaviour and trainer log-probs are over the same support (an <image> inside a completion would make
    the next forward look for pixels that are not there)."""
    c = model.config
    if isinstance(c, TinyVLMConfig):
        return [c.image_token_id]
    if getattr(c, "model_type", None) in MROPE_VLM_TYPES:
        return [c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision_end_token_id]
    return []


def drop_placeholders(logits: torch.Tensor, banned: list[int]) -> torch.Tensor:
    """logits [..., V] with the banned ids at -1e30 (zero probability; finite, so p * logit stays 0 in entropies)."""
    if not banned:
        return logits
    return logits.index_fill(-1, torch.tensor(banned, device=logits.device), -1e30)


def image_forward_kwargs(model: torch.nn.Module, ids: torch.Tensor, pixels: torch.Tensor) -> dict:
    """Extra forward arguments that feed the images of ids [B, T] (prompts, or prompts + completions: completions
    hold no placeholder, see placeholder_token_ids) to a vision model. pixels: the policy's per-row image inputs."""
    if not is_mrope_vlm(model):
        return {"pixel_values": pixels}
    B, P, D = pixels.shape
    side = math.isqrt(P)
    grid = torch.tensor([[1, side, side]], device=ids.device).expand(B, 3)
    is_image = (ids == model.config.image_token_id).long()
    return {"pixel_values": pixels.reshape(B * P, D), "image_grid_thw": grid, "mm_token_type_ids": is_image}


def mrope_decode_positions(model: torch.nn.Module, pos: torch.Tensor) -> torch.Tensor:
    """Cached decode step of a Qwen2-VL-family model: 1-D text positions pos [B, 1] -> M-RoPE ids [3, B, 1],
    shifted by the rope deltas the model stored at prefill (every axis advances together after the image)."""
    deltas = model.model.rope_deltas.to(pos.device)
    return (pos + deltas.view(-1, 1)).unsqueeze(0).expand(3, -1, -1)


__all__ = [
    "IMAGE_TOKEN", "PatchEncoder", "PatchImages", "QwenVLImages", "TinyVLMConfig", "TinyVLMForCausalLM",
    "drop_placeholders", "image_forward_kwargs", "is_mrope_vlm", "load_image_processor", "mrope_decode_positions",
    "placeholder_token_ids", "to_pixels",
]
