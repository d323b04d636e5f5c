"""Orthographic point-cloud renderer: B clouds → three views of features, depth, cube xyz and validity.

Two vectorised passes, no loop over points or pixels:
1. a z-buffer: one ``scatter_reduce(amin)`` of a packed int64 key per (point, view) - the depth's float32 bits in
   the high word, the point's index in the low word - so "nearest wins, lowest index breaks ties" is one integer
   minimum;
2. a screen-space splat: every pixel also considers the z-buffer winners of the pixels in a small window around it
   whose projected position lies within ``splat_radius`` of the pixel centre, and keeps the nearest. The window is a
   handful of fixed offsets (8 at the default radius and 224 px), each a whole-image shift.

How it stays fast (docs/PERFORMANCE.md has the figures):
- every per-(point, view) quantity (pixel, sub-pixel offset, depth) is computed once, at the point level, in a
  (B, V, N + 1) layout whose index 0 is a sentinel "no point" (the origin, zero features, depth -1). A pixel then
  carries only the table index of the point it shows - the key's low word, 0 when empty - and every output is one
  gather of those tables: empty pixels need no masking pass;
- the views are signed axis permutations, so projecting is a column selection, not a matrix product;
- the splat's "within the radius" test becomes an integer mask from the sign bit of ``r² - d²``: ``torch.where`` and
  ``masked_fill`` with data-dependent conditions cost about ten arithmetic passes each on CPU.
All arithmetic that decides a pixel is the same, operation for operation, as ``rendering.views.project`` and
``pixel_index``, so the output matches the slow reference renderer (tests/rendering/reference_renderer.py) exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rendering.checks import device_constant
from rendering.views import NUM_VIEWS, view_matrices

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
    if n == 0:  # nothing to draw: empty views rather than an indexing error on a zero-length cloud
        return Rendered(
            features=features.new_zeros(b, v, c, s, s),
            depth=points.new_full((b, v, s, s), -1.0),
            xyz=points.new_zeros(b, v, 3, s, s),
            valid=torch.zeros(b, v, s, s, dtype=torch.bool, device=dev),
            index=torch.full((b, v, s, s), -1, dtype=torch.long, device=dev),
        )
    if n + 1 > _ID_MASK:
        raise ValueError(f"points: at most {_ID_MASK - 1} points per cloud (the key's index word), got {n}")
    if s > 46340:
        raise ValueError(f"image_size must be at most 46340 (pixel indices are int32), got {s}")

    # Coordinate-major tables with the sentinel at index 0 (see the module docstring).
    m = n + 1
    pts_t = points.new_zeros(b, 3, m)
    pts_t[:, :, 1:] = points.transpose(1, 2)
    feats_t = features.new_zeros(b, c, m)
    feats_t[:, :, 1:] = features.transpose(1, 2)
    # NaN compares False and inf is out of range, so one comparison also drops non-finite points.
    inside = pts_t.abs() <= 1.0
    keep = inside[:, 0] & inside[:, 1] & inside[:, 2]
    keep[:, 0] = False
    if mask is not None:
        keep[:, 1:] &= mask

    pixel, du, dv, depth = _point_tables(pts_t, s)  # each (B, V, M)
    # Z-buffer. Dropped points still get a pixel (clamped into the image, NaN included) but a key that never wins,
    # which keeps every tensor dense (boolean indexing costs more than the extra scatter work). Depth in the cube is
    # in [0, 2], never -0.0, so its float32 bits order like the depths.
    keys = depth.detach().float().view(torch.int32).long()
    keys.bitwise_left_shift_(_ID_BITS).bitwise_or_(torch.arange(m, device=dev))
    keys.masked_fill_(~keep[:, None, :], _NO_POINT)
    flat = pixel.long().add_((torch.arange(b * v, device=dev) * (s * s)).view(b, v, 1))
    del pixel
    zbuf = torch.full((b * v * s * s,), _NO_POINT, dtype=torch.long, device=dev)
    zbuf.scatter_reduce_(0, flat.view(-1), keys.view(-1), reduce="amin", include_self=True)
    del keys, flat
    zbuf = zbuf.view(b * v, s, s)
    if splat_radius > 0:
        zbuf = _splat(zbuf, du.view(b * v, m), dv.view(b * v, m), splat_radius * s / 2.0)
    del du, dv

    shown = zbuf.bitwise_and_(_ID_MASK).view(b, v, 1, s * s)  # table index of the point each pixel shows, 0 = none
    depth[:, :, 0] = -1.0  # the sentinel's depth: empty pixels read -1
    features_shown = _gather(feats_t, shown).view(b, v, c, s, s)
    xyz = _gather(pts_t, shown).view(b, v, 3, s, s)
    depth_shown = depth.gather(2, shown[:, :, 0]).view(b, v, s, s)
    valid = (shown != 0).view(b, v, s, s)
    # Not in place: the gathers keep ``shown`` for their backward pass.
    index = (shown - 1).view(b, v, s, s)
    return Rendered(features=features_shown, depth=depth_shown, xyz=xyz, valid=valid, index=index)


_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1
# Empty pixel: above every key (a finite non-negative float32 has bits <= 0x7F7FFFFF) and index word 0, the sentinel.
_NO_POINT = 0x7FFFFFFF << _ID_BITS
_NEVER = torch.iinfo(torch.long).max  # a splat candidate out of reach: above _NO_POINT, so it changes nothing


def _signed_axes() -> tuple[Tensor, Tensor]:
    """The view matrices as signed axis permutations: ``axes[k, r]`` is the cube axis that row ``r`` (image right,
    image up, forward) of view ``k`` selects and ``signs[k, r]`` its sign, so ``(A_k @ p)[r] = signs * p[axes]``
    exactly (the matrix product only adds zeros)."""
    mats = view_matrices(torch.float64)
    axes = mats.abs().argmax(-1)
    signs = mats.gather(-1, axes[..., None])[..., 0]
    if not torch.equal(mats.abs().sum(-1), torch.ones(NUM_VIEWS, 3, dtype=torch.float64)):
        raise AssertionError("the renderer assumes axis-aligned views (signed permutation matrices)")
    return axes, signs


_AXES, _SIGNS = _signed_axes()
_AXIS_ROWS = tuple(tuple(row) for row in _AXES.T.tolist())  # per matrix row: the axis each view selects
_SIGN_ROWS = tuple(tuple(row) for row in _SIGNS.T.tolist())


def _point_tables(pts_t: Tensor, s: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cube points (B, 3, M) → per view (B, V, M): the flat pixel index within the view (int32), the continuous
    position's offset from that pixel's centre (du, dv) and the depth, in the points' dtype. The same operations, in
    the same order, as ``views.project`` followed by ``views.pixel_index``."""
    dev, dtype = pts_t.device, pts_t.dtype

    def select(r: int) -> Tensor:  # row r of every view matrix applied to the points: (B, V, M)
        axes = device_constant(_AXIS_ROWS[r], torch.long, dev)
        signs = device_constant(_SIGN_ROWS[r], dtype, dev)
        return pts_t.index_select(1, axes).mul_(signs.view(1, NUM_VIEWS, 1))

    # In-place chains: the same roundings as the out-of-place expressions, without a fresh buffer per step (on CPU,
    # first touches of freshly allocated memory cost as much as the arithmetic).
    half = s / 2.0
    u = select(0).add_(1.0).mul_(half).sub_(0.5)  # (a + 1) * S/2 - 0.5
    v = select(1).neg_().add_(1.0).mul_(half).sub_(0.5)  # (1 - b) * S/2 - 0.5; -b + 1 is 1 - b exactly
    # Pixel = floor(x + 0.5) clamped into the image, kept as a float for the offsets (exact: small integers) and
    # converted to int32 once (float -> int32 is a vector instruction, float -> int64 is not). NaN (dropped points)
    # converts to some integer, which the integer clamp brings back into the image.
    col = torch.add(u, 0.5).floor_().clamp_(0, s - 1)
    row = torch.add(v, 0.5).floor_().clamp_(0, s - 1)
    du = u.sub_(col)
    dv = v.sub_(row)
    pixel = row.to(torch.int32).clamp_(0, s - 1).mul_(s).add_(col.to(torch.int32).clamp_(0, s - 1))
    depth = select(2).add_(1.0)
    return pixel, du, dv, depth


