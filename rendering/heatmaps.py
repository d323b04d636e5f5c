"""Per-view heatmaps ⇄ 3D points: the reference's multi-view grid fusion, a soft-argmax, and Gaussian targets.

Heatmaps are probability maps (B, 3 views, H, W), indexed [row v, column u], each view summing to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rendering.views import NUM_VIEWS, in_image, project, view_axes


def _check_heatmaps(heatmaps: Tensor) -> None:
    if not isinstance(heatmaps, Tensor) or heatmaps.ndim != 4 or heatmaps.shape[1] != NUM_VIEWS:
        raise ValueError(f"heatmaps must have shape (B, {NUM_VIEWS}, H, W), got {getattr(heatmaps, 'shape', heatmaps)}")
    if heatmaps.shape[2] != heatmaps.shape[3]:
        raise ValueError(f"heatmaps must be square, got {tuple(heatmaps.shape[2:])}")
    if not heatmaps.is_floating_point():
        raise ValueError(f"heatmaps must be floating point, got {heatmaps.dtype}")


def grid_centers(grid_res: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """The ``grid_res`` cell centres along one axis of [-1, 1]."""
    i = torch.arange(grid_res, dtype=torch.float64, device=device)
    return (-1.0 + (i + 0.5) * 2.0 / grid_res).to(dtype)


def _interp_matrix(grid_res: int, image_size: int, sign: float, vertical: bool, dtype, device) -> Tensor:
    """(grid_res, image_size) bilinear weights sampling one image axis at the grid's cell centres, 0 outside.

    Coordinates are computed from integers in float64 so that when grid_res == image_size every grid centre lands
    exactly on a pixel centre and the weights are exactly one-hot.
    """
    i = torch.arange(grid_res, dtype=torch.float64, device=device)
    # cube coordinate along the image axis: a = sign * g;  u = (a + 1) S/2 - 0.5;  v = (1 - b) S/2 - 0.5
    t = i + 0.5 if (sign > 0) != vertical else grid_res - i - 0.5
    pos = t * image_size / grid_res - 0.5
    lo = torch.floor(pos)
    w_hi = pos - lo
    cols = torch.arange(image_size, dtype=torch.float64, device=device)
    m = (cols[None] == lo[:, None]) * (1.0 - w_hi[:, None]) + (cols[None] == lo[:, None] + 1) * w_hi[:, None]
    return m.to(dtype)


def fusion_score_planes(heatmaps: Tensor, grid_res: int) -> list[tuple[Tensor, int, int]]:
    """Each view sampled at the grid: a list of (plane (B, R, R) indexed [grid along axis_b, grid along axis_a],
    axis_b, axis_a). Separable because each view is axis-aligned: ``R_b @ H @ R_a^T``."""
    b, _, s, _ = heatmaps.shape
    planes = []
    for k, (ia, sa, ib, sb) in enumerate(view_axes()):
        ra = _interp_matrix(grid_res, s, sa, False, heatmaps.dtype, heatmaps.device)
        rb = _interp_matrix(grid_res, s, sb, True, heatmaps.dtype, heatmaps.device)
        planes.append((rb @ heatmaps[:, k] @ ra.T, ib, ia))
    return planes


def fuse_heatmaps(heatmaps: Tensor, grid_res: int = 224, max_chunk_elements: int = 1 << 22) -> Tensor:
    """Reference decode: argmax over a ``grid_res``^3 grid of the mean over views of each view's bilinearly sampled
    probability at the cell centre's projection. Returns cube points (B, 3). Ties go to the lowest (x, y, z) index.

    Exact, without materialising the grid: the score is ``T[x, y] + F[y, z] + S[x, z]`` (top, front, side planes,
    see :func:`fusion_score_planes`), bounded above by ``T[x, y] + max_z F[y, z] + max_z S[x, z]``. A few columns
    with the best bounds give a lower bound on the maximum; only the (x, y) columns whose upper bound reaches it are
    scored over all z (usually a handful, since heatmaps are peaked; at worst all of them, ``max_chunk_elements``
    cells at a time). Floating-point addition is monotone, so the pruning never drops the true argmax.
    """
    _check_heatmaps(heatmaps)
    if not isinstance(grid_res, int) or grid_res < 1:
        raise ValueError(f"grid_res must be a positive int, got {grid_res!r}")
    r = grid_res
    b = heatmaps.shape[0]
    dev = heatmaps.device
    planes = {}
    for plane, ib, ia in fusion_score_planes(heatmaps, r):
        planes[(min(ia, ib), max(ia, ib))] = plane if ib < ia else plane.transpose(1, 2)  # [min axis, max axis]
    if set(planes) != {(0, 1), (1, 2), (0, 2)}:
        raise ValueError("fuse_heatmaps needs views that see the (x, y), (y, z) and (x, z) planes")
    top, front, side = planes[(0, 1)], planes[(1, 2)], planes[(0, 2)]  # [x, y], [y, z], [x, z]
    upper = (top + front.amax(-1)[:, None, :]) + side.amax(-1)[:, :, None]  # (B, X, Y)

    def column_scores(bi: Tensor, xi: Tensor, yi: Tensor) -> Tensor:
        # Same association order as the bound: (T + F) + S.
        return (top[bi, xi, yi][:, None] + front[bi, yi]) + side[bi, xi]  # (n, Z)

    k = min(16, r * r)
    seed = upper.reshape(b, -1).topk(k, dim=1).indices  # (B, k) flat (x, y)
    bi = torch.arange(b, device=dev).repeat_interleave(k)
    lower = column_scores(bi, seed.reshape(-1) // r, seed.reshape(-1) % r).amax(-1).view(b, k).amax(-1)

    cb, cx, cy = (upper >= lower[:, None, None]).nonzero(as_tuple=True)
    best_val = torch.full((b,), -math.inf, dtype=heatmaps.dtype, device=dev)
    best_idx = torch.full((b,), r**3, dtype=torch.long, device=dev)
    rows = max(1, max_chunk_elements // r)
    for c0 in range(0, cb.numel(), rows):  # loop over bounded chunks of candidate columns, each vectorised
        sb, sx, sy = cb[c0 : c0 + rows], cx[c0 : c0 + rows], cy[c0 : c0 + rows]
        val, z = column_scores(sb, sx, sy).max(-1)  # first max along z = lowest index within a column
        flat = (sx * r + sy) * r + z
        chunk_best = torch.full_like(best_val, -math.inf).scatter_reduce(0, sb, val, "amax")
        new_best = torch.maximum(best_val, chunk_best)
        keep_old = (best_val == new_best)
        cand = torch.where(val == new_best[sb], flat, torch.full_like(flat, r**3))
        chunk_idx = torch.full_like(best_idx, r**3).scatter_reduce(0, sb, cand, "amin")
        best_idx = torch.where(keep_old, torch.minimum(best_idx, chunk_idx), chunk_idx)
        best_val = new_best
    ix, iy, iz = best_idx // (r * r), (best_idx // r) % r, best_idx % r
    g = grid_centers(r, heatmaps.dtype, dev)
    return torch.stack([g[ix], g[iy], g[iz]], dim=-1)


def heatmap_scores(heatmaps: Tensor, points: Tensor) -> Tensor:
    """The fusion score at arbitrary cube points: the mean over views of each view's bilinearly sampled probability at
    the point's projection (0 outside the image) — the function :func:`fuse_heatmaps` maximises over its grid, here
    evaluated where the points are (e.g. to colour a point cloud by what the policy believes).

    ``heatmaps`` (B, 3, S, S), ``points`` (B, N, 3) cube coordinates → scores (B, N)."""
    _check_heatmaps(heatmaps)
    b, v, s, _ = heatmaps.shape
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[0] != b or points.shape[2] != 3 \
            or not points.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape ({b}, N, 3), got {getattr(points, 'shape', points)}")
    n = points.shape[1]
    uv = project(points.to(heatmaps.dtype), s)[..., :2]  # (B, N, V, 2)
    # grid_sample with align_corners=False puts -1 on the left edge of pixel 0, i.e. u = -0.5: the same bilinear
    # weights, zero outside, as the fusion's interpolation matrices.
    grid = ((uv + 0.5) * (2.0 / s) - 1.0).permute(0, 2, 1, 3).reshape(b * v, 1, n, 2)
    sampled = F.grid_sample(heatmaps.reshape(b * v, 1, s, s), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    return sampled.view(b, v, n).mean(1)


def soft_fuse_heatmaps(heatmaps: Tensor) -> Tensor:
    """Differentiable decode: each view's expected (u, v) gives two cube coordinates; every cube axis is seen by two
    views and the two estimates are averaged. Returns cube points (B, 3)."""
    _check_heatmaps(heatmaps)
    b, _, s, _ = heatmaps.shape
    idx = torch.arange(s, dtype=heatmaps.dtype, device=heatmaps.device)
    eu = (heatmaps.sum(2) * idx).sum(-1)  # (B, V): expected column
    ev = (heatmaps.sum(3) * idx).sum(-1)  # (B, V): expected row
    total = torch.zeros(b, 3, dtype=heatmaps.dtype, device=heatmaps.device)
    count = [0, 0, 0]
    for k, (ia, sa, ib, sb) in enumerate(view_axes()):
        a = (eu[:, k] + 0.5) * 2.0 / s - 1.0
        bb = 1.0 - (ev[:, k] + 0.5) * 2.0 / s
        total = total.index_add(1, torch.tensor([ia, ib], device=heatmaps.device), torch.stack([sa * a, sb * bb], 1))
        count[ia] += 1
        count[ib] += 1
    return total / total.new_tensor(count)


def gaussian_targets(points: Tensor, image_size: int, sigma: float = 1.5, cutoff: float = 3.0) -> Tensor:
    """Per-view Gaussian target maps (B, 3, S, S) for cube points (B, 3): σ in pixels, zero beyond ``cutoff``·σ,
    each view normalised to sum 1. A projection outside the image is clamped onto the border first."""
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != 3 or not points.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape (B, 3), got {getattr(points, 'shape', points)}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    if not (cutoff > 0):
        raise ValueError(f"cutoff must be positive, got {cutoff!r}")
    if not torch.isfinite(points).all():
        raise ValueError("points must be finite")
    s = image_size
    uv = project(points, s)[..., :2].clamp(-0.5, s - 0.5)  # (B, V, 2)
    idx = torch.arange(s, dtype=points.dtype, device=points.device)
    du2 = (idx.view(1, 1, 1, s) - uv[..., 0, None, None]) ** 2
    dv2 = (idx.view(1, 1, s, 1) - uv[..., 1, None, None]) ** 2
    d2 = du2 + dv2  # (B, V, S, S)
    g = torch.exp(-d2 / (2 * sigma * sigma))
    g = torch.where(d2 <= (cutoff * sigma) ** 2, g, torch.zeros_like(g))
    return g / g.sum(dim=(2, 3), keepdim=True)


def points_in_views(points: Tensor, image_size: int) -> Tensor:
    """Bool (B, V): whether each cube point projects inside each view (useful to mask zoomed targets)."""
    return in_image(project(points, image_size), image_size)


# --------------------------------------------------------------------------- 2D grounding (single images, boxes)
# Image coordinates of detection data are *normalised*: (x, y) in [0, 1], origin at the image's top-left corner, x
# to the right, y down. In pixels of an S-pixel square image, pixel centres sit at integers (as in ``project``):
# u = x·S − 0.5, v = y·S − 0.5.


def _check_boxes(boxes: Tensor, valid: Tensor) -> None:
    if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
        raise ValueError(f"boxes must be a float tensor of shape (B, K, 4), got {getattr(boxes, 'shape', boxes)}")
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.shape != boxes.shape[:2]:
        raise ValueError(f"valid must be a bool tensor of shape {tuple(boxes.shape[:2])}, got "
                         f"{getattr(valid, 'shape', valid)}")
    if not bool(valid.any(-1).all()):
        raise ValueError("every sample needs at least one valid box")
    if not bool(torch.isfinite(boxes[valid]).all()):
        raise ValueError("boxes must be finite")


def box_centres_px(boxes: Tensor, image_size: int) -> Tensor:
    """Normalised boxes (..., 4) as (x1, y1, x2, y2) → their centres (..., 2) as continuous pixel (u, v)."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    return centre * image_size - 0.5


