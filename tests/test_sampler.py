"""The KV-cache sampler: matches the trainer's log-probs, both paths agree, seeded, EOS and top-p correct."""
import pytest
import torch

from harness.engines.policy import completion_logprobs, left_pad
from harness.engines.sampler import TorchSampler, sample_next


def prompts_of(policy):
    return policy.encode(["12+7=", "3 5 7|26:", "1+1=", "987+654="] * 4)


def test_behaviour_logprobs_equal_trainer_forward(tiny_policy):
    s = TorchSampler(tiny_policy.model, tiny_policy.eos_id, tiny_policy.pad_id)
    assert s.fast
    g = s.generate(prompts_of(tiny_policy), max_new_tokens=12, temperature=0.7, top_p=1.0, seed=1)
    lp, _ = completion_logprobs(tiny_policy.model, g.prompt_ids, g.prompt_mask, g.completion_ids, g.completion_mask, 0.7)
    assert torch.allclose(lp, g.logprobs, atol=1e-5)


def test_fast_and_generic_paths_agree(tiny_policy):
    a = TorchSampler(tiny_policy.model, tiny_policy.eos_id, tiny_policy.pad_id, fast=True)
    b = TorchSampler(tiny_policy.model, tiny_policy.eos_id, tiny_policy.pad_id, fast=False)
    assert a.fast and not b.fast
    ga = a.generate(prompts_of(tiny_policy), max_new_tokens=16, seed=7)
    gb = b.generate(prompts_of(tiny_policy), max_new_tokens=16, seed=7)
    assert torch.equal(ga.completion_ids, gb.completion_ids)
    assert torch.equal(ga.completion_mask, gb.completion_mask)
    assert torch.allclose(ga.logprobs, gb.logprobs, atol=1e-5)


def test_seeded_and_batch_independent(tiny_policy):
    s = TorchSampler(tiny_policy.model, tiny_policy.eos_id, tiny_policy.pad_id)
    p = prompts_of(tiny_policy)
    g1 = s.generate(p, max_new_tokens=10, seed=3)
    g2 = s.generate(p, max_new_tokens=10, seed=3)
    g3 = s.generate(p, max_new_tokens=10, seed=4)
    assert torch.equal(g1.completion_ids, g2.completion_ids)
    assert not torch.equal(g1.completion_ids, g3.completion_ids)


def test_eos_mask_and_padding(tiny_policy):
    eos = tiny_policy.eos_id
    s = TorchSampler(tiny_policy.model, eos, tiny_policy.pad_id)
    g = s.generate(prompts_of(tiny_policy) * 16, max_new_tokens=12, seed=0)
    assert g.finished.any() and not g.finished.all()  # the untrained model ends some rows, not all
    ids, mask = g.completion_ids, g.completion_mask.bool()
    for row, m, fin in zip(ids, mask, g.finished):
        n = int(m.sum())
        assert m[:n].all() and not m[n:].any()  # contiguous
        eos_pos = (row == eos).nonzero()
        if fin:
            assert eos_pos.numel() == 1 and eos_pos.item() == n - 1  # exactly one EOS, the last masked token
        else:
            assert eos_pos.numel() == 0 and n == ids.shape[1]
        assert (row[n:] == tiny_policy.pad_id).all()
    assert (g.logprobs[~mask] == 0).all() and (g.logprobs[mask] < 0).all()


def test_sample_next_matches_distribution():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(40000, 1)
    probs = torch.softmax(logits[0] / 0.8, -1)
    tok, lp = sample_next(logits, 0.8, 1.0, torch.rand(logits.shape))
    freq = torch.bincount(tok, minlength=4).double() / len(tok)
    assert torch.allclose(freq, probs.double(), atol=0.01)
    assert torch.allclose(lp, probs.log()[tok])


def test_top_p_keeps_the_nucleus_and_renormalises():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    tok, lp = sample_next(logits, 1.0, 0.8, torch.rand(logits.shape))
    assert set(tok.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.8
    nucleus = torch.tensor([0.5, 0.3]) / 0.8
    assert torch.allclose(lp, nucleus.log()[tok])
    freq = torch.bincount(tok, minlength=2).double()[:2] / len(tok)
    assert torch.allclose(freq, nucleus.double(), atol=0.015)


def test_completion_logprobs_padding_invariant(tiny_policy):
    """Loop vs vectorised: each sequence scored alone, unpadded, equals the padded batch."""
    prompts = tiny_policy.encode(["1+2=", "345+678=", "9 9|18:"])
    comps = tiny_policy.encode(["3", "1023", "9+9"])
    p_ids, p_mask = left_pad(prompts, tiny_policy.pad_id)
    width = max(map(len, comps))
    c_ids = torch.zeros(3, width, dtype=torch.long)
    c_mask = torch.zeros(3, width, dtype=torch.long)
    for i, c in enumerate(comps):
        c_ids[i, : len(c)] = torch.tensor(c)
        c_mask[i, : len(c)] = 1
    batched, ent = completion_logprobs(tiny_policy.model, p_ids, p_mask, c_ids, c_mask, with_entropy=True)
    for i, (p, c) in enumerate(zip(prompts, comps)):
        one, _ = completion_logprobs(tiny_policy.model, torch.tensor([p]), torch.ones(1, len(p), dtype=torch.long), torch.tensor([c]), torch.ones(1, len(c), dtype=torch.long))
        assert torch.allclose(batched[i, : len(c)], one[0], atol=1e-5)
        assert (batched[i, len(c):] == 0).all()
    assert (ent[c_mask.bool()] > 0).all()


@pytest.mark.parametrize("fast", [True, False])
def test_every_eos_id_of_the_checkpoint_ends_a_completion(tiny_policy, fast):
    """generation_config may list EOS ids beside the tokenizer's (chat models end a turn with their own):
    sampling must stop at any of them, in both sampler paths, and mark the row finished."""
    torch.nn.init.zeros_(tiny_policy.model.lm_head.weight)  # uniform next-token distribution: every id turns up
    extra = 7
    tiny_policy.model.generation_config.eos_token_id = [tiny_policy.eos_id, extra]
    assert tiny_policy.eos_ids == [tiny_policy.eos_id, extra]
    g = TorchSampler(tiny_policy.model, tiny_policy.eos_ids, tiny_policy.pad_id, fast=fast).generate(
        [[5, 6]] * 256, max_new_tokens=12, seed=0)
    stops = torch.isin(g.completion_ids, torch.tensor(tiny_policy.eos_ids)) & g.completion_mask.bool()
    ended_at_extra = (g.completion_ids == extra) & g.completion_mask.bool()
    assert ended_at_extra.any()
    lengths = g.completion_mask.sum(-1)
    for row in range(256):
        hits = stops[row].nonzero().flatten()
        assert g.finished[row] == (len(hits) > 0)
        if len(hits):  # the first EOS of either kind is the last token kept
            assert len(hits) == 1 and hits[0] == lengths[row] - 1
        else:
            assert lengths[row] == 12
