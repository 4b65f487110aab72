"""Engine/trainer log-prob mismatch: the logged statistics and the four corrections against a per-token loop,
and through the real training step with an engine whose behaviour log-probs are off by a known factor."""
import math
import zlib

import pytest
import torch
from conftest import tiny_run_config

from harness.core.mismatch import correction_weights, mismatch_stats
from harness.core.trainer import Trainer


def loop_weights(pi, mu, mask, fresh, kind, cap):
    """The module doc's definitions, one row and one token at a time."""
    B, L = pi.shape
    w = torch.zeros(B, L)
    for i in range(B):
        n = int(mask[i].sum())
        seq = math.exp(sum(float(pi[i, t] - mu[i, t]) for t in range(n)))
        for t in range(n):
            if not fresh[i]:
                w[i, t] = 1.0
                continue
            r = seq if kind.startswith("seq") else math.exp(float(pi[i, t] - mu[i, t]))
            w[i, t] = min(r, cap) if kind.endswith("truncate") else (r if 1 / cap <= r <= cap else 0.0)
    return w


@pytest.mark.parametrize("kind", ["token_truncate", "token_mask", "seq_truncate", "seq_mask"])
def test_correction_weights_equal_the_definition(kind):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        B, L = 6, 5
        pi = -torch.rand(B, L, generator=g) * 3
        mu = pi + torch.randn(B, L, generator=g) * 0.6
        lengths = torch.randint(1, L + 1, (B,), generator=g)
        mask = (torch.arange(L)[None] < lengths[:, None]).long()
        fresh = torch.rand(B, generator=g) < 0.7
        w, hit = correction_weights(pi, mu, mask, fresh, kind, 2.0)
        assert torch.allclose(w, loop_weights(pi, mu, mask, fresh, kind, 2.0), atol=1e-5)
        assert not hit[~fresh].any() and not hit[mask == 0].any()


def test_mismatch_stats_equal_the_definition():
    g = torch.Generator().manual_seed(1)
    pi, mu = -torch.rand(4, 6, generator=g), -torch.rand(4, 6, generator=g)
    mask = torch.ones(4, 6)
    mask[0, 3:] = 0
    s = mismatch_stats(pi, mu, mask)
    d = [float(pi[i, t] - mu[i, t]) for i in range(4) for t in range(6) if mask[i, t]]
    assert s["engine/logp_diff_mean"].item() == pytest.approx(sum(map(abs, d)) / len(d), rel=1e-5)
    assert s["engine/logp_diff_max"].item() == pytest.approx(max(map(abs, d)), rel=1e-5)
    assert s["engine/kl_k3"].item() == pytest.approx(sum(math.exp(x) - 1 - x for x in d) / len(d), rel=1e-4)
    assert mismatch_stats(pi, mu, torch.zeros(4, 6)) == {}


def run_with_skewed_engine(tmp_path, name, correction, skew):
    """One GRPO step whose engine reports log mu = log pi - skew (so pi_old / mu = e^skew on every token)."""
    cfg = tiny_run_config(tmp_path, f"name={name}", f"sampler.correction={correction}", "budget.amount=16", "budget.eval_every=16")
    t = Trainer(cfg, progress=False)
    t.task.score = lambda p, c: float(zlib.crc32(c.encode()) % 2)  # mixed groups for an untrained policy
    real = t.engine.generate

    def skewed(*a, **k):
        g = real(*a, **k)
        g.logprobs = (g.logprobs - skew) * g.completion_mask
        return g

    t.engine.generate = skewed
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.run()
    row = t.store.metrics()[0]
    moved = any(not torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    return row, moved


def test_corrections_through_the_real_step(tmp_path):
    skew = math.log(4.0)  # w = 4 on every token: above the cap C = 2
    plain, _ = run_with_skewed_engine(tmp_path, "plain", "none", skew)
    assert plain["engine/logp_diff_mean"] == pytest.approx(skew, rel=1e-4)
    assert plain["engine/kl_k3"] == pytest.approx(4 - 1 - skew, rel=1e-3)
    # at ratio 1 the loss value is -mean(A) (often 0); its gradient is what the weights scale
    assert plain["grad/norm"] > 0
    truncated, _ = run_with_skewed_engine(tmp_path, "tis", "token_truncate", skew)
    assert truncated["grad/norm"] == pytest.approx(2 * plain["grad/norm"], rel=1e-4)  # min(4, 2) = 2
    assert truncated["engine/corrected_frac"] == 1.0
    seq, _ = run_with_skewed_engine(tmp_path, "seq", "seq_truncate", skew)
    assert seq["grad/norm"] == pytest.approx(2 * plain["grad/norm"], rel=1e-4)
    masked, moved = run_with_skewed_engine(tmp_path, "mis", "token_mask", skew)
    assert masked["grad/norm"] == 0 and not moved  # every token masked: no gradient, no update
    # inside the band the weights are the plain ratio: w = 1.5 on every token
    inside, _ = run_with_skewed_engine(tmp_path, "inside", "token_mask", math.log(1.5))
    plain15, _ = run_with_skewed_engine(tmp_path, "plain15", "none", math.log(1.5))
    assert inside["grad/norm"] == pytest.approx(1.5 * plain15["grad/norm"], rel=1e-4)
    assert inside["engine/corrected_frac"] == 0.0


def test_torch_engine_matches_the_trainer(tmp_path):
    cfg = tiny_run_config(tmp_path, "task=countdown")
    t = Trainer(cfg, progress=False)
    t.run()
    assert all(r["engine/logp_diff_max"] < 1e-4 for r in t.store.metrics())
