"""Expert success of every embedded task over many seeds, as the markdown tables in docs/tasks.md.

    python -m benchmarks.embedded.expert_report --seeds 25 --out expert_report.jsonl
    python -m benchmarks.embedded.expert_report --suite perturbations --seeds 20 --out perturbations.jsonl
    python -m benchmarks.embedded.expert_report --suite levels --seeds 20 --out levels.jsonl

``--suite`` picks the task list as ``EmbeddedConfig.suite`` does: the catalogue, every defined (task, factor)
perturbation cell (the report lists the excluded cells and why), or every level task.

Episode ``i`` of a task uses seed ``i`` and variation ``i % variations`` (as ``benchmarks.generate`` does).
Results are appended to the JSON-lines file as they finish, and a rerun skips what it already holds (use a new
file when changing the noise). Exits non-zero if any expert episode fails. ``--position-noise 0.005
--rotation-noise 3`` perturbs every expert keypose (deterministically per task and seed): how forgiving each task is
to an imprecise policy.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from benchmarks.embedded import perturbations as pert
from benchmarks.embedded import suites
from benchmarks.embedded.config import SUITES, EmbeddedConfig
from benchmarks.embedded.env import EmbeddedEnv
from benchmarks.embedded.tasks import ALL_TASKS
from benchmarks.fileio import append_jsonl, atomic_write_text, read_jsonl
from benchmarks.protocol import Keypose


def perturb(keypose: Keypose, rng: np.random.Generator, position_std: float, rotation_std_deg: float) -> Keypose:
    """The keypose with Gaussian position noise (m) and a random rotation (rotation vector, degrees)."""
    noise = Rotation.from_rotvec(rng.normal(0.0, np.deg2rad(rotation_std_deg), 3))
    return Keypose(keypose.position + rng.normal(0.0, position_std, 3),
                   (noise * Rotation.from_quat(keypose.quaternion)).as_quat(),
                   keypose.gripper_open, keypose.ignore_collisions)


def run_episode(env: EmbeddedEnv, task: str, seed: int, position_std: float = 0.0,
                rotation_std_deg: float = 0.0) -> dict:
    start = time.perf_counter()
    variation = seed % env.variations(task)
    try:
        env.reset(task, variation, seed)
    except (RuntimeError, ValueError) as e:  # a scene that cannot be built counts as a failed episode, with why
        return {"task": task, "seed": seed, "variation": variation, "success": False, "keyposes": 0,
                "error": f"reset: {e}", "seconds": time.perf_counter() - start}
    plan = env.expert_keyposes()
    rng = np.random.default_rng([zlib.crc32(task.encode()), seed, 1])
    if position_std > 0 or rotation_std_deg > 0:
        plan = [perturb(k, rng, position_std, rotation_std_deg) for k in plan]
    success, info, steps = False, {}, 0
    for k in plan:
        _, success, done, info = env.step(k)
        steps += 1
        if done:
            break
    return {"task": task, "seed": seed, "variation": variation, "success": bool(success), "keyposes": steps,
            "error": info.get("error", ""), "seconds": time.perf_counter() - start}


def table(rows: list[dict]) -> str:
    lines = ["| task | mirrors | variations | expert keyposes (mean) | expert success | s / episode |",
             "|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        cls = ALL_TASKS[pert.split_name(task)[0]]
        mine = [r for r in rows if r["task"] == task]
        ok = sum(r["success"] for r in mine)
        kp = sum(r["keyposes"] for r in mine) / len(mine)
        sec = sum(r["seconds"] for r in mine) / len(mine)
        lines.append(f"| {task} | {cls.mirrors} | {cls().num_variations()} | {kp:.1f} | {ok}/{len(mine)} "
                     f"({100 * ok / len(mine):.0f}%) | {sec:.2f} |")
    return "\n".join(lines)


def perturbation_report(rows: list[dict]) -> str:
    """Expert success per (task, factor) in COLOSSEUM's layout, then every excluded cell with its reason."""
    headline, per_task = suites.perturbation_tables([{**r, "agent": "expert", "seed": 0} for r in rows])
    counts = {n: len([r for r in rows if r["task"] == n]) for n in {r["task"] for r in rows}}
    tasks = {pert.split_name(r["task"])[0] for r in rows}
    out = [headline.markdown(), per_task.markdown(),
           f"Episodes per cell: {min(counts.values())}-{max(counts.values())}. Excluded cells (factor not defined "
           "for the task):", ""]
    out += [f"- {task} × {f}: {why}" for task, f, why in suites.excluded_cells() if task in tasks]
    return "\n".join(out)


def levels_report(rows: list[dict]) -> str:
    return "\n".join(t.markdown() for t in suites.level_tables([{**r, "agent": "expert", "seed": 0} for r in rows]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=25, help="episodes per task (seeds 0..N-1)")
    p.add_argument("--suite", default="tasks", choices=SUITES)
    p.add_argument("--tasks", default="", help="comma-separated task names (perturbations: base tasks); default all")
    p.add_argument("--out", type=Path, default=Path("expert_report.jsonl"))
    p.add_argument("--markdown", type=Path, default=None, help="also write the report's tables to this file")
    p.add_argument("--position-noise", type=float, default=0.0, help="std of keypose position noise (m)")
    p.add_argument("--rotation-noise", type=float, default=0.0, help="std of keypose rotation noise (degrees)")
    a = p.parse_args(argv)
    if a.position_noise < 0 or a.rotation_noise < 0:
        raise ValueError("--position-noise and --rotation-noise must be >= 0")
    if a.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {a.seeds}")
    env = EmbeddedEnv(EmbeddedConfig(suite=a.suite))
    names = env.tasks()
    if a.tasks:
        wanted = [t for t in a.tasks.split(",") if t]
        unknown = [t for t in wanted if t not in {pert.split_name(n)[0] for n in names}]
        if unknown:
            raise ValueError(f"--tasks: unknown {unknown} in suite {a.suite!r}")
        names = [n for n in names if pert.split_name(n)[0] in wanted]
    # Torn or corrupted lines (a kill mid-write) move to <out>.rejected and are re-run; nothing is lost.
    rows = [r for r in read_jsonl(a.out).records if isinstance(r.get("task"), str) and isinstance(r.get("seed"), int)]
    done = {(r["task"], r["seed"]) for r in rows}
    todo = [(t, s) for t in names for s in range(a.seeds) if (t, s) not in done]
    with a.out.open("a") as f:
        for task, seed in tqdm(todo, desc="expert episodes"):
            row = run_episode(env, task, seed, a.position_noise, a.rotation_noise)
            rows.append(row)
            append_jsonl(f, row)
    env.close()
    rows = [r for r in rows if r["task"] in names and r["seed"] < a.seeds]
    report = {"tasks": table, "perturbations": perturbation_report, "levels": levels_report}[a.suite](rows)
    if a.suite != "tasks":
        report += "\n\n" + table(rows)
    print(report)
    if a.markdown is not None:
        atomic_write_text(a.markdown, report + "\n")
    failed = [r for r in rows if not r["success"]]
    for r in failed:
        print(f"FAILED {r['task']} seed {r['seed']} variation {r['variation']}: {r['error']}", file=sys.stderr)
    # With noise, failures measure how forgiving a task is; only noise-free expert failures are errors.
    return 1 if failed and a.position_noise == 0 and a.rotation_noise == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
