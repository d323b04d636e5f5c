"""The fake simulator's state (stands in for CoppeliaSim behind stepjam/PyRep @ 231a1ac ``pyrep/backend/sim.py``).

One world per launch: a table top (z = TABLE_Z, |x|, |y| <= 1), cubes (top faces; a ``Shape`` of the cube's name
is its pose), named objects and who their parents are (``get_objects_in_tree``), a step counter.
Tests flip the module-level switches to exercise failure paths.
"""

from __future__ import annotations

import numpy as np

TABLE_Z = 0.752
# Test switches ------------------------------------------------------------------------------------------------
CRASH_AT_STEP: int | None = None  # the n-th physics step of the current launch raises RuntimeError (once)
LANDING_OFFSETS: list = []  # each planned path ends at target + the next offset popped from here (then exact)
LAUNCHES = 0  # PyRep.launch() calls since import (a restarted simulator shows here)
PLANNER_EXCEPTION: Exception | None = None  # the next get_path raises this (once)


class World:
    def __init__(self) -> None:
        self.table_rgb = np.array([0.6, 0.45, 0.3])
        self.cubes: list[dict] = []  # {"name", "xy": (2,), "half", "top", "rgb": (3,), "quat": (4,) xyzw}
        self.objects: dict[str, object] = {}
        self.parents: dict[str, str] = {}  # object name -> its parent's name (the task's base, the gripper's tip)
        self.steps = 0
        # Planner rules, set by the loaded task: collision-checked planning fails where ``blocked(position)``;
        # every planning fails where ``unreachable(position)``.
        self.blocked = lambda position: False
        self.unreachable = lambda position: position[2] > TABLE_Z + 0.9
        self.planner_calls: list[tuple[np.ndarray, bool]] = []  # (target position, ignore_collisions)

    def step(self) -> None:
        global CRASH_AT_STEP
        self.steps += 1
        if CRASH_AT_STEP is not None and self.steps >= CRASH_AT_STEP:
            CRASH_AT_STEP = None
            raise RuntimeError("The call failed on the V-REP side. Return value: -1 (simStep)")


WORLD: World | None = None


def world() -> World:
    if WORLD is None:
        raise RuntimeError("CoppeliaSim is not running (PyRep.launch() was not called)")
    return WORLD


def raycast(extrinsics: np.ndarray, intrinsics: np.ndarray, height: int, width: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """z-depth (H, W) (inf where nothing is hit) and RGB in [0, 1] of the world seen through a camera with PyRep's
    conventions: ray of pixel (u, v) = R @ [(u - cx) / fx, (v - cy) / fy, 1] with negative focal lengths."""
    w = world()
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    k = intrinsics
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1) @ extrinsics[:3, :3].T
    eye = extrinsics[:3, 3]
    depth = np.full((height, width), np.inf)
    rgb = np.zeros((height, width, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        surfaces = [(TABLE_Z, np.zeros(2), 1.0, w.table_rgb)]
        surfaces += [(c["top"], c["xy"], c["half"], c["rgb"]) for c in w.cubes]
        for z, xy, half, colour in surfaces:
            t = (z - eye[2]) / rays[..., 2]
            hit = eye[:2] + t[..., None] * rays[..., :2]
            on = (t > 0) & np.all(np.abs(hit - xy) <= half, axis=-1) & (t < depth)
            depth = np.where(on, t, depth)
            rgb[on] = colour
    return depth, rgb
