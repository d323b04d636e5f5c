"""Embedded simulator speed: where an expert episode's time goes (no disk; see benchmarks.speed.generate for the
whole demo-generation job).

    python -m benchmarks.speed.simulation [--tasks ...] [--episodes 3] [--image-size 128]

Per task: reset (scene sampling + expert plan), one 4-camera RGB-D render, and a whole expert episode recorded as
``benchmarks.generate`` records it (low-dim every tick, images every 10th tick and at each keypose's first and
last tick), in one process. Medians over episodes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
    from benchmarks.speed.common import machine, time_ms

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=None, help="default: every task")
    p.add_argument("--episodes", type=int, default=3, help="episodes per task")
    p.add_argument("--image-size", type=int, default=128)
    a = p.parse_args(argv)
    env = EmbeddedEnv(EmbeddedConfig(image_size=a.image_size))
    tasks = a.tasks or env.tasks()
    print(f"machine: {machine()}; {a.image_size} px, 4 cameras, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print(f"{'task':>14} {'reset ms':>9} {'render ms':>9} {'ticks':>6} {'images':>6} {'episode s':>9} {'ep/s':>6}")
    total_s, total_n = 0.0, 0
    for task in tasks:
        env.reset(task, 0, 0)  # compile the scene and create the renderer outside the timings
        resets, episodes, ticks, images = [], [], [], []
        for seed in range(a.episodes):
            variation = seed % env.variations(task)
            t = time.perf_counter()
            env.reset(task, variation, seed)
            resets.append(time.perf_counter() - t)
            env.start_recording(image_every=10)
            for k in env.expert_keyposes():
                if env.step(k).done:
                    break
            frames = env.stop_recording()
            episodes.append(time.perf_counter() - t)
            ticks.append(len(frames))
            images.append(sum(bool(f.cameras) for f in frames))
        render = time_ms(lambda: env._sim.render(env.config.cameras))
        ep = statistics.median(episodes)
        total_s += sum(episodes)
        total_n += len(episodes)
        print(f"{task:>14} {1e3 * statistics.median(resets):>9.1f} {render:>9.1f} {statistics.median(ticks):>6.0f} "
              f"{statistics.median(images):>6.0f} {ep:>9.2f} {1 / ep:>6.2f}")
    print(f"all tasks: {total_n / total_s:.2f} episodes/s in one process")
    env.close()


if __name__ == "__main__":
    main()
