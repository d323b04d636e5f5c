"""Pinhole RGB-D cameras: depth images → world-frame points, and world points → pixels.

The convention is the protocol's (benchmarks/protocol.py): intrinsics with positive focal lengths, pixel centres at
integer (u = column, v = row) coordinates, depth in metres along the optical axis, extrinsics camera-to-world.
"""

from __future__ import annotations

import torch
from torch import Tensor


def depth_to_world(depth: Tensor, intrinsics: Tensor, extrinsics: Tensor) -> Tensor:
    """Depth images (..., H, W) → world points (..., H*W, 3), row-major over pixels; NaN where the depth is not a
    positive finite number (no return), so callers keep the image layout and drop invalid points in one place."""
    if not isinstance(depth, Tensor) or depth.ndim < 2 or not depth.is_floating_point():
        raise ValueError(f"depth must be a float tensor of shape (..., H, W), got {getattr(depth, 'shape', depth)}")
    batch = depth.shape[:-2]
    if not isinstance(intrinsics, Tensor) or intrinsics.shape != (*batch, 3, 3):
        raise ValueError(f"intrinsics must have shape {(*batch, 3, 3)}, got {getattr(intrinsics, 'shape', intrinsics)}")
    if not isinstance(extrinsics, Tensor) or extrinsics.shape != (*batch, 4, 4):
        raise ValueError(f"extrinsics must have shape {(*batch, 4, 4)}, got {getattr(extrinsics, 'shape', extrinsics)}")
    h, w = depth.shape[-2:]
    k = intrinsics.to(depth.dtype)
    e = extrinsics.to(depth.dtype)
    v, u = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype, device=depth.device),
        torch.arange(w, dtype=depth.dtype, device=depth.device),
        indexing="ij",
    )
    fx, fy = k[..., 0, 0, None, None], k[..., 1, 1, None, None]
    cx, cy = k[..., 0, 2, None, None], k[..., 1, 2, None, None]
    cam = torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], dim=-1).reshape(*batch, h * w, 3)
    world = cam @ e[..., :3, :3].transpose(-1, -2) + e[..., None, :3, 3]
    valid = (torch.isfinite(depth) & (depth > 0)).reshape(*batch, h * w, 1)
    return torch.where(valid, world, torch.nan)


def world_to_pixels(points: Tensor, intrinsics: Tensor, extrinsics: Tensor) -> Tensor:
    """World points (..., N, 3) → (..., N, 3) ``(u, v, depth)`` in the same convention as :func:`depth_to_world`
    (its inverse for points in front of the camera). ``depth <= 0`` means behind the camera: ``u, v`` are then
    meaningless and callers mask on ``depth > 0``."""
    if not isinstance(points, Tensor) or points.ndim < 2 or points.shape[-1] != 3 or not points.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape (..., N, 3), got {getattr(points, 'shape', points)}")
    batch = points.shape[:-2]
    if not isinstance(intrinsics, Tensor) or intrinsics.shape != (*batch, 3, 3):
        raise ValueError(f"intrinsics must have shape {(*batch, 3, 3)}, got {getattr(intrinsics, 'shape', intrinsics)}")
    if not isinstance(extrinsics, Tensor) or extrinsics.shape != (*batch, 4, 4):
        raise ValueError(f"extrinsics must have shape {(*batch, 4, 4)}, got {getattr(extrinsics, 'shape', extrinsics)}")
    k = intrinsics.to(points.dtype)
    e = extrinsics.to(points.dtype)
    # camera-to-world is p_w = R p_c + t, so p_c = R^T (p_w - t); as row vectors: (p_w - t) @ R.
    cam = (points - e[..., None, :3, 3]) @ e[..., :3, :3]
    z = cam[..., 2]
    u = k[..., 0, 0, None] * cam[..., 0] / z + k[..., 0, 2, None]
    v = k[..., 1, 1, None] * cam[..., 1] / z + k[..., 1, 2, None]
    return torch.stack([u, v, z], dim=-1)
