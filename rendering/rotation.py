"""Rotations: quaternions (xyzw) ⇄ matrices ⇄ extrinsic xyz Euler angles ⇄ discrete bins (72 per axis).

Extrinsic xyz (scipy's lowercase ``"xyz"``) means R = Rz(γ) · Ry(β) · Rx(α), the reference's convention for its
rotation classifiers. Quaternions are normalised and sign-fixed to w ≥ 0 before use, since q and −q are one rotation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(q: Tensor, last: int, name: str) -> None:
    if not isinstance(q, Tensor) or q.shape[-1:] != (last,) or not q.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (..., {last}), got {getattr(q, 'shape', q)}")


def normalize_quaternion(q: Tensor) -> Tensor:
    """Unit quaternion (xyzw) with w ≥ 0. Raises on zero or non-finite quaternions."""
    _check(q, 4, "quaternion")
    norm = q.norm(dim=-1, keepdim=True)
    if not bool(torch.isfinite(q).all()) or bool((norm < 1e-8).any()):
        raise ValueError("quaternion must be finite and non-zero")
    q = q / norm
    return torch.where(q[..., 3:4] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) xyzw → (..., 3, 3)."""
    x, y, z, w = normalize_quaternion(q).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*x.shape, 3, 3)


def matrix_to_quaternion(m: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices → (..., 4) xyzw with w ≥ 0 (Shepperd's method, vectorised over all branches)."""
    if not isinstance(m, Tensor) or m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {getattr(m, 'shape', m)}")
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate solutions, each stable when its leading term is the largest; pick per element.
    cands = torch.stack(
        [
            torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1],
                         1 + m00 + m11 + m22], -1),
            torch.stack([1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0],
                         m[..., 2, 1] - m[..., 1, 2]], -1),
            torch.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1],
                         m[..., 0, 2] - m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22,
                         m[..., 1, 0] - m[..., 0, 1]], -1),
        ],
        dim=-2,
    )
    lead = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = lead.argmax(-1, keepdim=True)
    q = torch.gather(cands, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    return normalize_quaternion(q)


def quaternion_to_euler(q: Tensor) -> Tensor:
    """(..., 4) xyzw → (..., 3) extrinsic xyz Euler angles in degrees; β in [−90, 90], α, γ in (−180, 180].

    At gimbal lock (|β| = 90°) only γ ∓ α is defined; α is set to 0."""
    r = quaternion_to_matrix(q)
    sb = (-r[..., 2, 0]).clamp(-1.0, 1.0)
    beta = torch.asin(sb)
    locked = sb.abs() > 1 - 1e-9
    alpha = torch.where(locked, torch.zeros_like(beta), torch.atan2(r[..., 2, 1], r[..., 2, 2]))
    gamma = torch.where(locked, torch.atan2(-r[..., 0, 1], r[..., 1, 1]), torch.atan2(r[..., 1, 0], r[..., 0, 0]))
    return torch.rad2deg(torch.stack([alpha, beta, gamma], -1))


def euler_to_quaternion(euler_deg: Tensor) -> Tensor:
    """(..., 3) extrinsic xyz Euler angles in degrees → (..., 4) xyzw with w ≥ 0."""
    _check(euler_deg, 3, "euler")
    a, b, g = torch.deg2rad(euler_deg).unbind(-1)
    ca, sa, cb, sb, cg, sg = a.cos(), a.sin(), b.cos(), b.sin(), g.cos(), g.sin()
    # R = Rz(g) Ry(b) Rx(a)
    m = torch.stack(
        [
            cg * cb, cg * sb * sa - sg * ca, cg * sb * ca + sg * sa,
            sg * cb, sg * sb * sa + cg * ca, sg * sb * ca - cg * sa,
            -sb, cb * sa, cb * ca,
        ],
        -1,
    ).reshape(*a.shape, 3, 3)
    return matrix_to_quaternion(m)


def quaternion_to_bins(q: Tensor, num_bins: int = 72) -> Tensor:
    """(..., 4) xyzw → (..., 3) long bins; bin i is the angle −180 + i·360/num_bins (nearest), 180° wraps to 0."""
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    res = 360.0 / num_bins
    e = quaternion_to_euler(q.double() if q.dtype != torch.float64 else q)
    return torch.floor((e + 180.0) / res + 0.5).long() % num_bins


def bins_to_euler(bins: Tensor, num_bins: int = 72) -> Tensor:
    """(..., 3) bins → (..., 3) Euler degrees at the bin centres."""
    if not isinstance(bins, Tensor) or bins.shape[-1:] != (3,) or bins.is_floating_point():
        raise ValueError(f"bins must be an integer tensor of shape (..., 3), got {getattr(bins, 'shape', bins)}")
    if bool(((bins < 0) | (bins >= num_bins)).any()):
        raise ValueError(f"bins must lie in [0, {num_bins})")
    return bins.double() * (360.0 / num_bins) - 180.0


def bins_to_quaternion(bins: Tensor, num_bins: int = 72) -> Tensor:
    """(..., 3) bins → (..., 4) xyzw (float64, w ≥ 0); the inverse of :func:`quaternion_to_bins` on bin centres
    with |β| < 90° (other bin triples describe rotations whose canonical Euler angles lie in other bins)."""
    return euler_to_quaternion(bins_to_euler(bins, num_bins))


def quaternion_angle(q1: Tensor, q2: Tensor) -> Tensor:
    """Geodesic angle in degrees between two rotations (..., 4) xyzw."""
    d = (normalize_quaternion(q1) * normalize_quaternion(q2)).sum(-1).abs().clamp(max=1.0)
    return torch.rad2deg(2 * torch.acos(d))




def rotation_6d_to_matrix(x: Tensor) -> Tensor:
    """(..., 6) → (..., 3, 3): the continuous 6D rotation representation (Zhou et al., CVPR 2019).

    The six numbers are two 3-vectors; Gram-Schmidt turns them into the first two columns of the matrix and their
    cross product is the third. Every 6-vector with two non-parallel halves maps to a proper rotation (det +1), and
    unlike Euler angles or quaternions the map has no discontinuity for a network to straddle.
    """
    if not isinstance(x, Tensor) or x.shape[-1:] != (6,) or not x.is_floating_point():
        raise ValueError(f"rotation_6d must be a float tensor of shape (..., 6), got {getattr(x, 'shape', x)}")
    a, b = x[..., :3], x[..., 3:]
    c1 = torch.nn.functional.normalize(a, dim=-1, eps=1e-8)
    c2 = torch.nn.functional.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1, eps=1e-8)
    c3 = torch.linalg.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], dim=-1)


def matrix_to_rotation_6d(m: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices → (..., 6): their first two columns (the inverse of ``rotation_6d_to_matrix``
    on rotation matrices)."""
    if not isinstance(m, Tensor) or m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {getattr(m, 'shape', m)}")
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)
