"""`rlvr` command line: run, sweep, tune, pretrain, probe-variance, list, config.

    rlvr run [config.yaml] algo=grpo task=countdown train.lr=1e-4
    rlvr sweep sweeps/quickstart.yaml [--workers 2] [--status]
    rlvr tune sweeps/quickstart.yaml [--workers 2]
    rlvr pretrain task=arithmetic
    rlvr list
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.config import RunConfig, load_config
from harness.plain import ConfigError, describe
from harness.signals import Interrupted
from tasks.base import DataError


def _split(args: list[str]) -> tuple[str | None, list[str]]:
    """The optional YAML path (first argument without '=') and the dotted overrides."""
    path = None
    if args and "=" not in args[0]:
        path, args = args[0], args[1:]
    return path, args


def cmd_run(args: argparse.Namespace) -> int:
    from harness.core.trainer import Trainer

    cfg = load_config(*_split(args.overrides))
    summary = Trainer(cfg, progress=not args.quiet).run()
    root = f"{cfg.out_dir}/{cfg.run_name}"
    print(f"results: {root}  (metrics.jsonl, evals.jsonl, summary.json)")
    print(f"eval/accuracy {summary['initial_accuracy']:.3f} -> {summary['final_accuracy']:.3f} "
          f"over {summary['ledger/rollouts']} rollouts, {summary['time/charged']:.0f} s charged")
    return 0


def _executor_overrides(args: argparse.Namespace) -> dict:
    fields = {"kind": args.executor, "workers": args.workers, "threads": args.threads, "retries": args.retries, "address": args.address}
    return {"executor": {k: v for k, v in fields.items() if v is not None}}


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.experiments.runner import run_sweep, status_table
    from harness.experiments.sweep import load_sweep

    sweep = load_sweep(args.file, _executor_overrides(args))
    if args.status:
        print(status_table(sweep, args.only))
        return 0
    jobs = run_sweep(sweep, args.only)
    return 1 if any(j.status == "failed" for j in jobs) else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from harness.experiments.sweep import load_sweep
    from harness.experiments.tune import run_tune

    extra = {"tune": {k: v for k, v in (("storage", args.storage), ("trials", args.trials)) if v is not None}}
    sweep = load_sweep(args.file, {**_executor_overrides(args), **extra})
    passthrough = [x for flag, v in (("--storage", args.storage), ("--trials", args.trials), ("--threads", args.threads)) if v is not None for x in (flag, str(v))]
    passthrough += ["--algo", *args.algo] if args.algo else []
    return run_tune(sweep, args.workers or 1, args.algo, extra_args=passthrough, summary=not args.no_summary)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.analysis.report import compare, render_report
    from harness.analysis.report.statistics import fmt_diff

    if args.compare:
        out, rows = compare(*args.compare, out=args.out)
        for r in rows:
            print(f"{r['task']:<12} {r['method']:<20} {r['a']:.3f} -> {r['b']:.3f}  diff {fmt_diff(r['diff'])}  p {r['p']:.3g}  {r['change']}")
        print(f"report: {out / 'report.md'}")
        return 1 if args.fail_on_regression and any(r["change"] == "worse" for r in rows) else 0
    if not args.source:
        raise ConfigError("rlvr report: give a sweep file or results directory (or --compare A B)")
    command = "rlvr report " + " ".join([args.source] + (["--baseline", args.baseline] if args.baseline else []))
    out = render_report(args.source, args.out, args.baseline, command=command, wandb_mode=args.wandb)
    print(f"report: {out / 'report.md'}  (report.html, figures/*.png|svg, data.json)")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from harness.experiments.pretrain import warm_start, warm_start_report

    cfg = load_config(*_split(args.overrides))
    path = warm_start(cfg, progress=not args.quiet)
    chosen = warm_start_report(path)["chosen"]
    print(f"warm start: {path}")
    print(f"step {chosen['step']}: sampled pass@1 {chosen['pass@1']:.3f}, mixed 8-sample groups {chosen['mixed_frac']:.3f}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from harness.core.trainer import Trainer
    from harness.experiments.probe import format_table, probe_variance

    cfg = load_config(*_split(args.overrides))
    rows = probe_variance(Trainer(cfg, progress=False), batches=args.batches, prompts=args.prompts, k=args.k, checkpoint=args.checkpoint)
    print(f"gradient variance over {args.batches} batches of {args.prompts} prompts x {cfg.train.group_size} samples ({cfg.task})")
    print(format_table(rows))
    if args.json:  # e.g. <sweep out_dir>/probe_variance-<task>.json, which `rlvr report` includes
        from harness.core.store import atomic_write

        atomic_write(Path(args.json), json.dumps({"task": cfg.task, "batches": args.batches, "prompts": args.prompts, "k": args.k,
                                                  "group_size": cfg.train.group_size, "checkpoint": args.checkpoint, "rows": rows}, indent=1))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harness.registry import ALGORITHMS, ENGINES, TASKS

    for title, reg in (("algorithms", ALGORITHMS), ("tasks", TASKS), ("engines", ENGINES)):
        print(f"{title}:")
        for name in reg.names():
            e = reg.get(name)
            paper = f"  [{e.paper}]" if e.paper else ""
            print(f"  {name:<12} {e.description}{paper}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print("\n".join(describe(RunConfig)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr", description="Benchmark sample-efficient RLVR algorithms on equal footing.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (
        ("run", cmd_run, "train one run: [config.yaml] key=value ..."),
        ("pretrain", cmd_pretrain, "build (or find) the cached warm start: [config.yaml] key=value ..."),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("overrides", nargs="*")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.set_defaults(fn=fn)
    p = sub.add_parser("probe-variance", help="gradient variance of each advantage estimator at a checkpoint")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--batches", type=int, default=32, help="independent batches drawn")
    p.add_argument("--prompts", type=int, default=16, help="prompts per batch (the same in every batch)")
    p.add_argument("--k", type=int, default=4, help="K of the pass@K estimators")
    p.add_argument("--checkpoint", default=None, help="a run's checkpoint/state.pt (default: the warm start)")
    p.add_argument("--json", help="also write the table to this JSON file")
    p.set_defaults(fn=cmd_probe)
    p = sub.add_parser("sweep", help="run (or resume) every cell of a sweep file; rerunning skips finished cells")
    p.add_argument("file")
    p.add_argument("--status", action="store_true", help="print each cell's state and run nothing")
    p.add_argument("--only", nargs="+", metavar="GLOB", help="only cells whose name matches, e.g. 'popo-*'")
    p.add_argument("--executor", choices=["local", "ray"], help="override executor.kind")
    p.add_argument("--address", help="Ray cluster address (with --executor ray)")
    p.add_argument("--workers", type=int, help="cells at once (default: cores // threads)")
    p.add_argument("--threads", type=int, help="torch threads per cell")
    p.add_argument("--retries", type=int, help="extra attempts for a failed cell")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("tune", help="optuna search over the sweep file's `tune.space`, budget-matched; run it from several shells or machines to add workers")
    p.add_argument("file")
    p.add_argument("--workers", type=int, help="worker processes started here (default 1)")
    p.add_argument("--trials", type=int, help="override tune.trials (finished trials per study)")
    p.add_argument("--storage", help="override tune.storage: a journal file path or an RDB URL")
    p.add_argument("--algo", nargs="+", help="only these algorithm labels' studies")
    p.add_argument("--threads", type=int, help="torch threads per trial")
    p.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)  # workers started by --workers
    p.set_defaults(fn=cmd_tune, executor=None, address=None, retries=None)
    p = sub.add_parser("report", help="figures and tables with CIs from a sweep's results store (never the W&B API)")
    p.add_argument("source", nargs="?", help="a sweep file or a results directory")
    p.add_argument("--out", help="report directory (default reports/<sweep name>)")
    p.add_argument("--baseline", help="method the others are compared with (default: the claim's, else grpo)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="what changed from sweep A to sweep B, with significance")
    p.add_argument("--fail-on-regression", action="store_true", help="with --compare: exit 1 when a method got significantly worse")
    p.add_argument("--wandb", choices=["offline", "online", "disabled"], default="offline", help="also log the figures and tables to W&B")
    p.set_defaults(fn=cmd_report)
    sub.add_parser("list", help="registered algorithms, tasks and engines").set_defaults(fn=cmd_list)
    sub.add_parser("config", help="every config field with its default and meaning").set_defaults(fn=cmd_config)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, DataError) as e:
        print(f"rlvr: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"rlvr: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("rlvr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rlvr config | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
