"""Imported only by the local executor's forkserver (the process its jobs are forked from): the imports every job
needs, done once, and the server's own tie to the sweep process that started it.

Without that tie a SIGKILLed sweep would leave the server, and the jobs forked from it, running: the server
exits when its client goes only if nothing keeps its interpreter from shutting down.
"""
import os

from harness.experiments.executors import SWEEP_PID, die_with_parent

PID = os.getpid()  # the server's: the parent every job forked from it checks for
die_with_parent(int(os.environ[SWEEP_PID]) if SWEEP_PID in os.environ else None)

import algorithms  # noqa: E402,F401  (the imports every job needs)
import harness.core.trainer  # noqa: E402,F401
import harness.experiments.pretrain  # noqa: E402,F401
import tasks  # noqa: E402,F401
