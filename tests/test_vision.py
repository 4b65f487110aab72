"""The embedded vision policy: checkpoint round trip, images really condition the LM, and the sampler's
behaviour log-probs equal the trainer's scoring pass on image prompts (fast and generic paths)."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.config import ConfigError, PolicyConfig, from_dict
from harness.engines.policy import completion_logprobs, embedded_policy, left_pad, load_policy
from harness.engines.sampler import TorchSampler
from harness.engines.vision import TinyVLMForCausalLM
from tasks.geometry import Geometry, GeometryConfig

TINY_VLM = PolicyConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def geo():
    return Geometry(from_dict(GeometryConfig, {"train_size": 40, "eval_size": 8, "image_size": 32, "grid": 4, "max_side": 2, "max_count": 4}))


@pytest.fixture
def vlm():
    return embedded_policy(TINY_VLM, seed=0, vision=True)


def test_prompt_inputs_prefix_one_token_per_patch(vlm, geo, tiny_policy):
    probs = geo.problems("train")[:3]
    ids, pixels = vlm.prompt_inputs(probs)
    tok = vlm.model.config.image_token_id
    assert pixels.shape == (3, 3, 32, 32) and 0 <= pixels.min() and pixels.max() <= 1
    for row, p in zip(ids, probs):
        assert row[:16] == [tok] * 16 and vlm.decode([row[16:]]) == [p.prompt]
    assert vlm.decode([[tok, tok]]) == [""]  # a sampled placeholder never reaches the verifier as text
    with pytest.raises(ConfigError, match="no image encoder"):
        tiny_policy.prompt_inputs(probs)
    text_ids, none = tiny_policy.prompt_inputs([type(probs[0])(prompt="1+2=", answer="3", difficulty={})])
    assert none is None and text_ids == tiny_policy.encode(["1+2="])


def test_checkpoint_round_trip_and_images_condition_the_output(vlm, geo, tmp_path):
    ids, pixels = vlm.prompt_inputs(geo.problems("train")[:4])
    p_ids, p_mask = left_pad(ids, vlm.pad_id)
    comp = torch.tensor([vlm.encode(["12"])[0]] * 4)
    args = (p_ids, p_mask, comp, torch.ones_like(comp))
    before, _ = completion_logprobs(vlm.model, *args, pixel_values=pixels)
    vlm.save(tmp_path / "vlm")
    loaded = load_policy(tmp_path / "vlm")
    assert isinstance(loaded.model, TinyVLMForCausalLM) and loaded.is_vision
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "vlm", local_files_only=True), TinyVLMForCausalLM)
    after, _ = completion_logprobs(loaded.model, *args, pixel_values=pixels)
    assert torch.equal(before, after)
    other, _ = completion_logprobs(vlm.model, *args, pixel_values=pixels.flip(0))
    assert not torch.allclose(before, other)  # a different picture, a different distribution


@pytest.mark.parametrize("fast", [True, False])
def test_behaviour_logprobs_match_scoring_with_images(vlm, geo, fast):
    """Rows share prompt text but not pictures: prefill de-duplication must key on the image too."""
    probs = [p for p in geo.problems("train") if p.meta["kind"] == "count"][:3]
    ids, pixels = vlm.prompt_inputs(probs)
    rows = [0, 0, 1, 1, 2, 2, 0, 1]
    engine = TorchSampler(vlm.model, vlm.eos_id, vlm.pad_id, fast=fast)
    assert engine.fast == fast
    g = engine.generate([ids[i] for i in rows], max_new_tokens=6, temperature=0.8, seed=3, images=pixels[rows])
    lp, _ = completion_logprobs(vlm.model, g.prompt_ids, g.prompt_mask, g.completion_ids, g.completion_mask, 0.8, pixel_values=pixels[rows])
    assert torch.allclose(lp, g.logprobs, atol=1e-5)
    if fast:  # both paths sample the same tokens from the same noise
        slow = TorchSampler(vlm.model, vlm.eos_id, vlm.pad_id, fast=False).generate(
            [ids[i] for i in rows], max_new_tokens=6, temperature=0.8, seed=3, images=pixels[rows])
        assert torch.equal(slow.completion_ids, g.completion_ids)


def test_placeholders_are_never_sampled_and_have_no_mass(vlm, geo):
    tok = vlm.model.config.image_token_id
    with torch.no_grad():  # tied LM head: make the placeholder the overwhelming favourite
        vlm.model.model.embed_tokens.weight[tok] *= 200
    ids, pixels = vlm.prompt_inputs(geo.problems("train")[:4])
    g = TorchSampler(vlm.model, vlm.eos_id, vlm.pad_id).generate(ids, max_new_tokens=6, seed=0, images=pixels)
    assert not (g.completion_ids == tok).any()
    lp, ent = completion_logprobs(vlm.model, g.prompt_ids, g.prompt_mask, g.completion_ids, g.completion_mask, pixel_values=pixels, with_entropy=True)
    assert torch.allclose(lp, g.logprobs, atol=1e-5) and torch.isfinite(ent).all()


def test_patch_size_must_divide_image_size():
    with pytest.raises(ConfigError, match="policy.patch_size"):
        PolicyConfig(image_size=30, patch_size=8).validate()


# ---------------------------------------------------------------------------------------------------------------
# A Qwen2-VL checkpoint (tiny, built from a config, saved to disk) loaded through policy.path


def tiny_qwen2_vl(path):
    """Save a 2-layer Qwen2-VL with our character tokenizer plus its vision special tokens, and an image processor."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from harness.engines.policy import build_char_tokenizer

    tok = build_char_tokenizer()
    specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = dict(zip(["vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"], tok.convert_tokens_to_ids(specials)))
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, eos_token_id=1, pad_token_id=0, bos_token_id=1)
    vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **ids))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    Qwen2VLImageProcessorPil().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qwen_vl_dir(tmp_path_factory):
    return tiny_qwen2_vl(tmp_path_factory.mktemp("qwen2vl"))


