"""The one importance-weight function (POPO's behaviour weights, the engine-mismatch correction) against its
definition computed one row and one token at a time, on random inputs, and on hand-computed values."""
import math

import pytest
import torch

from harness.core.importance import importance_weights


def loop_weights(num, den, mask, rows, level, cap, mode):
    B, L = num.shape
    w, hit = torch.zeros(B, L), torch.zeros(B, L, dtype=torch.bool)
    for i in range(B):
        n = int(mask[i].sum())
        log_seq = sum(float(num[i, t] - den[i, t]) for t in range(n))
        for t in range(n):
            if not rows[i]:
                w[i, t] = 1.0
                continue
            r = {"token": math.exp(float(num[i, t] - den[i, t])), "sequence": math.exp(log_seq),
                 "sequence_geomean": math.exp(log_seq / n)}[level]
            out = cap is not None and (r > cap or (mode == "band" and r < 1 / cap))
            hit[i, t] = out
            w[i, t] = (cap if mode == "truncate" else 0.0) if out else r
    return w, hit


@pytest.mark.parametrize("level", ["token", "sequence", "sequence_geomean"])
@pytest.mark.parametrize("mode", ["truncate", "mask", "band"])
@pytest.mark.parametrize("cap", [None, 1.5, 4.0])
def test_importance_weights_equal_the_definition(level, mode, cap):
    g = torch.Generator().manual_seed(7)
    for _ in range(10):
        B, L = 7, 6
        num = -torch.rand(B, L, generator=g) * 3
        den = num + torch.randn(B, L, generator=g) * 0.5
        mask = (torch.arange(L)[None] < torch.randint(1, L + 1, (B,), generator=g)[:, None]).long()
        rows = torch.rand(B, generator=g) < 0.6
        w, hit = importance_weights(num, den.clone().requires_grad_(), mask, rows, level, cap, mode)
        want_w, want_hit = loop_weights(num, den, mask, rows, level, cap, mode)
        assert not w.requires_grad
        assert torch.allclose(w, want_w, rtol=1e-5, atol=1e-6)
        assert torch.equal(hit, want_hit)


def test_importance_weights_hand_computed():
    num = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.3, 0.3]]))
    den = torch.log(torch.tensor([[0.25, 0.4, 0.9], [0.6, 0.3, 0.3]]))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rows = torch.tensor([True, False])
    w, _ = importance_weights(num, den, mask, rows, "token")
    assert torch.allclose(w, torch.tensor([[2.0, 0.5, 0.0], [1.0, 1.0, 1.0]]))
    w, _ = importance_weights(num, den, mask, rows, "sequence")
    assert torch.allclose(w[0], torch.tensor([1.0, 1.0, 0.0]))  # 2 x 0.5
    w, hit = importance_weights(num, den, mask, rows, "token", cap=1.5, mode="truncate")
    assert torch.allclose(w[0], torch.tensor([1.5, 0.5, 0.0])) and hit[0].tolist() == [True, False, False]
    w, _ = importance_weights(num, den, mask, rows, "token", cap=1.5, mode="mask")
    assert torch.allclose(w[0], torch.tensor([0.0, 0.5, 0.0]))
    w, _ = importance_weights(num, den, mask, rows, "token", cap=1.5, mode="band")  # 0.5 < 1/1.5 is out too
    assert torch.allclose(w[0], torch.tensor([0.0, 0.0, 0.0]))
