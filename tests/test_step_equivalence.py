"""Loop vs vectorised through the real step: a batch collected by the trainer, the algorithm's own loss."""
import pytest
import torch
from conftest import tiny_run_config

from harness.core.stages import LossInputs
from harness.core.trainer import Trainer
from harness.engines.policy import completion_logprobs


def real_batch(tmp_path, *overrides, task="countdown"):
    t = Trainer(tiny_run_config(tmp_path, f"task={task}", *overrides), progress=False)
    batch = t.algo.collect(t.context())
    # an untrained policy solves nothing; give the groups mixed rewards so advantages are non-zero
    batch.rewards = torch.randint(0, 2, (len(batch),), generator=torch.Generator().manual_seed(0)).float()
    return t, batch


@pytest.mark.parametrize("task", ["countdown", "geometry"])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_vectorised_gradient_equals_per_sequence_loop(tmp_path, agg, task):
    t, batch = real_batch(tmp_path, f"algo_args.loss_agg={agg}", task=task)
    params = [p for p in t.model.parameters() if p.requires_grad]
    adv = t.algo.advantages(t.context(), batch)
    assert adv.abs().sum() > 0

    logp, _ = completion_logprobs(t.model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, pixel_values=batch.pixel_values)
    loss, _ = t.algo.loss(LossInputs(batch, adv, logp, logp.detach(), None, None, None, t.max_new_tokens))
    vec = torch.autograd.grad(loss, params)

    total_tokens = int(batch.completion_mask.sum())
    B = len(batch)
    loop_loss = 0.0
    for i in range(B):  # each sequence alone, without padding
        p = batch.prompt_ids[i][batch.prompt_mask[i].bool()][None]
        c = batch.completion_ids[i][batch.completion_mask[i].bool()][None]
        pixels = None if batch.pixel_values is None else batch.pixel_values[i : i + 1]
        lp, _ = completion_logprobs(t.model, p, torch.ones_like(p), c, torch.ones_like(c), pixel_values=pixels)
        per_token = -adv[i] * torch.exp(lp - lp.detach())  # rho = 1 on-policy, gradient = -A grad log pi
        n = c.shape[1]
        loop_loss = loop_loss + {
            "token-mean": per_token.sum() / total_tokens,
            "seq-mean-token-mean": per_token.sum() / n / B,
            "seq-mean-token-sum": per_token.sum() / B,
            "seq-mean-token-sum-norm": per_token.sum() / (B * t.max_new_tokens),
        }[agg]
    loop = torch.autograd.grad(loop_loss, params)
    assert torch.allclose(loss, loop_loss, atol=1e-6)
    for g_vec, g_loop in zip(vec, loop):
        assert torch.allclose(g_vec, g_loop, atol=1e-5, rtol=1e-4)


def test_single_pass_shortcut_equals_frozen_old_logprobs(tmp_path):
    """With one epoch and one mini-batch the trainer reuses its own forward as pi_old; the update must equal
    the one computed with a separately frozen pi_old pass."""
    t1, batch = real_batch(tmp_path)
    t2, _ = real_batch(tmp_path)
    adv = t1.algo.advantages(t1.context(), batch)
    t1.update(batch, adv)  # shortcut path
    # reference: frozen old log-probs from a separate no-grad pass, one optimizer step
    with torch.no_grad():
        old, _ = completion_logprobs(t2.model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    logp, _ = completion_logprobs(t2.model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    loss, _ = t2.algo.loss(LossInputs(batch, adv, logp, old, None, None, None, t2.max_new_tokens))
    t2.optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(t2.model.parameters(), t2.cfg.train.grad_clip)
    t2.optimizer.step()
    for (name, a), b in zip(t1.model.state_dict().items(), t2.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-7), name


def test_update_raises_logprob_of_rewarded_completions(tmp_path):
    t, batch = real_batch(tmp_path, "train.lr=1e-2")
    adv = t.algo.advantages(t.context(), batch)
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    with torch.no_grad():
        before = completion_logprobs(t.model, *args)[0].sum(-1)
    t.update(batch, adv)
    with torch.no_grad():
        after = completion_logprobs(t.model, *args)[0].sum(-1)
    delta = after - before
    assert delta[adv > 0].mean() > 0 > delta[adv < 0].mean()
