"""The three orthographic views and the exact maps between cube points and (u, v, depth) per view.

Each view is an orthonormal signed permutation ``A`` with ``(a, b, depth - 1) = A @ p``: ``a`` is the horizontal
image axis, ``b`` the vertical (up) one, and ``depth`` the distance from the cube face on the camera's side.
docs/geometry.md has the table and a picture.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rendering.checks import device_constant

VIEW_NAMES: tuple[str, ...] = ("top", "front", "side")
NUM_VIEWS = len(VIEW_NAMES)

# Rows: image right (a), image up (b), view direction (forward, from the eye into the scene).
# top:   eye +z, up +y -> right = forward x up = (-z) x y = +x
# front: eye +x, up +z -> right = (-x) x z = +y
# side:  eye +y, up +z -> right = (-y) x z = -x
_VIEW_MATRICES = (
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (-1.0, 0.0, 0.0)),
    ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
)


def view_matrices(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """(3 views, 3, 3): row 0 gives image-right ``a``, row 1 image-up ``b``, row 2 the viewing direction. A copy of
    a per-device constant (no host-to-device transfer after the first call)."""
    return device_constant(_VIEW_MATRICES, dtype, device).clone()


def view_axes() -> list[tuple[int, float, int, float]]:
    """Per view ``(axis_a, sign_a, axis_b, sign_b)``: which cube axis (and sign) the image's horizontal and vertical
    coordinates follow. Used where the views' axis alignment makes things separable (heatmap fusion)."""
    out = []
    for m in _VIEW_MATRICES:
        ia = max(range(3), key=lambda j: abs(m[0][j]))
        ib = max(range(3), key=lambda j: abs(m[1][j]))
        out.append((ia, m[0][ia], ib, m[1][ib]))
    return out


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")


def project(points: Tensor, image_size: int) -> Tensor:
    """Cube points (..., 3) → (..., 3 views, 3) continuous ``(u, v, depth)``.

    ``u`` is the column and ``v`` the row coordinate with pixel centres at integers; the image spans [-1, 1] on both
    axes, so ``u = (a + 1) * S / 2 - 0.5`` and ``v = (1 - b) * S / 2 - 0.5``.
    """
    if not isinstance(points, Tensor) or points.shape[-1:] != (3,) or not points.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape (..., 3), got {getattr(points, 'shape', points)}")
    _check_size(image_size)
    abd = torch.einsum("kij,...j->...ki", view_matrices(points.dtype, points.device), points)
    half = image_size / 2.0
    u = (abd[..., 0] + 1.0) * half - 0.5
    v = (1.0 - abd[..., 1]) * half - 0.5
    depth = abd[..., 2] + 1.0
    return torch.stack([u, v, depth], dim=-1)


def lift(uvd: Tensor, image_size: int) -> Tensor:
    """(..., 3 views, 3) ``(u, v, depth)`` → (..., 3 views, 3) cube points; exact inverse of :func:`project`."""
    if not isinstance(uvd, Tensor) or uvd.shape[-2:] != (NUM_VIEWS, 3) or not uvd.is_floating_point():
        raise ValueError(f"uvd must be a float tensor of shape (..., {NUM_VIEWS}, 3), got {getattr(uvd, 'shape', uvd)}")
    _check_size(image_size)
    half = image_size / 2.0
    a = (uvd[..., 0] + 0.5) / half - 1.0
    b = 1.0 - (uvd[..., 1] + 0.5) / half
    f = uvd[..., 2] - 1.0
    abd = torch.stack([a, b, f], dim=-1)
    # The view matrices are orthonormal, so the inverse is the transpose.
    return torch.einsum("kij,...ki->...kj", view_matrices(uvd.dtype, uvd.device), abd)


def pixel_index(uv: Tensor, image_size: int) -> Tensor:
    """Continuous pixel coordinates (..., 2) → integer pixel (..., 2) (round half up), clamped into the image.

    Clamping only matters for points on the cube's far faces (a = 1 maps to u = S - 0.5)."""
    _check_size(image_size)
    return torch.floor(uv + 0.5).long().clamp_(0, image_size - 1)


def in_image(uvd: Tensor, image_size: int) -> Tensor:
    """Bool (...,): whether continuous (u, v) falls inside the image (the cube's [-1, 1] extent, inclusive)."""
    _check_size(image_size)
    lo, hi = -0.5, image_size - 0.5
    u, v = uvd[..., 0], uvd[..., 1]
    return (u >= lo) & (u <= hi) & (v >= lo) & (v <= hi)
