"""Rigid transforms of clouds and poses (the SE(3) augmentation's geometry), batched, pure torch.

The augmentation moves a whole scene and its target keypose together: every point and the target position get
``p' = R (p - pivot) + pivot + t`` and the target orientation gets ``R · R_q``. Keeping this here (not in the
training code) means the one place that knows the frame conventions also owns how scenes are moved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rendering.rotation import matrix_to_quaternion, quaternion_to_matrix


def yaw_matrix(angle: Tensor) -> Tensor:
    """Rotations about the world +z axis by ``angle`` radians (...,) → (..., 3, 3), counter-clockwise seen from +z."""
    if not isinstance(angle, Tensor) or not angle.is_floating_point():
        raise ValueError(f"angle must be a float tensor, got {type(angle).__name__}")
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).reshape(*angle.shape, 3, 3)


def _check_rigid(rotation: Tensor, translation: Tensor, batch: int) -> None:
    if not isinstance(rotation, Tensor) or rotation.shape != (batch, 3, 3):
        raise ValueError(f"rotation must have shape ({batch}, 3, 3), got {getattr(rotation, 'shape', rotation)}")
    if not isinstance(translation, Tensor) or translation.shape != (batch, 3):
        raise ValueError(f"translation must have shape ({batch}, 3), got {getattr(translation, 'shape', translation)}")


def transform_points(points: Tensor, rotation: Tensor, translation: Tensor, pivot: Tensor | None = None) -> Tensor:
    """Apply ``p' = R (p - pivot) + pivot + t`` per batch element.

    points (B, N, 3) or (B, 3); rotation (B, 3, 3); translation (B, 3); pivot (B, 3) or None (the origin).
    """
    if not isinstance(points, Tensor) or points.ndim not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3) or (B, 3), got {getattr(points, 'shape', points)}")
    _check_rigid(rotation, translation, points.shape[0])
    if pivot is None:
        pivot = torch.zeros_like(translation)
    elif pivot.shape != translation.shape:
        raise ValueError(f"pivot must have shape {tuple(translation.shape)}, got {tuple(pivot.shape)}")
    single = points.ndim == 2
    p = points[:, None] if single else points
    r, t, c = rotation.to(p.dtype), translation.to(p.dtype)[:, None], pivot.to(p.dtype)[:, None]
    out = torch.einsum("bij,bnj->bni", r, p - c) + c + t
    return out[:, 0] if single else out


def rotate_quaternions(quaternion: Tensor, rotation: Tensor) -> Tensor:
    """Orientation after rotating the world by ``rotation``: quaternion of ``R · R_q`` (xyzw, w ≥ 0). (B, 4)."""
    if not isinstance(quaternion, Tensor) or quaternion.ndim != 2 or quaternion.shape[-1] != 4:
        raise ValueError(f"quaternion must have shape (B, 4), got {getattr(quaternion, 'shape', quaternion)}")
    if not isinstance(rotation, Tensor) or rotation.shape != (quaternion.shape[0], 3, 3):
        raise ValueError(f"rotation must have shape ({quaternion.shape[0]}, 3, 3), got "
                         f"{getattr(rotation, 'shape', rotation)}")
    m = rotation.to(quaternion.dtype) @ quaternion_to_matrix(quaternion)
    return matrix_to_quaternion(m)
