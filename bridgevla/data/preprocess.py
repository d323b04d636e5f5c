"""The one point-cloud preprocessing, shared by training, evaluation and serving (docs/INTERFACES.md).

Every path from an ``Observation`` (or a stored dataset frame) to the model goes through :func:`prepare_cloud`, so a
policy never sees a cloud filtered differently from the ones it was trained on — the classic cause of an evaluation
that fails every episode (REFERENCE §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from benchmarks.protocol import Observation
from rendering import SceneBounds, crop_to_bounds, keypose_markers

ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)


def as_bounds(bounds: SceneBounds | Sequence[float]) -> SceneBounds:
    """``SceneBounds`` from itself or the flat ``[xmin, ymin, zmin, xmax, ymax, zmax]``."""
    if isinstance(bounds, SceneBounds):
        return bounds
    try:
        return SceneBounds.from_list([float(b) for b in bounds])
    except TypeError as e:
        raise ValueError(f"bounds must be SceneBounds or 6 numbers, got {bounds!r}") from e


def prepare_cloud(
    points: ArrayT, colors: ArrayT, bounds: SceneBounds | Sequence[float]
) -> tuple[ArrayT, ArrayT]:
    """Drop non-finite points and points outside ``bounds``; colours to float32 in [0, 1].

    ``points`` (N, 3) world metres, ``colors`` (N, 3) uint8 (0..255) or float in [0, 1]. Returns ``(points (M, 3)
    float32, colors (M, 3) float32)`` of the same kind as the input (numpy in → numpy out, torch in → torch out, on
    the input's device). Idempotent.
    """
    is_np = isinstance(points, np.ndarray)
    if is_np != isinstance(colors, np.ndarray) or not (is_np or isinstance(points, Tensor)):
        raise ValueError(f"points and colors must both be numpy arrays or both torch tensors, got "
                         f"{type(points).__name__} and {type(colors).__name__}")
    p = torch.from_numpy(np.ascontiguousarray(points)) if is_np else points
    c = torch.from_numpy(np.ascontiguousarray(colors)) if is_np else colors
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(p.shape)}")
    if c.shape != p.shape:
        raise ValueError(f"colors must have shape {tuple(p.shape)} like points, got {tuple(c.shape)}")
    if c.dtype == torch.uint8:
        c = c.float() / 255.0
    elif c.is_floating_point():
        c = c.float()
        finite = c[torch.isfinite(c)]
        if finite.numel() and (finite.min() < 0 or finite.max() > 1):
            raise ValueError("colors must be uint8 0..255 or float in [0, 1] (got floats outside [0, 1])")
    else:
        raise ValueError(f"colors must be uint8 or float, got {c.dtype}")
    p = p.float()
    keep = crop_to_bounds(p, as_bounds(bounds)) & torch.isfinite(c).all(-1)
    p, c = p[keep], c[keep]
    return (p.numpy(), c.numpy()) if is_np else (p, c)


def subsample_cloud(
    points: np.ndarray, colors: np.ndarray, max_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random subset of ``max_points`` points (order kept), or the cloud itself when it is no larger or
    ``max_points`` is 0. The policy's point budget (``BridgeVLAConfig.max_points``): training and ``act()`` both apply
    it, so the rendered views have the same density in both (a dense test cloud after sparse training clouds is a
    distribution shift the model never saw)."""
    if max_points < 0:
        raise ValueError(f"max_points must be >= 0, got {max_points}")
    if not max_points or points.shape[0] <= max_points:
        return points, colors
    keep = np.sort(rng.choice(points.shape[0], max_points, replace=False))
    return points[keep], colors[keep]


def observation_cloud(
    observation: Observation, bounds: SceneBounds | Sequence[float], cameras: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An observation's fused world cloud through :func:`prepare_cloud` (all cameras unless ``cameras``)."""
    points, colors = observation.point_cloud(cameras)
    return prepare_cloud(points, colors, bounds)


@dataclass(frozen=True)
class MemoryMarkers:
    """The policy's memory of the episode (``BridgeVLAConfig.memory_keyposes`` and its marker settings): the last
    ``keyposes`` executed keyposes drawn into the cloud as ``rendering.keypose_markers``. 0 keyposes = off."""

    keyposes: int = 0
    radius: float = 0.015  # metres
    points: int = 48  # per marker

    def __post_init__(self) -> None:
        if self.keyposes < 0 or self.points < 1 or not self.radius > 0:
            raise ValueError(f"memory markers need keyposes >= 0, points >= 1 and radius > 0, got {self}")


def add_memory_markers(
    points: np.ndarray, colors: np.ndarray, history: Sequence[tuple[Any, Any]], memory: MemoryMarkers | None
) -> tuple[np.ndarray, np.ndarray]:
    """Append markers for the last ``memory.keyposes`` entries of ``history`` — ``(position (3,), gripper_open)``
    pairs, oldest first — to a prepared cloud (float32 numpy). Applied after the point budget, so markers are never
    subsampled away; in training (previous keyframes of the demo) and in ``act()`` (the keyposes executed so far)
    alike."""
    if memory is None or memory.keyposes == 0 or not history:
        return points, colors
    recent = list(history)[-memory.keyposes:]
    pos = torch.as_tensor(np.asarray([np.asarray(p, dtype=np.float32).reshape(3) for p, _ in recent]))
    grip = torch.as_tensor(np.asarray([float(g) for _, g in recent], dtype=np.float32))
    if not bool(torch.isfinite(pos).all()):
        raise ValueError("memory history holds a non-finite keypose position")
    mp, mc = keypose_markers(pos, grip, memory.radius, memory.points)
    return (np.concatenate([points, mp.numpy()]).astype(np.float32, copy=False),
            np.concatenate([colors, mc.numpy()]).astype(np.float32, copy=False))