def test_qwen2_vl_checkpoint_samples_and_scores_consistently(qwen_vl_dir, geo):
    policy = load_policy(qwen_vl_dir, image_size=56)
    assert policy.is_vision and policy.images.size == 56
    probs = [p for p in geo.problems("train") if p.meta["kind"] == "count"][:3]
    ids, pixels = policy.prompt_inputs(probs)
    c = policy.model.config
    assert ids[0][:6] == [c.vision_start_token_id] + [c.image_token_id] * 4 + [c.vision_end_token_id]
    rows = [0, 0, 1, 2, 2, 1]
    engine = TorchSampler(policy.model, policy.eos_id, policy.pad_id)
    assert not engine.fast  # the model's own forward (M-RoPE) and KV cache
    g = engine.generate([ids[i] for i in rows], max_new_tokens=5, seed=1, images=pixels[rows])
    lp, _ = completion_logprobs(policy.model, g.prompt_ids, g.prompt_mask, g.completion_ids, g.completion_mask, pixel_values=pixels[rows])
    assert torch.allclose(lp, g.logprobs, atol=1e-5)  # cached decode positions = the full forward's
    other, _ = completion_logprobs(policy.model, g.prompt_ids, g.prompt_mask, g.completion_ids, g.completion_mask, pixel_values=pixels[rows].flip(0))
    assert not torch.allclose(lp, other)


def test_grpo_runs_on_geometry_with_a_qwen2_vl_checkpoint(qwen_vl_dir, tmp_path):
    from conftest import tiny_run_config

    from harness.core.trainer import Trainer

    cfg = tiny_run_config(tmp_path, "task=geometry", f"policy.path={qwen_vl_dir}", "policy.image_size=56", "algo=popo")
    t = Trainer(cfg, progress=False)
    t.task.score = lambda p, c: float(len(c) % 2 == 0)  # mixed groups for an untrained policy
    assert t.run()["status"] == "complete"
    diffs = [r["engine/logp_diff_max"] for r in t.store.metrics() if "engine/logp_diff_max" in r]  # steps that trained
    assert diffs and max(diffs) < 1e-4
