"""Orthographic point-cloud renderer: B clouds → three views of features, depth, cube xyz and validity.

Two vectorised passes, no loop over points or pixels:
1. a z-buffer by ``scatter_reduce(amin)`` of each point's depth into its pixel of every view, then a second
   ``amin`` over point indices among the points at that minimum (deterministic tie-break: lowest index wins);
2. a screen-space splat: every pixel also considers the z-buffer winners of the pixels in a small window around it
   whose projected position lies within ``splat_radius`` of the pixel centre, and keeps the nearest. The window is a
   handful of fixed offsets (9 at the default radius and 224 px), each a whole-image shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rendering.views import NUM_VIEWS, pixel_index, project

DEFAULT_SPLAT_RADIUS = 0.012  # cube units, as the reference (≈1.3 px at 224 px)


@dataclass
class Rendered:
    """Per-view images. ``V`` = 3 views (top, front, side)."""

    features: Tensor  # (B, V, C, H, W), 0 where empty (black background)
    depth: Tensor  # (B, V, H, W), distance from the view's cube face, -1 where empty
    xyz: Tensor  # (B, V, 3, H, W), cube coordinates of the point shown, 0 where empty
    valid: Tensor  # (B, V, H, W) bool
    index: Tensor  # (B, V, H, W) long, index into the cloud's N points of the point shown, -1 where empty


def _validate(points: Tensor, features: Tensor, mask: Tensor | None) -> None:
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be a tensor of shape (B, N, 3), got {getattr(points, 'shape', points)}")
    if not points.is_floating_point():
        raise ValueError(f"points must be floating point, got {points.dtype}")
    if not isinstance(features, Tensor) or features.ndim != 3 or features.shape[:2] != points.shape[:2]:
        raise ValueError(
            f"features must be a tensor of shape (B, N, C) = ({points.shape[0]}, {points.shape[1]}, C), "
            f"got {getattr(features, 'shape', features)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got {features.dtype}")
    if features.device != points.device:
        raise ValueError(f"features are on {features.device} but points on {points.device}")
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.shape != points.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(points.shape[:2])}, got "
                             f"{getattr(mask, 'shape', mask)} {getattr(mask, 'dtype', '')}")


def render(
    points: Tensor,
    features: Tensor,
    mask: Tensor | None = None,
    image_size: int = 224,
    splat_radius: float = DEFAULT_SPLAT_RADIUS,
) -> Rendered:
    """Render padded clouds ``points`` (B, N, 3) in cube coordinates with ``features`` (B, N, C).

    Points that are masked out, non-finite or outside [-1, 1]^3 are ignored. ``splat_radius`` is in cube units;
    0 renders each point into exactly one pixel per view.
    """
    _validate(points, features, mask)
    if not (isinstance(image_size, int) and image_size >= 1):
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not (math.isfinite(splat_radius) and splat_radius >= 0):
        raise ValueError(f"splat_radius must be a finite number >= 0, got {splat_radius!r}")
    b, n, c = features.shape
    v, s = NUM_VIEWS, image_size
    dev = points.device
    npix = b * v * s * s
    if n == 0:  # nothing to draw: empty views rather than an indexing error on a zero-length cloud
        return Rendered(
            features=features.new_zeros(b, v, c, s, s),
            depth=points.new_full((b, v, s, s), -1.0),
            xyz=points.new_zeros(b, v, 3, s, s),
            valid=torch.zeros(b, v, s, s, dtype=torch.bool, device=dev),
            index=torch.full((b, v, s, s), -1, dtype=torch.long, device=dev),
        )

    keep = torch.isfinite(points).all(-1) & (points.abs() <= 1.0).all(-1)
    if mask is not None:
        keep &= mask
    pts = torch.where(keep[..., None], points, torch.zeros_like(points))
    uvd = project(pts, s)  # (B, N, V, 3)
    pix = pixel_index(uvd[..., :2], s)  # (B, N, V, 2) as (col, row)

    # Flat pixel id per (point, view), restricted to kept points.
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    vi = torch.arange(v, device=dev).view(1, 1, v)
    flat = ((bi * v + vi) * s + pix[..., 1]) * s + pix[..., 0]  # (B, N, V)
    point_id = (torch.arange(b, device=dev).view(b, 1) * n + torch.arange(n, device=dev).view(1, n))  # (B, N)
    sel = keep[..., None].expand(b, n, v)
    flat_k = flat[sel]
    depth_k = uvd[..., 2][sel]
    pid_k = point_id[..., None].expand(b, n, v)[sel]

    big = b * n  # "no point" id: one past the last; small enough to survive float padding values exactly
    zbuf = torch.full((npix,), math.inf, dtype=points.dtype, device=dev)
    zbuf.scatter_reduce_(0, flat_k, depth_k, reduce="amin", include_self=True)
    at_min = depth_k == zbuf[flat_k]
    winner = torch.full((npix,), big, dtype=torch.long, device=dev)
    winner.scatter_reduce_(0, flat_k[at_min], pid_k[at_min], reduce="amin", include_self=True)

    winner = winner.view(b * v, s, s)
    zbuf = zbuf.view(b * v, s, s)
    if splat_radius > 0:
        winner, zbuf = _splat(winner, zbuf, uvd, n, splat_radius * s / 2.0, big)

    valid = winner != big
    safe = torch.where(valid, winner, torch.zeros_like(winner))  # (B*V, S, S) flat point ids
    feats = features.reshape(b * n, c)[safe.view(-1)].view(b, v, s, s, c).permute(0, 1, 4, 2, 3)
    xyz = pts.reshape(b * n, 3)[safe.view(-1)].view(b, v, s, s, 3).permute(0, 1, 4, 2, 3)
    valid = valid.view(b, v, s, s)
    vmask = valid[:, :, None]
    return Rendered(
        features=torch.where(vmask, feats, torch.zeros_like(feats)),
        depth=torch.where(valid, zbuf.view(b, v, s, s), torch.full_like(zbuf.view(b, v, s, s), -1.0)),
        xyz=torch.where(vmask, xyz, torch.zeros_like(xyz)),
        valid=valid,
        index=torch.where(valid, safe.view(b, v, s, s) % n, torch.full_like(safe.view(b, v, s, s), -1)),
    )


def _splat(
    winner: Tensor, zbuf: Tensor, uvd: Tensor, n: int, radius_px: float, big: int
) -> tuple[Tensor, Tensor]:
    """Screen-space splat of z-buffer winners: each pixel takes the nearest winner of its window whose continuous
    projection lies within ``radius_px`` of the pixel centre (its own winner always counts)."""
    bv, s, _ = winner.shape
    b, _, v, _ = uvd.shape
    has = winner != big
    safe = torch.where(has, winner, torch.zeros_like(winner))
    # Continuous (u, v) of each pixel's winner in that pixel's view: uvd is (B, N, V, 3), ids are b * n + i.
    view_of = torch.arange(bv, device=winner.device).view(bv, 1, 1) % v
    uv_flat = uvd[..., :2].reshape(b * n * v, 2)
    wuv = uv_flat[(safe * v + view_of).view(-1)].view(bv, s, s, 2)

    k = int(math.floor(radius_px + 0.5))  # a winner lies within 0.5 px of its pixel centre, so farther can't reach
    pad = (k, k, k, k)
    inf = torch.tensor(math.inf, dtype=zbuf.dtype, device=zbuf.device)
    zp = torch.nn.functional.pad(torch.where(has, zbuf, inf), pad, value=math.inf)
    ip = torch.nn.functional.pad(winner, pad, value=big)
    up = torch.nn.functional.pad(wuv.permute(0, 3, 1, 2), pad, value=0.0)
    rows = torch.arange(s, device=winner.device, dtype=zbuf.dtype).view(1, s, 1)
    cols = torch.arange(s, device=winner.device, dtype=zbuf.dtype).view(1, 1, s)
    r2 = radius_px * radius_px
    depths, ids = [], []
    for dy in range(-k, k + 1):  # loop over the few window offsets, each a whole-image operation
        for dx in range(-k, k + 1):
            z = zp[:, k + dy : k + dy + s, k + dx : k + dx + s]
            i = ip[:, k + dy : k + dy + s, k + dx : k + dx + s]
            if dy or dx:
                uu = up[:, 0, k + dy : k + dy + s, k + dx : k + dx + s]
                vv = up[:, 1, k + dy : k + dy + s, k + dx : k + dx + s]
                near = (uu - cols) ** 2 + (vv - rows) ** 2 <= r2
                z = torch.where(near, z, inf)
                i = torch.where(near, i, big)
            depths.append(z)
            ids.append(i)
    z = torch.stack(depths)
    i = torch.stack(ids)
    zmin = z.min(0).values
    imin = torch.where(z == zmin, i, big).min(0).values
    return imin, zmin
