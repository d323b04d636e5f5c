"""Fault injection helpers: bit flips, truncations, kills at chosen points, and the suite's tally.

With ``BRIDGEVLA_FAULT_LOG`` set, every fault is logged twice as JSON lines: :func:`injected` when it is applied and
:func:`record` once the test has checked how the code under test survived it: ``outcome`` ``"detected"`` (a clear
error naming the file), ``"recovered"`` (a fallback or a re-run, the result intact) or ``"harmless"`` (nothing that
is read back changed), and ``lost``, the valid records or files destroyed (must be 0). A fault whose check fails is
injected but never recorded, so ``survived < injected`` in the totals.
``python -m tests.reliability.faults LOG`` prints the totals docs/RELIABILITY.md quotes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import numpy as np

LOG_ENV = "BRIDGEVLA_FAULT_LOG"


def flip_bit(path: Path, rng: np.random.Generator) -> int:
    """Flip one random bit of ``path``; returns the byte offset."""
    data = bytearray(path.read_bytes())
    i = int(rng.integers(len(data)))
    data[i] ^= 1 << int(rng.integers(8))
    path.write_bytes(bytes(data))
    return i


def truncate(path: Path, rng: np.random.Generator) -> int:
    """Cut ``path`` at a random length shorter than it (possibly 0); returns the new length."""
    data = path.read_bytes()
    n = int(rng.integers(len(data)))
    path.write_bytes(data[:n])
    return n


def damage(path: Path, kind: str, rng: np.random.Generator) -> None:
    if kind == "bitflip":
        flip_bit(path, rng)
    elif kind == "truncate":
        truncate(path, rng)
    elif kind == "delete":
        path.unlink()
    else:
        raise ValueError(kind)


def _log(row: dict) -> None:
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:  # one short O_APPEND write: lines from parallel test workers never interleave
            f.write(json.dumps(row) + "\n")


def injected(fault: str, target: str) -> None:
    _log({"event": "inject", "fault": fault, "target": target})


def record(fault: str, target: str, outcome: str, lost: int = 0) -> None:
    assert outcome in ("detected", "recovered", "harmless"), outcome
    _log({"event": "survived", "fault": fault, "target": target, "outcome": outcome, "lost": lost})


def kill_self() -> None:
    """SIGKILL this process: no cleanup, no finally blocks, no flushing — what a kill -9 or a power cut does."""
    os.kill(os.getpid(), signal.SIGKILL)


def summarise(log: str | Path) -> dict:
    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    inj = [r for r in rows if r["event"] == "inject"]
    ok = [r for r in rows if r["event"] == "survived"]
    table: dict[str, dict] = {}
    for r in inj:
        table.setdefault(f"{r['fault']} -> {r['target']}", Counter())["injected"] += 1
    for r in ok:
        c = table.setdefault(f"{r['fault']} -> {r['target']}", Counter())
        c["survived"] += 1
        c[r["outcome"]] += 1
        c["lost"] += r["lost"]
    return {"injected": len(inj), "survived": len(ok), "outcomes": dict(Counter(r["outcome"] for r in ok)),
            "data_lost": sum(r["lost"] for r in ok), "by_fault": {k: dict(v) for k, v in sorted(table.items())}}


if __name__ == "__main__":
    print(json.dumps(summarise(sys.argv[1]), indent=1))
