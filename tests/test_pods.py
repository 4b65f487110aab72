"""PODS selection rules against brute force, and the plugin through the real step (all n charged)."""
from functools import lru_cache
from itertools import combinations

import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from algorithms.pods import max_reward_mask, max_variance_indices, max_variance_mask, random_mask
from harness.core.trainer import Trainer


def parity_reward(problem, completion):
    """A reward any policy earns about half the time: completions of even length."""
    return float(len(completion) % 2 == 0)


@lru_cache(maxsize=None)
def subsets(n, m):
    return np.array(list(combinations(range(n), m)))


def brute_max_var(r, m):
    sub = r[subsets(len(r), m)]
    return sub.var(axis=1).max()


@pytest.mark.parametrize("kind", ["binary", "continuous", "ties"])
def test_max_variance_reaches_brute_force_maximum(kind):
    rng = np.random.default_rng({"binary": 0, "continuous": 1, "ties": 2}[kind])
    for _ in range(4000):  # 3 x 4000 = 12,000 random cases
        n = int(rng.integers(1, 11))
        m = int(rng.integers(1, n + 1))
        if kind == "binary":
            r = rng.integers(0, 2, n).astype(float)
        elif kind == "continuous":
            r = rng.normal(size=n) * rng.choice([1e-3, 1.0, 1e3])
        else:
            r = rng.choice([0.0, 0.5, 0.9, 1.0], size=n)
        kept = max_variance_indices(r, m)
        assert len(kept) == m == len(set(kept.tolist()))
        assert r[kept].var() == pytest.approx(brute_max_var(r, m), rel=1e-9, abs=1e-12), (r, m)


def test_example_where_half_half_is_not_optimal():
    r = [0.0, 0.9, 0.95, 1.0, 1.0, 1.0]
    kept = max_variance_indices(r, 4)
    assert sorted(np.asarray(r)[kept].tolist()) == [0.0, 1.0, 1.0, 1.0]


def test_tensor_in_tensor_out_and_binary_closed_form():
    r = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0])  # k = 2 ones, m = 4: the best keeps both ones
    kept = max_variance_indices(r, 4)
    assert isinstance(kept, torch.Tensor) and kept.dtype == torch.long
    assert r[kept].sum() == 2
    with pytest.raises(ValueError):
        max_variance_indices(r, 9)


def test_max_reward_and_random_rules():
    r = torch.tensor([[0.2, 0.9, 0.5, 0.9, 0.1], [1.0, 0.0, 1.0, 1.0, 0.0]])
    assert max_reward_mask(r, 3).tolist() == [[False, True, True, True, False], [True, False, True, True, False]]
    a, b = (random_mask(1000, 8, 3, torch.Generator().manual_seed(0)) for _ in range(2))
    assert torch.equal(a, b) and (a.sum(-1) == 3).all()
    assert (a.float().mean(0) - 3 / 8).abs().max() < 0.05  # each position kept with probability m/n


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_batched_max_variance_equals_the_per_group_rule(kind):
    """All groups at once (the trainer's path) keeps exactly what one group at a time keeps, ties included."""
    g = torch.Generator().manual_seed(3)
    for n, m in ((16, 4), (8, 8), (5, 1), (64, 16)):
        r = (torch.rand(500, n, generator=g) < 0.3).double() if kind == "binary" else torch.randn(500, n, generator=g)
        batched = max_variance_mask(r, m)
        for row in range(len(r)):
            assert batched[row].nonzero().squeeze(-1).tolist() == max_variance_indices(r[row], m).tolist()


@pytest.mark.parametrize("rule", ["max_variance", "max_reward", "random"])
@pytest.mark.parametrize("task", ["arithmetic", "countdown"])
def test_pods_through_the_real_step_charges_all_n(tmp_path, rule, task):
    cfg = tiny_run_config(tmp_path, "algo=pods", f"task={task}", "task_args.train_size=64", f"algo_args.rule={rule}", "algo_args.generate_per_prompt=8",
                          "train.group_size=4", "budget.amount=128", "budget.eval_every=64")
    t = Trainer(cfg, progress=False)
    t.run()
    led = t.ledger
    assert led.rollouts_generated == 128 and led.rows_trained == 64
    assert led.rollouts_by_purpose == {"train": 64, "downsampled": 64}
    rows = t.store.metrics()
    assert all(r["pods/kept_frac"] == 0.5 for r in rows)
    if rule == "max_variance":
        assert all(r["pods/kept_reward_var"] >= r["pods/generated_reward_var"] - 1e-12 for r in rows)


def test_pods_with_n_equal_m_is_a_grpo_step(tmp_path):
    def run(*args):
        t = Trainer(tiny_run_config(tmp_path, "task=countdown", *args), progress=False)
        t.task.score = parity_reward  # an untrained policy solves nothing; this gives mixed groups
        t.run()
        return t.model.state_dict(), [r["train/loss"] for r in t.store.metrics()]

    w_grpo, loss_grpo = run("name=g", "algo=grpo")
    w_pods, loss_pods = run("name=p", "algo=pods", "algo_args.generate_per_prompt=4", "algo_args.adv_eps=1e-6")
    assert any(x != 0 for x in loss_grpo)
    assert loss_grpo == loss_pods
    assert all(torch.equal(w_grpo[k], w_pods[k]) for k in w_grpo)
