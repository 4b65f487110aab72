"""The embedded policy round-trips through a transformers checkpoint exactly (tokenizer and weights)."""
import string

import torch

from harness.policy import build_char_tokenizer, left_pad, load_policy, positions


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