def box_centre_targets(boxes: Tensor, valid: Tensor, image_size: int, sigma: float = 2.0,
                       cutoff: float = 3.0) -> Tensor:
    """2D grounding target maps (B, S, S), summing to 1, for normalised boxes (B, K, 4) (x1, y1, x2, y2) of which
    ``valid`` (B, K) are real (the rest is padding).

    Each box gets a Gaussian of ``sigma`` pixels at its centre, zero beyond ``cutoff``·σ and normalised to sum 1
    (a centre outside the image is clamped onto the border first, as in :func:`gaussian_targets`). Several boxes are
    merged as the reference merges them: at each pixel, the mean over the boxes whose support covers that pixel,
    and then the map is normalised to sum 1 — so k disjoint boxes share the mass equally, and where supports overlap
    the map is their average rather than their sum. Memory is B·K·S² values: build the maps of large images per sample.
    """
    _check_boxes(boxes, valid)
    if not (sigma > 0 and math.isfinite(sigma) and cutoff > 0 and math.isfinite(cutoff)):
        raise ValueError(f"sigma and cutoff must be positive, got {sigma!r}, {cutoff!r}")
    if sigma * cutoff < 1.0:
        # The support must reach the pixel nearest to any centre (at most 0.71 px away), or a map could be empty.
        raise ValueError(f"sigma * cutoff must be >= 1 pixel, got {sigma * cutoff}")
    s = image_size
    uv = box_centres_px(boxes, s).clamp(-0.5, s - 0.5)  # (B, K, 2)
    idx = torch.arange(s, dtype=boxes.dtype, device=boxes.device)
    du2 = (idx.view(1, 1, 1, s) - uv[..., 0, None, None]) ** 2  # (B, K, 1, S)
    dv2 = (idx.view(1, 1, s, 1) - uv[..., 1, None, None]) ** 2  # (B, K, S, 1)
    d2 = du2 + dv2
    inside = (d2 <= (cutoff * sigma) ** 2) & valid[..., None, None]
    g = torch.where(inside, torch.exp(-d2 / (2 * sigma * sigma)), torch.zeros((), dtype=boxes.dtype,
                                                                                device=boxes.device))
    g = g / g.sum((2, 3), keepdim=True).clamp_min(torch.finfo(boxes.dtype).tiny)
    merged = g.sum(1) / inside.sum(1).clamp_min(1)
    return merged / merged.sum((1, 2), keepdim=True)


