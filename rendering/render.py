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

from rendering.views import NUM_VIEWS, pixel_index, project, view_matrices

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

    # NaN compares False and inf is out of range, so one comparison also drops non-finite points.
    keep = (points.abs() <= 1.0).all(-1)
    if mask is not None:
        keep &= mask
    # Dropped points still get projected (NaN/far pixels are harmless): they are routed to a spare slot below.
    pts = points
    uvd = project(pts, s)  # (B, N, V, 3)
    pix = pixel_index(uvd[..., :2], s)  # (B, N, V, 2) as (col, row)

    # Flat pixel id per (point, view); dropped points go to a spare slot past the last pixel instead of being
    # filtered out, which keeps every tensor dense (boolean indexing costs more than the extra scatter work).
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    vi = torch.arange(v, device=dev).view(1, 1, v)
    flat = ((bi * v + vi) * s + pix[..., 1]) * s + pix[..., 0]  # (B, N, V)
    flat = torch.where(keep[..., None], flat, torch.full_like(flat, npix)).reshape(-1)
    point_id = torch.arange(b * n, device=dev).view(b, n, 1).expand(b, n, v).reshape(-1)
    keys = torch.full((npix + 1,), _NO_POINT, dtype=torch.long, device=dev)
    keys.scatter_reduce_(0, flat, depth_key(uvd[..., 2].reshape(-1), point_id), reduce="amin", include_self=True)
    keys = keys[:npix].view(b * v, s, s)
    if splat_radius > 0:
        keys = _splat(keys, pts.reshape(b * n, 3), v, s, splat_radius * s / 2.0)

    valid = keys != _NO_POINT
    winner = torch.where(valid, keys & _ID_MASK, 0)  # flat point ids b * n + i (0 where empty, masked below)
    valid = valid.view(b, v, s, s)

    def gather(table: Tensor) -> Tensor:
        out = table.index_select(0, winner.view(-1)).view(b, v, s, s, -1)
        # Empty pixels read point 0, which may be a dropped (NaN) point: overwrite with black / xyz 0 (before the
        # permute, while the memory is contiguous).
        return out.masked_fill_(~valid[..., None], 0.0).permute(0, 1, 4, 2, 3)

    xyz = gather(pts.reshape(b * n, 3))
    features_shown = gather(features.reshape(b * n, c))
    # Depth of the shown point in its view: 1 + forward . p (the view matrix's last row).
    fwd = view_matrices(points.dtype, dev)[:, 2]  # (V, 3)
    depth = 1.0 + torch.einsum("vk,bvkhw->bvhw", fwd, xyz)
    return Rendered(
        features=features_shown,
        depth=torch.where(valid, depth, torch.full_like(depth, -1.0)),
        xyz=xyz,
        valid=valid,
        index=torch.where(valid, winner.view(b, v, s, s) % n, -1),
    )


_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1
_NO_POINT = torch.iinfo(torch.long).max


def depth_key(depth: Tensor, point_id: Tensor) -> Tensor:
    """One int64 per (depth, id) whose order is the lexicographic order of (depth at float32 precision, id).

    Non-negative IEEE floats order like their bit patterns, so ``bits(depth) << 32 | id`` lets a single integer
    ``amin`` do "nearest wins, lowest id breaks ties". Depth inside the cube is in [0, 2]; adding 0.0 turns -0.0
    into +0.0."""
    bits = (depth.float().clamp_min(0.0) + 0.0).view(torch.int32).long()
    return (bits << _ID_BITS) | point_id


def _splat(keys: Tensor, pts: Tensor, v: int, s: int, radius_px: float) -> Tensor:
    """Screen-space splat of z-buffer winners (keys (B*V, S, S)): each pixel takes the nearest winner of its window
    whose continuous projection lies within ``radius_px`` of the pixel centre (its own winner always counts)."""
    bv = keys.shape[0]
    has = keys != _NO_POINT
    ids = torch.where(has, keys & _ID_MASK, torch.zeros_like(keys))
    # Continuous position of each winner relative to its own pixel centre, from its cube coordinates.
    m = view_matrices(pts.dtype, pts.device)  # (V, 3, 3)
    xyz = pts.index_select(0, ids.view(-1)).view(bv, s, s, 3)
    mv = m[torch.arange(bv, device=keys.device) % v]  # (B*V, 3, 3)
    a = torch.einsum("nk,nhwk->nhw", mv[:, 0], xyz)
    b_ = torch.einsum("nk,nhwk->nhw", mv[:, 1], xyz)
    idx = torch.arange(s, device=keys.device, dtype=pts.dtype)
    du = (a + 1.0) * (s / 2.0) - 0.5 - idx.view(1, 1, s)
    dv = (1.0 - b_) * (s / 2.0) - 0.5 - idx.view(1, s, 1)

    k = int(math.floor(radius_px + 0.5))  # a winner lies within 0.5 px of its pixel centre, so farther can't reach
    size = s + 2 * k
    kp = torch.full((bv, size, size), _NO_POINT, dtype=keys.dtype, device=keys.device)
    kp[:, k : k + s, k : k + s] = keys
    dup = torch.zeros((bv, size, size), dtype=du.dtype, device=du.device)
    dvp = torch.zeros_like(dup)
    dup[:, k : k + s, k : k + s] = du
    dvp[:, k : k + s, k : k + s] = dv
    r2 = radius_px * radius_px
    best = keys.clone()
    no_point = torch.tensor(_NO_POINT, device=keys.device)
    for dy in range(-k, k + 1):  # loop over the few window offsets, each a whole-image operation
        for dx in range(-k, k + 1):
            if not (dy or dx):
                continue  # a pixel's own winner always counts: it is the starting value
            ys, xs = slice(k + dy, k + dy + s), slice(k + dx, k + dx + s)
            # The neighbour's winner sits at (col + dx + du, row + dy + dv); its distance to this pixel's centre:
            near = (dup[:, ys, xs] + dx) ** 2 + (dvp[:, ys, xs] + dy) ** 2 <= r2
            best = torch.minimum(best, torch.where(near, kp[:, ys, xs], no_point))
    return best
