"""Demo generation speed (episodes/s) on the embedded MuJoCo benchmark, written to a temporary folder.

    python -m benchmarks.speed.generate [--tasks ...] [--episodes 4] [--workers 1 2] [--image-size 128]

Wall-clock time of the whole job (env start-up, simulation, rendering, PNG encoding, writing) divided into the
number of episodes, and the CPU seconds it used (this process and its workers) per episode: on a shared machine the
wall-clock figure depends on the other jobs, the CPU figure much less. Target on the 2-core machine: >= 1 episode/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (spawned workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from benchmarks.generate import GenerateConfig, env_config_type, generate, make_env

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=None, help="default: every task")
    p.add_argument("--episodes", type=int, default=4, help="episodes per task")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--env", default="benchmarks.embedded:EmbeddedEnv")
    a = p.parse_args(argv)
    tasks = a.tasks or make_env(a.env).tasks()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(tasks)} tasks x {a.episodes} episodes, {a.image_size} px, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7} {'episodes':>8} {'wall s':>8} {'episodes/s':>10} {'CPU s/ep':>9} {'sim s/ep':>9} "
          f"{'MB/ep':>6}")
    for workers in a.workers:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GenerateConfig(tasks=tasks, episodes=a.episodes, out=tmp, workers=workers, env=a.env)
            env_config = env_config_type(a.env)(image_size=a.image_size)
            start, cpu0 = time.perf_counter(), cpu_seconds()
            summary = generate(cfg, env_config)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
            n = sum(s["episodes"] for s in summary.values())
            sim = sum(s["seconds_per_episode"] * s["generated"] for s in summary.values()) / n
            print(f"{workers:>7} {n:>8} {wall:>8.1f} {n / wall:>10.2f} {cpu / n:>9.2f} {sim:>9.2f} "
                  f"{folder_mb(Path(tmp)) / n:>6.2f}")


if __name__ == "__main__":
    main()
