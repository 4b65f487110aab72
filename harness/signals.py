"""Stopping cleanly: the first SIGINT/SIGTERM asks a training loop to checkpoint and stop at its next step boundary.

    with stop_requests() as stop:
        for step in ...:
            if stop():
                save(); raise Interrupted("...", stop())
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """Raised at a step boundary after SIGINT/SIGTERM, once a checkpoint is saved; `code` is 128 + the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.code = 128 + signum


@contextmanager
def stop_requests():
    """For the block, the first SIGINT or SIGTERM is only recorded: yields a callable returning that signal's
    number (or None), which a training loop checks between steps to checkpoint and stop cleanly. A second
    signal interrupts at once. Outside the main thread (signals cannot be caught there) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    got: list[int] = []

    def handler(signum, frame):
        if got:
            raise KeyboardInterrupt
        got.append(signum)  # said once, by the loop, when it has stopped (with where the checkpoint is)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: got[0] if got else None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
