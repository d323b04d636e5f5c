"""Pool workers die with their parent: a parent killed with SIGKILL leaves no worker running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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
