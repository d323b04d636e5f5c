"""Synthetic tabletop samples (a grey table and coloured cubes; the target is the top of the cube the instruction
names). Used by the tests (overfitting, oracle decoding) and the speed benchmark; no simulator needed."""

from __future__ import annotations

import numpy as np
import torch

from rendering import REFERENCE_BOUNDS, SceneBounds, bins_to_quaternion

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220), "yellow": (230, 220, 30),
}


def cube_surface(center: np.ndarray, size: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniformly on the surface of an axis-aligned cube (vectorised: pick a face, then a spot)."""
    face = rng.integers(0, 6, n)
    axis, sign = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    uv = rng.uniform(-0.5, 0.5, (n, 3)) * size
    uv[np.arange(n), axis] = sign * size / 2
    return center + uv


def tabletop_sample(
    rng: np.random.Generator,
    bounds: SceneBounds = REFERENCE_BOUNDS,
    table_points: int = 4096,
    cube_points: int = 400,
    cube_size: float = 0.06,
    num_cubes: int = 3,
) -> dict:
    """One sample in ``collate``'s format: ``points``, ``colors`` (uint8), ``instruction`` and the four targets."""
    lo, hi = np.array(bounds.lo), np.array(bounds.hi)
    table_z = lo[2] + 0.15 * (hi[2] - lo[2])
    table = np.column_stack([
        rng.uniform(lo[0], hi[0], table_points), rng.uniform(lo[1], hi[1], table_points), np.full(table_points, table_z)
    ])
    names = list(rng.choice(list(COLORS), size=num_cubes, replace=False))
    # Cubes on a jittered 3x3 layout, so they never overlap.
    cells = rng.choice(9, size=num_cubes, replace=False)
    span = hi[:2] - lo[:2]
    grid = np.column_stack([cells // 3, cells % 3])
    xy = lo[:2] + span * (0.2 + 0.3 * grid + rng.uniform(-0.05, 0.05, (num_cubes, 2)))
    centers = np.column_stack([xy, np.full(num_cubes, table_z + cube_size / 2)])
    pts = [table] + [cube_surface(c, cube_size, cube_points, rng) for c in centers]
    cols = [np.full((table_points, 3), 128, np.uint8)] + [np.tile(np.array(COLORS[n], np.uint8), (cube_points, 1))
                                                          for n in names]
    k = int(rng.integers(num_cubes))
    bins = rng.integers(0, 72, 3)
    bins[1] = rng.integers(20, 52)  # keep |pitch| < 90° so the Euler bins are canonical
    quat = bins_to_quaternion(torch.as_tensor(bins)[None]).numpy()[0]
    return {
        "points": np.concatenate(pts).astype(np.float32),
        "colors": np.concatenate(cols),
        "instruction": f"touch the {names[k]} cube",
        "target_position": centers[k] + np.array([0.0, 0.0, cube_size / 2]),
        "target_quaternion": quat,
        "target_gripper_open": float(rng.integers(2)),
        "target_ignore_collisions": float(rng.integers(2)),
    }
