"""The embedded policy round-trips through a transformers checkpoint exactly (tokenizer and weights)."""
import copy
import inspect
import string

import torch

from harness.engines.policy import build_char_tokenizer, left_pad, load_policy, positions


def test_char_tokenizer_is_one_token_per_character():
    tok = build_char_tokenizer()
    text = "3 5 7|26: (5+8)*4 = x?"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode(ids + [tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == text
    assert tok.encode("é", add_special_tokens=False) == [tok.unk_token_id]


def test_save_load_round_trip_keeps_spaces_and_weights(tiny_policy, tmp_path):
    """Regression: AutoTokenizer picked Qwen2Tokenizer for our checkpoint and dropped every space."""
    tiny_policy.save(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    texts = [string.printable[:95], "2 5 2|12:", "  leading and trailing  "]
    assert loaded.encode(texts) == tiny_policy.encode(texts)
    assert loaded.decode(tiny_policy.encode(texts)) == texts
    ids, mask = left_pad(tiny_policy.encode(texts), tiny_policy.pad_id)
    with torch.no_grad():
        a = tiny_policy.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
        b = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
    assert torch.equal(a, b)


TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}|{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_chat_template_wraps_prompts_as_a_user_turn(tiny_policy, tmp_path):
    """A checkpoint with a chat template gets its prompts as a user turn (after an optional system turn) under
    chat_template auto/on, unchanged under off; the embedded model and image prompts refuse 'on'."""
    import pytest

    from harness.config import load_config
    from harness.plain import ConfigError
    from tasks.base import Problem

    tiny_policy.tokenizer.chat_template = TEMPLATE
    tiny_policy.save(tmp_path / "ckpt")
    policy = load_policy(tmp_path / "ckpt")
    problem = Problem("12+3=", "15", {})
    policy.configure_prompts("auto", "Answer with a number.", images=False)
    (ids,), _ = policy.prompt_inputs([problem])
    assert policy.tokenizer.decode(ids) == "<system>Answer with a number.|<user>12+3=|<assistant>"
    policy.configure_prompts("off", None, images=False)
    assert policy.tokenizer.decode(policy.prompt_inputs([problem])[0][0]) == "12+3="
    with pytest.raises(ConfigError, match="policy.system_prompt: needs the chat template"):
        policy.configure_prompts("off", "x", images=False)
    with pytest.raises(ConfigError, match="image prompts are not templated"):
        policy.configure_prompts("on", None, images=True)
    plain = load_policy(tmp_path / "ckpt")
    plain.tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="the tokenizer has no chat template"):
        plain.configure_prompts("on", None, images=False)
    with pytest.raises(ConfigError, match="the embedded model has no chat template"):
        load_config(None, ["policy.chat_template=on"])


def test_chunked_token_logprobs_equal_the_direct_computation(monkeypatch):
    import harness.engines.policy as policy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=g, dtype=torch.float64).requires_grad_()
    targets = torch.randint(0, 50, (3, 7), generator=g)
    direct = torch.log_softmax(logits / 0.7, -1)
    want_logp = direct.gather(-1, targets[..., None]).squeeze(-1)
    want_ent = -(direct.exp() * direct).sum(-1)
    (want_grad,) = torch.autograd.grad((want_logp * 1.3 + want_ent).sum(), logits)
    monkeypatch.setattr(policy, "CHUNK_ELEMENTS", 4 * 50)  # 6 chunks of 4 rows (the last one short)
    logp, ent = policy.token_logprobs(logits.float(), targets, 0.7, with_entropy=True)
    (grad,) = torch.autograd.grad((logp * 1.3 + ent).sum(), logits)
    assert torch.allclose(logp.double(), want_logp, atol=1e-5) and torch.allclose(ent.double(), want_ent, atol=1e-5)
    assert torch.allclose(grad, want_grad, atol=1e-5)


def test_completion_only_logits_equal_the_full_forward(tiny_policy, monkeypatch):
    import harness.engines.policy as policy

    p_ids, p_mask = left_pad([[5, 6, 7], [8, 9]], 0)
    c_ids, c_mask = torch.tensor([[10, 11, 12, 13], [14, 1, 0, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    kept, _ = policy.completion_logprobs(tiny_policy.model, p_ids, p_mask, c_ids, c_mask)
    monkeypatch.setattr(policy, "keep_last", lambda model, n: {})
    full, _ = policy.completion_logprobs(tiny_policy.model, p_ids, p_mask, c_ids, c_mask)
    assert "logits_to_keep" in inspect.signature(tiny_policy.model.forward).parameters  # the first call kept only L + 1
    assert torch.allclose(kept, full, atol=1e-6) and (kept[0] != 0).all() and (kept[1, 2:] == 0).all()


def test_a_bfloat16_checkpoint_loads_as_float32_master_weights(tiny_policy, tmp_path):
    copy.deepcopy(tiny_policy.model).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    tiny_policy.tokenizer.save_pretrained(tmp_path / "bf16")
    loaded = load_policy(tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert torch.equal(loaded.model.lm_head.weight, tiny_policy.model.lm_head.weight.bfloat16().float())
