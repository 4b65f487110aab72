"""MaxPO estimators against explicit subset enumeration, centering, and Monte-Carlo unbiasedness."""
from itertools import combinations, product
from math import comb

import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from algorithms.maxpo import maxk_advantages, maxk_estimate
from harness.core.trainer import Trainer


def brute_rho(g, k):
    return float(np.mean([max(g[i] for i in s) for s in combinations(range(len(g)), k)])) if k else 0.0


def brute_v(g, i, k):
    others = [j for j in range(len(g)) if j != i]
    return float(np.mean([max([g[i]] + [g[j] for j in s]) for s in combinations(others, k - 1)]))


def brute_advantages(g, k, baseline):
    n = len(g)
    out = []
    for i in range(n):
        rest = [g[j] for j in range(n) if j != i]
        if baseline == "pkpo":  # (1/C(n,K)) sum_{I ∋ i} [max_I - max_{I \\ i}]
            total = 0.0
            for s in combinations(range(n), k):
                if i in s:
                    others = [g[j] for j in s if j != i]
                    total += max(g[j] for j in s) - (max(others) if others else 0.0)
            out.append(total / comb(n, k))
        elif baseline == "loo":
            out.append(k / n * (brute_v(g, i, k) - brute_rho(rest, k)))
        else:  # l2o from the pair matrix D_ij = v_i^{(-j)} - v_j^{(-i)}
            d = 0.0
            for j in range(n):
                if j == i:
                    continue
                keep = [t for t in range(n) if t != j]
                vi = brute_v([g[t] for t in keep], keep.index(i), k)
                keep2 = [t for t in range(n) if t != i]
                vj = brute_v([g[t] for t in keep2], keep2.index(j), k)
                d += vi - vj
            out.append(k / n * d / (n - 1))
    return np.array(out)


def random_group(rng, kind, n):
    if kind == "binary":
        return rng.integers(0, 2, n).astype(float)
    if kind == "ties":
        return rng.choice([0.0, 0.3, 1.0], size=n)
    return rng.random(n)


@pytest.mark.parametrize("kind", ["binary", "continuous", "ties"])
def test_estimate_and_advantages_equal_subset_enumeration(kind):
    rng = np.random.default_rng(["binary", "continuous", "ties"].index(kind))
    cases = 0
    while cases < 1500:  # 3 kinds x 1500 groups: 4500 estimates + ~9000 advantage vectors checked
        n = int(rng.integers(1, 8))
        k = int(rng.integers(1, n + 1))
        g = random_group(rng, kind, n)
        assert maxk_estimate(g, k).item() == pytest.approx(brute_rho(list(g), k), abs=1e-12)
        for baseline in ("pkpo", "loo", "l2o"):
            if baseline != "pkpo" and n < k + 1:
                with pytest.raises(ValueError):
                    maxk_advantages(g, k, baseline)
                continue
            got = maxk_advantages(g, k, baseline).numpy()
            assert np.allclose(got, brute_advantages(list(g), k, baseline), atol=1e-12), (g, k, baseline)
        cases += 1


def test_binary_pass_at_k_closed_form_and_shapes():
    rng = np.random.default_rng(5)
    G = rng.integers(0, 2, (50, 8)).astype(float)
    for k in (1, 2, 4, 8):
        c = G.sum(1)
        closed = [1 - comb(8 - int(ci), k) / comb(8, k) for ci in c]
        assert np.allclose(maxk_estimate(G, k).numpy(), closed)
    for baseline in ("pkpo", "loo", "l2o"):
        batched = maxk_advantages(G, 4, baseline)
        assert batched.shape == G.shape
        assert torch.allclose(batched[7], maxk_advantages(G[7], 4, baseline))


def test_centering():
    rng = np.random.default_rng(7)
    G = rng.random((2000, 6))
    l2o, loo, nc = (maxk_advantages(G, 3, b) for b in ("l2o", "loo", "pkpo"))
    assert l2o.sum(-1).abs().max() < 1e-12 and loo.sum(-1).abs().max() < 1e-12
    assert torch.allclose(l2o, loo, atol=1e-12)  # the spec's identity: b^L2O_i = rho_K(g_{-i})
    assert (nc >= -1e-15).all() and nc.sum(-1).mean() > 0  # non-centered


def test_max_at_k_gradient_is_unbiased_on_a_categorical_policy():
    """E[sum_i A_i grad log pi(a_i)] over groups equals the exact gradient of max@K, for every estimator."""
    torch.manual_seed(0)
    theta = torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=torch.float64, requires_grad=True)
    reward = torch.tensor([0.0, 0.4, 0.7, 1.0], dtype=torch.float64)
    K, n, groups = 2, 5, 100_000
    probs = torch.softmax(theta, 0)
    exact_obj = sum(torch.prod(torch.stack([probs[a] for a in t])) * reward[list(t)].max() for t in product(range(4), repeat=K))
    (exact,) = torch.autograd.grad(exact_obj, theta)
    with torch.no_grad():
        arms = torch.multinomial(probs.expand(groups, 4), n, replacement=True)  # [groups, n]
        score = torch.nn.functional.one_hot(arms, 4).double() - probs  # grad log softmax = e_a - p
    for baseline in ("pkpo", "loo", "l2o"):
        adv = maxk_advantages(reward[arms], K, baseline)
        per_group = (adv[..., None] * score).sum(1)  # [groups, 4]
        mean, se = per_group.mean(0), per_group.std(0) / groups**0.5
        assert ((mean - exact).abs() <= 4 * se + 1e-4).all(), (baseline, mean, exact, se)


def test_maxpo_runs_and_logs_centering(tmp_path):
    t = Trainer(tiny_run_config(tmp_path, "algo=maxpo", "algo_args.k=2", "train.group_size=4"), progress=False)
    t.task.score = lambda p, c: float(len(c) % 2 == 0)  # mixed groups for an untrained policy
    t.run()
    rows = t.store.metrics()
    assert all(abs(r["maxpo/adv_group_sum_abs"]) < 1e-9 for r in rows)
    assert any(r["train/adv_abs_mean"] > 0 for r in rows)
