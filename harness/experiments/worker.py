"""One sweep job in its own process: `python -m harness.experiments.worker '<json>'` (executors start it; not for users).

The JSON holds {"kind": "run" | "pretrain", "config": <plain RunConfig>, "plugins": [module, ...], "paths": [folder,
...]} (the folders the sweep imported its plugins from; the working directory itself is not on the import path).
Exit code 0 means the run (or warm start) is complete; any error is printed and recorded by the trainer.
"""
from __future__ import annotations

import json
import sys
from importlib import import_module


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    sys.path[1:1] = [p for p in spec.get("paths", []) if p not in sys.path]
    for module in spec.get("plugins", []):
        import_module(module)
    from harness.config import build_run_config

    cfg = build_run_config(spec["config"])
    if spec["kind"] == "pretrain":
        from harness.experiments.pretrain import warm_start

        print(f"warm start ready: {warm_start(cfg, progress=False)}", flush=True)
        return 0
    from harness.core.trainer import Trainer

    summary = Trainer(cfg, progress=False).run()
    print(f"{cfg.run_name}: {summary.get('status')} at step {summary.get('step')}, "
          f"eval/accuracy {summary.get('initial_accuracy', float('nan')):.3f} -> {summary.get('final_accuracy', float('nan')):.3f}", flush=True)
    return 0 if summary.get("status") == "complete" else 1


def run(argv: list[str]) -> int:
    """main's exit code, also when the sweep stopped the job (its checkpoint is saved then)."""
    from harness.signals import Interrupted

    try:
        return main(argv)
    except Interrupted as e:
        print(e, flush=True)
        return e.code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
