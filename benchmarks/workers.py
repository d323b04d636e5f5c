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

:func:`run_isolating` runs independent jobs over such pools and survives a worker dying (a simulator taking its
process down): the jobs lost with the pool are rerun, and the one that keeps killing its process is given up on
alone. Used by demo generation (``benchmarks.generate``) and the evaluation runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Generic, TypeVar

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


T = TypeVar("T")


@dataclass(frozen=True)
class WorkerDied:
    """The outcome :func:`run_isolating` gives a job that took its worker process down more than ``restarts`` times."""

    reason: str


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One finished job: its ``result`` (the worker's return value, or :class:`WorkerDied`) and how many worker
    deaths were charged to it on the way (``restarts``)."""

    job: T
    result: Any
    restarts: int


def run_isolating(start_pool: Callable[[], Executor], submit: Callable[[Executor, T], Future], jobs: Iterable[T],
                  workers: int, restarts: int, reason: str = "worker process died (simulator crash?)"
                  ) -> Iterator[Outcome[T]]:
    """Run independent ``jobs`` over pools from ``start_pool`` (``submit(pool, job)`` starts one), at most ``workers``
    in flight, yielding each :class:`Outcome` as it finishes.

    A dying worker process breaks the whole pool and every job in flight with it. Those jobs become suspects and rerun
    one at a time in a fresh pool, so a restart is charged only to a job that takes its process down while running
    alone — never to its innocent neighbours; past ``restarts`` such deaths it finishes as :class:`WorkerDied`.
    Nothing is lost: a job leaves its queue only once a pool has accepted it (a pool whose worker has just died
    refuses new work with ``BrokenProcessPool``).
    """
    if workers < 1 or restarts < 0:
        raise ValueError(f"run_isolating needs workers >= 1 and restarts >= 0, got {workers} and {restarts}")
    # Positions, not the jobs themselves, key the bookkeeping: jobs need not be hashable, and equal jobs stay apart.
    listed = list(jobs)
    queue, suspects, charged = deque(range(len(listed))), deque(), Counter()
    refused = 0  # fresh pools in a row that broke before accepting anything
    while queue or suspects:
        pool = start_pool()
        inflight: dict[Future, int] = {}
        accepted = 0

        def start(source: deque, pool: Executor = pool, inflight: dict = inflight) -> None:
            nonlocal accepted
            future = submit(pool, listed[source[0]])  # may raise BrokenProcessPool: the job stays queued
            inflight[future] = source.popleft()
            accepted += 1

        try:
            while queue or suspects or inflight:
                if suspects:  # isolation: one suspect at a time, nothing beside it
                    if not inflight:
                        start(suspects)
                else:
                    while queue and len(inflight) < workers:
                        start(queue)
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()  # BrokenProcessPool when a worker died
                    i = inflight.pop(future)
                    yield Outcome(listed[i], result, charged[i])
        except BrokenProcessPool as broke:
            lost = []
            for future, i in inflight.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield Outcome(listed[i], future.result(), charged[i])
                else:
                    lost.append(i)
            # A pool that refuses its very first job cannot start at all: three in a row end the run, not a loop.
            refused = refused + 1 if not accepted else 0
            if refused >= 3:
                raise RuntimeError("three fresh worker pools in a row broke before accepting a job: the workers "
                                   "cannot start") from broke
            if len(lost) == 1:  # it ran alone: it is the one that kills its process
                charged[lost[0]] += 1
                if charged[lost[0]] > restarts:
                    yield Outcome(listed[lost[0]], WorkerDied(reason), restarts)
                else:
                    suspects.appendleft(lost[0])
            else:
                suspects.extend(lost)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
