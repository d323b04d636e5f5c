"""Observation → cloud speed: the CPU preprocessing every ``act()`` starts with (4 RGB-D cameras → world points,
crop to the workspace, colours to [0, 1], point budget), today's float32 torch path against the code at a git
revision, interleaved in one run.

Run: ``python -m bridgevla.scripts.speed_cloud --baseline REV`` (without ``--baseline``: today's path alone).
Figures go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.speed.common import load_baseline, machine, time_interleaved_ms, time_ms
from bridgevla.data.preprocess import observation_cloud, subsample_cloud
from bridgevla.model.config import REFERENCE_BOUNDS_LIST
from bridgevla.scripts.speed_policy import synthetic_observation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=None, help="git revision whose cloud path to compare against")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--max-points", type=int, default=16_384, help="point budget (the demo config's)")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    obs = synthetic_observation(args.image_size, args.cameras)
    bounds = REFERENCE_BOUNDS_LIST

    def new() -> tuple[np.ndarray, np.ndarray]:
        points, colors = observation_cloud(obs, bounds)
        return subsample_cloud(points, colors, args.max_points, np.random.default_rng(0))

    pixels = args.cameras * args.image_size**2
    print(f"machine: {machine()}")
    what = f"{args.cameras} cameras × {args.image_size}² ({pixels:,} px) → cropped cloud, budget {args.max_points:,}"
    if args.baseline is None:
        n = len(new()[0])
        print(f"| what | points | ms (median of {args.repeats}) |\n|---|---|---|")
        print(f"| {what} | {n:,} | {time_ms(new, repeats=args.repeats):.2f} |")
        return
    mods = load_baseline(args.baseline, ["benchmarks.protocol", "bridgevla.data.preprocess|bridgevla.preprocess"])
    protocol, preprocess = mods["benchmarks.protocol"], mods["bridgevla.data.preprocess|bridgevla.preprocess"]
    # The same arrays in the old code's own classes, so the old path runs its own methods end to end.
    old_obs = protocol.Observation(
        cameras={k: protocol.CameraFrame(f.rgb, f.depth, f.intrinsics, f.extrinsics) for k, f in obs.cameras.items()},
        gripper_pose=obs.gripper_pose, gripper_open=obs.gripper_open, joint_positions=obs.joint_positions,
        joint_velocities=obs.joint_velocities, instructions=obs.instructions)

    def old() -> tuple[np.ndarray, np.ndarray]:
        points, colors = preprocess.observation_cloud(old_obs, bounds)
        return preprocess.subsample_cloud(points, colors, args.max_points, np.random.default_rng(0))

    (pn, cn), (po, co) = new(), old()
    same_points = len(pn) == len(po)
    diff = float(np.abs(pn - po).max()) if same_points else float("nan")
    ms = time_interleaved_ms({"old": old, "new": new}, repeats=args.repeats)
    print(f"| what | points | {args.baseline} ms | today ms | today / {args.baseline} | max point difference (m) |")
    print("|---|---|---|---|---|---|")
    print(f"| {what} | {len(pn):,} (old {len(po):,}) | {ms['old']:.2f} | {ms['new']:.2f} | "
          f"{ms['new'] / ms['old']:.2f} | {diff:.1e} |")
    if not same_points or not np.array_equal(cn, co):
        print("note: the two paths kept different points (a point on the crop boundary rounds differently in float32)")


if __name__ == "__main__":
    main()
