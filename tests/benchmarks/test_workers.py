"""Pool workers die with their parent: a parent killed with SIGKILL leaves no worker running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARENT = textwrap.dedent("""
    import os, sys, time
    from benchmarks.workers import worker_pool

    if __name__ == "__main__":
        pool = worker_pool(2)
        futures = [pool.submit(os.getpid) for _ in range(8)]
        pids = sorted({f.result() for f in futures})
        for _ in range(6):  # queue long work, as a running evaluation has
            pool.submit(time.sleep, 60)
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(120)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 1 and all(alive(p) for p in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), "workers outlived their killed parent"


def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from benchmarks.workers import exit_with_parent; "
            "exit_with_parent(os.getppid() + 1_000_000); print('survived')")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "survived" not in out.stdout


class _FakePool:
    """A pool whose job "die" takes its worker down: every job still in flight fails with BrokenProcessPool and the
    pool refuses new ones; other jobs finish a moment after they are submitted. ``refuse``: broken from the start."""

    def __init__(self, refuse: bool = False) -> None:
        self.broken, self.pending = refuse, []

    def submit(self, job):
        import threading
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        if self.broken:
            raise BrokenProcessPool("a worker died")
        future = Future()
        self.pending.append(future)
        if job == ["die"]:
            self.broken = True
            for f in self.pending:
                if not f.done():
                    f.set_exception(BrokenProcessPool("a worker died"))
        else:
            threading.Timer(0.01, lambda: future.done() or future.set_result(job[0].upper())).start()
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_run_isolating_reruns_the_neighbours_and_gives_up_on_the_job_that_kills_its_worker():
    from benchmarks.workers import WorkerDied, run_isolating

    pools = []

    def start():
        pools.append(_FakePool())
        return pools[-1]

    # unhashable jobs, two of them equal: positions key the bookkeeping
    jobs = [["a"], ["die"], ["c"], ["a"]]
    out = list(run_isolating(start, lambda pool, job: pool.submit(job), jobs, workers=2, restarts=1))
    assert sorted((o.job[0], o.result if isinstance(o.result, str) else "died", o.restarts) for o in out) == [
        ("a", "A", 0), ("a", "A", 0), ("c", "C", 0), ("die", "died", 1)]
    died = next(o.result for o in out if o.job == ["die"])
    assert isinstance(died, WorkerDied) and "worker process died" in died.reason
    # "a" and "die" break the first pool together; "die" alone breaks two more (1 restart, then given up)
    assert len(pools) == 4


def test_run_isolating_stops_when_no_pool_can_start():
    from benchmarks.workers import run_isolating

    pools = []

    def start():
        pools.append(_FakePool(refuse=True))
        return pools[-1]

    with pytest.raises(RuntimeError, match="cannot start"):
        list(run_isolating(start, lambda pool, job: pool.submit(job), [["a"]], workers=2, restarts=1))
    assert len(pools) == 3
