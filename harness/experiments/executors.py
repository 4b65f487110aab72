"""Executors run sweep jobs: a pool of local worker processes, or tasks on a Ray cluster.

Each job runs in a fresh `python -m harness.experiments.worker` process (its own torch threads and memory; a crash or an
OOM kill fails that job only). Local workers die with the sweep process (PR_SET_PDEATHSIG), so a killed
sweep leaves no orphan writing into a run directory; the run's lock file guards against any that would.

    executor = make_executor(ExecutorConfig(workers=2))
    executor.submit(job); finished = executor.wait(timeout=1.0)  # [(job, exit code)]
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

PR_SET_PDEATHSIG = 1


def worker_env(threads: int) -> dict[str, str]:
    """Environment of a job process: thread pools sized to its share, W&B quiet, Ray's telemetry off."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("WANDB_SILENT", "true")
    env.setdefault("WANDB_ERROR_REPORTING", "false")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the run lock still prevents two writers
        pass


def run_job_process(command: list[str], log_path: str, env: dict[str, str], cwd: str) -> int:
    """Run one job to completion, appending its output to log_path; returns the exit code (<0: signal)."""
    with open(log_path, "ab") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=_die_with_parent).returncode


class LocalExecutor:
    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.running: dict[str, tuple[Any, subprocess.Popen, Any]] = {}  # job name -> (job, process, log file)

    def describe(self) -> str:
        return f"local, {self.workers} worker(s) x {self.threads} thread(s)"

    def free_slots(self) -> int:
        return self.workers - len(self.running)

    def submit(self, job) -> None:
        log = open(job.log, "ab")
        proc = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, env=worker_env(self.threads),
                                cwd=os.getcwd(), preexec_fn=_die_with_parent)
        self.running[job.name] = (job, proc, log)

    def wait(self, timeout: float) -> list[tuple[Any, int]]:
        deadline = time.monotonic() + timeout
        while True:
            done = [name for name, (_, proc, _) in self.running.items() if proc.poll() is not None]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, timeout))
        out = []
        for name in done:
            job, proc, log = self.running.pop(name)
            log.close()
            out.append((job, proc.returncode))
        return out

    def shutdown(self) -> None:
        for _, proc, _ in self.running.values():
            proc.terminate()
        for _, proc, log in self.running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
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
