"""Shared helpers for the speed scripts: timing with warm-up, device sync, and a machine description."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], device: torch.device | str = "cpu", warmup: int = 2, repeats: int = 9,
            min_seconds: float = 0.0) -> float:
    """Median wall time of ``fn`` in milliseconds (medians resist the noise of shared machines)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def time_interleaved_ms(fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu", warmup: int = 2,
                        repeats: int = 9) -> dict[str, float]:
    """Median wall time (ms) of each function, called in turn within every repeat, so that a noisy neighbour slows
    all of them alike: on a shared machine, ratios from one interleaved run are the figures to trust."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load_baseline(rev: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` (repository-relative) as it was at git revision ``rev``, importable beside today's:
    the "old" side of an old-vs-new measurement in one run. Its own imports resolve against today's tree."""
    root = Path(__file__).resolve().parents[2]
    try:
        source = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"], check=True, capture_output=True,
                                text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", "") or e
        raise ValueError(f"cannot read {path} at git revision {rev!r}: {str(err).strip()}") from e
    module = types.ModuleType(name)
    module.__file__ = f"{rev}:{path}"
    sys.modules[name] = module  # dataclasses look their module up while the class body runs
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module
