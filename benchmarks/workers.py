"""Spawned worker pools whose workers never outlive their parent.

``ProcessPoolExecutor`` workers keep running the episodes already queued to them when the parent is killed with
SIGKILL (nothing tells them), writing files for 30 s or more after the job is gone. :func:`worker_pool` builds a
spawn-context pool whose workers first arm :func:`exit_with_parent`:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment the parent dies;
- everywhere, a daemon thread that polls the parent's pid and exits the worker when it changes (the fallback, and
  a second line of defence where the death signal is not delivered, e.g. when the spawning thread, not the process,
  ends first).

A worker killed this way may leave a temporary folder behind; writers name theirs with their pid and
``benchmarks.fileio.remove_stale_temps`` removes those of dead processes on the next run.

Used by demo generation (``benchmarks.generate``) and the evaluation runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


def _parent_gone(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


def exit_with_parent(parent_pid: int, poll_seconds: float = POLL_SECONDS) -> None:
    """Make this process exit as soon as ``parent_pid`` (its parent) dies; see the module doc."""
    if _parent_gone(parent_pid):  # the parent died before this worker got here
        os._exit(1)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the polling thread below still works
        if _parent_gone(parent_pid):  # died between the check and prctl: the signal was never armed
            os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if _parent_gone(parent_pid):
                os._exit(1)  # no cleanup: the parent that would collect our results is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    exit_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(workers: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A spawn-context ``ProcessPoolExecutor`` whose workers die with this process, then run ``initializer``.
    Spawn, not fork: simulators and torch hold threads and GL contexts that do not survive a fork."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_init,
                               initargs=(os.getpid(), initializer, tuple(initargs)))
