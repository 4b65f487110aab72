"""probe-variance: streaming variance against numpy, and the command on a tiny model."""
import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from harness.core.trainer import Trainer
from harness.experiments.probe import Welford, format_table, probe_variance


def test_welford_trace_matches_numpy():
    x = np.random.default_rng(0).normal(size=(50, 7))
    w = Welford()
    for row in x:
        w.add(torch.tensor(row))
    assert np.isclose(w.trace_cov, np.var(x, axis=0, ddof=1).sum())
    assert np.allclose(w.mean.numpy(), x.mean(0))


def test_probe_variance_table(tmp_path):
    t = Trainer(tiny_run_config(tmp_path, "task=countdown", "train.group_size=6"), progress=False)
    t.task.score = lambda p, c: float(len(c) % 2 == 0)  # an untrained policy solves nothing: mixed groups instead
    rows = probe_variance(t, batches=4, prompts=3, k=2)
    by = {r["estimator"]: r for r in rows}
    assert by["pass@2 l2o (MaxPO)"]["trace_cov"] == pytest.approx(by["pass@2 loo"]["trace_cov"], rel=1e-9)
    assert by["pass@2 pkpo (non-centered)"]["adv_mean"] > 0 and abs(by["pass@2 l2o (MaxPO)"]["adv_mean"]) < 1e-6
    assert all(r["trace_cov"] > 0 for r in rows)
    assert "trace Cov[g]" in format_table(rows)
