"""Shared helpers for the speed scripts: timing with warm-up, device sync, and a machine description."""

from __future__ import annotations

import importlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
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


def load_baseline(rev: str, modules: list[str]) -> dict[str, types.ModuleType]:
    """The named modules as they were at git revision ``rev``, imported beside today's: the "old" side of an
    old-vs-new measurement in one run. The revision's ``rendering``, ``benchmarks`` and ``bridgevla`` packages are
    extracted to a temporary folder and imported under their own names with today's modules set aside, so the old
    code runs against its own old dependencies; today's modules are put back afterwards. Each entry of ``modules``
    may list alternatives separated by ``|`` (a module that moved between the revisions)."""
    root = Path(__file__).resolve().parents[2]
    tmp = Path(tempfile.mkdtemp(prefix=f"baseline-{rev}-"))
    try:
        archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", rev, *_PACKAGES],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or str(e).encode()
        raise ValueError(f"cannot read git revision {rev!r}: {err.decode(errors='replace').strip()}") from e
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    ours = {k: v for k, v in sys.modules.items() if k.split(".")[0] in _PACKAGES}
    path_before = list(sys.path)
    out: dict[str, types.ModuleType] = {}
    try:
        for k in ours:
            del sys.modules[k]
        sys.path.insert(0, str(tmp))
        importlib.invalidate_caches()
        for spec in modules:
            errors = []
            for name in spec.split("|"):
                try:
                    out[spec] = importlib.import_module(name)
                    break
                except ImportError as e:
                    errors.append(f"{name}: {e}")
            else:
                raise ValueError(f"revision {rev} has none of {spec!r} ({'; '.join(errors)})")
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in _PACKAGES]:
            del sys.modules[k]
        sys.modules.update(ours)
        sys.path[:] = path_before
        importlib.invalidate_caches()
    return out


_PACKAGES = ("rendering", "benchmarks", "bridgevla")