def _gather(table: Tensor, shown: Tensor) -> Tensor:
    """``table`` (B, C, M) at the table indices ``shown`` (B, V, 1, P) → (B, V, C, P), contiguous."""
    b, c, m = table.shape
    v, p = shown.shape[1], shown.shape[-1]
    return torch.gather(table[:, None].expand(b, v, c, m), 3, shown.expand(b, v, c, p))


_SAME_SIZE_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _splat(zbuf: Tensor, du: Tensor, dv: Tensor, radius_px: float) -> Tensor:
    """Screen-space splat of the z-buffer's winners (keys (B*V, S, S)): each pixel takes the nearest winner of its
    window whose continuous projection lies within ``radius_px`` of the pixel centre (its own winner always counts).
    ``du``/``dv`` (B*V, M): every point's offset from its pixel centre in that view."""
    bv, s = zbuf.shape[0], zbuf.shape[-1]
    src = (zbuf & _ID_MASK).view(bv, s * s)
    du = du.gather(1, src).view(bv, s, s)  # offsets of each pixel's winner (the sentinel's where empty)
    dv = dv.gather(1, src).view(bv, s, s)
    del src
    k = int(math.floor(radius_px + 0.5))  # a winner lies within 0.5 px of its pixel centre, so farther can't reach
    r2 = radius_px * radius_px
    # The winner at source pixel (row, col) sits at (col + du, row + dv); from the pixel at offset (-dx, -dy) it is
    # (du + dx, dv + dy) away. Same expression as the reference: squares, their sum, compared with r² (which torch
    # rounds to the points' dtype).
    sq_u = {dx: torch.add(du, dx).pow_(2) for dx in range(-k, k + 1)}
    sq_v = {dy: torch.add(dv, dy).pow_(2) for dy in range(-k, k + 1)}
    best = zbuf.clone()
    dist = torch.empty_like(du)
    bits = dist.view(_SAME_SIZE_INT[dist.element_size()])
    cand = torch.empty_like(zbuf)
    for dy in range(-k, k + 1):  # loop over the few window offsets, each a whole-image operation
        for dx in range(-k, k + 1):
            if not (dy or dx):
                continue  # a pixel's own winner always counts: it is the starting value
            if (max(abs(dx) - 0.5, 0.0) ** 2 + max(abs(dy) - 0.5, 0.0) ** 2) > r2 + 1e-3:
                continue  # no winner (|du|, |dv| <= 0.5) can reach across this offset
            # r² - d² (as -d² + r², the same rounding), negative exactly when out of reach; its sign bit, spread by an
            # arithmetic shift, is an all-ones mask there: candidate = key, or _NEVER where out of reach. Branch-free:
            # torch.where with a data-dependent condition costs about ten arithmetic passes on CPU.
            torch.add(sq_u[dx], sq_v[dy], out=dist).neg_().add_(r2)
            cand.copy_(bits.bitwise_right_shift_(8 * bits.element_size() - 1))
            cand.bitwise_and_(_NEVER).bitwise_or_(zbuf)
            # Destination pixels (r, c) whose source (r + dy, c + dx) lies in the image.
            r0, r1, c0, c1 = max(0, -dy), s - max(0, dy), max(0, -dx), s - max(0, dx)
            dst = best[:, r0:r1, c0:c1]
            torch.minimum(dst, cand[:, r0 + dy : r1 + dy, c0 + dx : c1 + dx], out=dst)
    return best
