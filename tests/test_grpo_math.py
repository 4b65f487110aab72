"""Advantage and loss math against hand-computed values and brute-force loops on random inputs."""
import math

import pytest
import torch

from algorithms.grpo import aggregate, group_advantages, kl_estimate, ppo_clip_loss


def loop_advantages(rewards, group_ids, baseline, norm, eps=1e-6):
    out = []
    for i, (r, g) in enumerate(zip(rewards.tolist(), group_ids.tolist())):
        grp = [x for x, h in zip(rewards.tolist(), group_ids.tolist()) if h == g]
        n = len(grp)
        if n == 1:
            out.append(0.0)
            continue
        mean = sum(grp) / n
        base = mean if baseline == "mean" else (sum(grp) - r) / (n - 1)
        a = r - base
        if norm == "std":
            std = math.sqrt(sum((x - mean) ** 2 for x in grp) / (n - 1))
            a /= std + eps
        out.append(a)
    return torch.tensor(out, dtype=torch.float64)


def test_hand_computed_group_of_four():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0])
    g = torch.zeros(4, dtype=torch.long)
    std = math.sqrt(4 * 0.25 / 3)  # unbiased std of {1,0,0,1}
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-6)
    assert torch.allclose(group_advantages(r, g), expected)
    assert torch.allclose(group_advantages(r, g, norm="none"), torch.tensor([0.5, -0.5, -0.5, 0.5]))
    # RLOO: 1 - mean(0, 0, 1) = 2/3 ; 0 - mean(1, 0, 1) = -2/3
    assert torch.allclose(group_advantages(r, g, "loo", "none"), torch.tensor([2, -2, -2, 2]) / 3.0)


def test_constant_groups_and_singletons_get_zero():
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.7])
    g = torch.tensor([0, 0, 1, 1, 2])
    for baseline in ("mean", "loo"):
        for norm in ("std", "none"):
            assert torch.equal(group_advantages(r, g, baseline, norm), torch.zeros(5))


@pytest.mark.parametrize("baseline", ["mean", "loo"])
@pytest.mark.parametrize("norm", ["std", "none"])
def test_vectorised_equals_loop_on_random_mixed_size_groups(baseline, norm):
    gen = torch.Generator().manual_seed(0)
    for trial in range(200):
        sizes = torch.randint(1, 9, (int(torch.randint(1, 7, (1,), generator=gen)),), generator=gen)
        g = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
        binary = trial % 2 == 0
        r = torch.randint(0, 2, (len(g),), generator=gen).double() if binary else torch.rand(len(g), generator=gen, dtype=torch.float64)
        got = group_advantages(r, g, baseline, norm)
        assert torch.allclose(got, loop_advantages(r, g, baseline, norm), atol=1e-9), (sizes, r)


def test_rloo_is_scaled_mean_baseline():
    r = torch.rand(8, dtype=torch.float64)
    g = torch.zeros(8, dtype=torch.long)
    assert torch.allclose(group_advantages(r, g, "loo", "none"), 8 / 7 * group_advantages(r, g, "mean", "none"))


def test_aggregation_modes_against_loops():
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    lengths = [7, 3, 1, 5, 2]
    mask = torch.zeros(5, 7)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    rows = [v[i, :n].tolist() for i, n in enumerate(lengths)]
    assert aggregate(v, mask, "token-mean").item() == pytest.approx(sum(map(sum, rows)) / sum(lengths))
    assert aggregate(v, mask, "seq-mean-token-mean").item() == pytest.approx(sum(sum(r) / len(r) for r in rows) / 5)
    assert aggregate(v, mask, "seq-mean-token-sum").item() == pytest.approx(sum(map(sum, rows)) / 5)
    assert aggregate(v, mask, "seq-mean-token-sum-norm", 10).item() == pytest.approx(sum(map(sum, rows)) / 50)


def test_ppo_clip_hand_computed():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[0.5, 0.9, 1.1, 1.5]]))
    # A > 0: min(rho A, clip(rho) A) with clip range [0.8, 1.28]
    loss, clipped = ppo_clip_loss(logp, old, torch.tensor([2.0]), 0.2, 0.28)
    assert torch.allclose(loss, -2 * torch.tensor([[0.5, 0.9, 1.1, 1.28]]))
    assert clipped.tolist() == [[False, False, False, True]]
    # A < 0: the pessimistic branch is max(-rho A, -clip(rho) A)
    loss, clipped = ppo_clip_loss(logp, old, torch.tensor([-1.0]), 0.2, 0.28)
    assert torch.allclose(loss, torch.tensor([[0.8, 0.9, 1.1, 1.5]]))
    assert clipped.tolist() == [[True, False, False, False]]
    # dual clip caps the negative-advantage loss at c |A|
    loss, _ = ppo_clip_loss(torch.log(torch.tensor([[5.0]])), torch.zeros(1, 1), torch.tensor([-1.0]), 0.2, 0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(3.0)


def test_ppo_gradient_at_ratio_one_is_policy_gradient():
    """On-policy (rho = 1) the clipped loss's gradient is -A * grad log pi, token by token."""
    logp = torch.log(torch.tensor([[0.3, 0.6], [0.2, 0.9]])).requires_grad_()
    adv = torch.tensor([1.5, -0.5])
    loss, _ = ppo_clip_loss(logp, logp.detach(), adv, 0.2, 0.2)
    loss.sum().backward()
    assert torch.allclose(logp.grad, -adv[:, None].expand(2, 2))


def test_kl_estimators():
    p = torch.tensor([[0.5, 0.1]]).log()
    q = torch.tensor([[0.25, 0.3]]).log()
    r = q.exp() / p.exp()
    assert torch.allclose(kl_estimate(p, q, "k1"), -r.log())
    assert torch.allclose(kl_estimate(p, q, "k2"), 0.5 * r.log() ** 2)
    assert torch.allclose(kl_estimate(p, q, "k3"), r - 1 - r.log())
    assert (kl_estimate(p, q, "k3") >= 0).all()
    # unbiasedness of k3 and k1 for KL(p || q) on a categorical
    probs = torch.tensor([0.2, 0.5, 0.3])
    ref = torch.tensor([0.4, 0.4, 0.2])
    exact = (probs * (probs / ref).log()).sum()
    for kind in ("k1", "k3"):
        est = (probs * kl_estimate(probs.log()[None], ref.log()[None], kind)[0]).sum()
        assert est.item() == pytest.approx(exact.item(), abs=1e-6)
