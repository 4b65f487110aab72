"""Executors run sweep jobs: a pool of local worker processes, or tasks on a Ray cluster.

Each job runs in a fresh process (its own torch threads and memory; a crash or an OOM kill fails that job only).
Local jobs are forked from a server process that has imported torch, transformers and the harness once
(multiprocessing's forkserver), which spares each job ~2.5 s of imports; Ray jobs start
`python -m harness.experiments.worker`. Local workers die with the sweep process (PR_SET_PDEATHSIG on the
server, which exits with the sweep), so a killed sweep leaves no orphan writing into a run directory; the
run's lock file guards against any that would.

    executor = make_executor(ExecutorConfig(workers=2))
    executor.submit(job); finished = executor.wait(timeout=1.0)  # [(job, exit code)]
"""
from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
SWEEP_PID = "RLVR_SWEEP_PID"  # environment variable: the pid the preloaded server is started from


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a job process: thread pools sized to its share, W&B quiet, Ray's telemetry off."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("WANDB_SILENT", "true")
    env.setdefault("WANDB_ERROR_REPORTING", "false")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when the thread that started it ends (Linux; elsewhere the run lock still prevents two writers).

    The signal is armed only from this call on, so a parent that died in between would go unnoticed: given the
    parent's pid, a process that has already been re-parented kills itself here instead."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the run lock still prevents two writers
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def dies_with_this_process() -> Callable[[], None]:
    """A subprocess `preexec_fn`: the child is SIGKILLed when this process ends, even before the child gets there."""
    return functools.partial(die_with_parent, os.getpid())


def _forked_job(argv: list[str], log_path: str, env: dict[str, str], cwd: str) -> None:
    """A local job, in a process forked from the preloaded server: the sweep's environment and working directory
    as of now (the server kept those of its start), output to the job's log, the worker's exit code."""
    import atexit

    server = sys.modules.get("harness.experiments.zygote")  # preloaded by the server this process was forked from
    die_with_parent(server.PID if server else None)
    # what `python -P` does for a fresh worker: the working directory is not on the import path
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(cwd)]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from harness.experiments.worker import run

    code = run(argv)
    atexit._run_exitfuncs()  # a forked child leaves by os._exit: run what a normal exit would (W&B's teardown)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def run_job_process(command: list[str], log_path: str, env: dict[str, str], cwd: str) -> int:
    """Run one job to completion, appending its output to log_path; returns the exit code (<0: signal)."""
    with open(log_path, "ab") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=dies_with_this_process()).returncode


class LocalExecutor:
    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.mp = multiprocessing.get_context("forkserver")
        self.mp.set_forkserver_preload(["harness.experiments.zygote"])
        # the server runs `python -c`, which puts its working directory first on the import path: start it in the
        # folder our packages live in, so a stray tasks.py in the sweep's working directory shadows nothing
        here = os.getcwd()
        os.chdir(Path(__file__).resolve().parents[2])
        os.environ[SWEEP_PID] = str(os.getpid())  # the server's parent, which it checks once it is tied to it
        try:
            forkserver.ensure_running()
        finally:
            os.chdir(here)
            del os.environ[SWEEP_PID]
        self.running: dict[str, tuple[Any, multiprocessing.Process]] = {}  # job name -> (job, process)

    def describe(self) -> str:
        return f"local, {self.workers} worker(s) x {self.threads} thread(s)"

    @property
    def max_slots(self) -> int:
        """The most slots one job may take (a warm start with idle workers beside it)."""
        return self.workers

    def free_slots(self) -> int:
        return self.workers - sum(job.slots for job, _ in self.running.values())

    def submit(self, job) -> None:
        proc = self.mp.Process(target=_forked_job, args=(job.argv(), str(job.log), worker_env(self.threads * job.slots), os.getcwd()), name=job.name)
        proc.start()
        self.running[job.name] = (job, proc)

    def wait(self, timeout: float) -> list[tuple[Any, int]]:
        deadline = time.monotonic() + timeout
        while True:
            done = [name for name, (_, proc) in self.running.items() if proc.exitcode is not None]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, timeout))
        out = []
        for name in done:
            job, proc = self.running.pop(name)
            out.append((job, proc.exitcode))
            proc.close()
        return out

    def shutdown(self) -> None:
        for _, proc in self.running.values():
            proc.terminate()
        for _, proc in self.running.values():
            proc.join(timeout=10)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        self.running.clear()


class RayExecutor:
    """Each job is a Ray task reserving `threads` CPUs that runs the same worker process on some node.
    On a cluster, every node needs this repository at the same path and the sweep's out_dir on a shared
    filesystem (the results store is plain files)."""

    def __init__(self, workers: int | None, threads: int, address: str | None):
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        import ray

        self.ray = ray
        self.threads = threads
        self._tmp = None
        if address is None:
            cpus = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
            # a short temp dir: Ray's socket paths must fit in 107 bytes
            self._tmp = tempfile.mkdtemp(prefix="rlvr-ray-", dir="/tmp")
            ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=self._tmp, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        self.task = ray.remote(num_cpus=threads, max_retries=0)(run_job_process)
        self.refs: dict[Any, Any] = {}  # ObjectRef -> job

    def describe(self) -> str:
        return f"ray, {self.workers} worker(s) x {self.threads} thread(s), cluster CPUs {self.ray.cluster_resources().get('CPU')}"

    max_slots = 1  # a job must fit on one node, whose size the sweep does not know

    def free_slots(self) -> int:
        return self.workers - len(self.refs)

    def submit(self, job) -> None:
        ref = self.task.remote(job.command(), str(job.log), worker_env(self.threads), os.getcwd())
        self.refs[ref] = job

    def wait(self, timeout: float) -> list[tuple[Any, int]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        out = []
        for ref in ready:
            job = self.refs.pop(ref)
            try:
                rc = self.ray.get(ref)
            except Exception:  # the Ray worker itself died (node lost, OOM): a failed attempt like any other
                rc = -1
            out.append((job, rc))
        return out

    def shutdown(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        self.ray.shutdown()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def make_executor(cfg):
    if cfg.kind == "ray":
        return RayExecutor(cfg.workers, cfg.threads, cfg.address)
    return LocalExecutor(cfg.worker_count(), cfg.threads)
