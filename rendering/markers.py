"""Keypose markers: small coloured spheres of points added to a cloud, so the views show where the arm already went.

This is the policy's memory of the episode so far (``BridgeVLAConfig.memory_keyposes``): some progress is invisible
in the scene (a pressed button springs back), but a marker over each button already pressed is visible in every
rendered view, to any backbone, with no change to the network. Colour says the gripper state at that keypose
(cyan open, magenta closed), brightness its recency (the newest is brightest), so order is readable too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

OPEN_RGB = (0.0, 1.0, 1.0)
CLOSED_RGB = (1.0, 0.0, 1.0)


def sphere_points(n: int, device: torch.device | str | None = None) -> Tensor:
    """``n`` points spread evenly over the unit sphere (Fibonacci lattice): deterministic, no RNG."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    i = torch.arange(n, dtype=torch.float32, device=device) + 0.5
    z = 1 - 2 * i / n
    r = (1 - z * z).clamp(min=0).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))  # the golden angle
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1)


def keypose_markers(positions: Tensor, gripper_open: Tensor, radius: float, points_per_marker: int
                    ) -> tuple[Tensor, Tensor]:
    """Markers for ``K`` keyposes, oldest first: ``positions`` (K, 3) world metres, ``gripper_open`` (K,) in {0, 1}.

    Returns ``(points (K·P, 3), colors (K·P, 3) in [0, 1])``: a sphere shell of ``radius`` around each position;
    cyan when the gripper was open there, magenta when closed; brightness from 0.5 (oldest of K > 1) to 1 (newest).
    """
    if positions.ndim != 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (K, 3), got {tuple(positions.shape)}")
    if gripper_open.shape != positions.shape[:1]:
        raise ValueError(f"gripper_open must have shape ({positions.shape[0]},), got {tuple(gripper_open.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    k = positions.shape[0]
    shell = sphere_points(points_per_marker, positions.device) * radius  # (P, 3)
    points = (positions.float()[:, None, :] + shell[None]).reshape(-1, 3)
    hue = torch.where(gripper_open.float()[:, None] > 0.5, torch.tensor(OPEN_RGB, device=positions.device),
                      torch.tensor(CLOSED_RGB, device=positions.device))  # (K, 3)
    brightness = torch.linspace(0.5, 1.0, k, device=positions.device) if k > 1 else \
        torch.ones(k, device=positions.device)
    colors = (hue * brightness[:, None])[:, None, :].expand(k, points_per_marker, 3).reshape(-1, 3)
    return points, colors