def box_grounding(heatmaps: Tensor, boxes: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """Score 2D heatmaps or logits (B, S, S) against normalised boxes (B, K, 4) / ``valid`` (B, K).

    The prediction is the arg-max pixel (the first in row-major order on ties). Returns ``peak`` (B, 2) as integer
    pixel (u, v); ``inside`` (B,) whether that pixel's centre lies inside any valid box (edges included);
    ``distance_px`` (B,) from it to the nearest valid box centre, in pixels of this map.
    """
    _check_boxes(boxes, valid)
    if not isinstance(heatmaps, Tensor) or heatmaps.ndim != 3 or heatmaps.shape[1] != heatmaps.shape[2]:
        raise ValueError(f"heatmaps must have shape (B, S, S), got {getattr(heatmaps, 'shape', heatmaps)}")
    if heatmaps.shape[0] != boxes.shape[0]:
        raise ValueError(f"heatmaps ({heatmaps.shape[0]}) and boxes ({boxes.shape[0]}) differ in batch size")
    s = heatmaps.shape[-1]
    flat = heatmaps.flatten(1).argmax(-1)
    peak = torch.stack([flat % s, flat // s], -1)  # (B, 2) = (u, v)
    xy = (peak.to(boxes.dtype) + 0.5) / s  # the peak pixel's centre, normalised
    within = ((xy[:, None] >= boxes[..., :2]) & (xy[:, None] <= boxes[..., 2:])).all(-1) & valid
    d = (box_centres_px(boxes, s) - peak[:, None].to(boxes.dtype)).norm(dim=-1)
    d = d.masked_fill(~valid, math.inf).amin(-1)
    return {"peak": peak, "inside": within.any(-1), "distance_px": d}
