"""Pictures of the three views: side by side, with an optional heatmap overlay and a marked point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from rendering.views import NUM_VIEWS, VIEW_NAMES, project


def _to_hwc_uint8(images: Tensor) -> np.ndarray:
    """(V, 3, H, W) or (V, H, W, 3) float in [0, 1] or uint8 → (V, H, W, 3) uint8."""
    x = images.detach().cpu()
    if x.ndim != 4 or x.shape[0] != NUM_VIEWS:
        raise ValueError(f"images must have shape ({NUM_VIEWS}, 3, H, W) or ({NUM_VIEWS}, H, W, 3), "
                         f"got {tuple(x.shape)}")
    if x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.permute(0, 2, 3, 1)
    if x.shape[-1] != 3:
        raise ValueError(f"images must have 3 colour channels, got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.numpy()


def _heat_colours(h: np.ndarray) -> np.ndarray:
    """(H, W) non-negative → (H, W, 3) float in [0, 1] with matplotlib's 'inferno' colour map."""
    from matplotlib import colormaps

    h = h / max(float(h.max()), 1e-12)
    return colormaps["inferno"](h)[..., :3]


def views_image(
    images: Tensor,
    heatmaps: Tensor | None = None,
    point: Tensor | None = None,
    alpha: float = 0.5,
    scale: int = 2,
    labels: bool = True,
) -> Image.Image:
    """Compose the three views left to right (top, front, side).

    ``heatmaps`` (V, H, W) are blended over the images; ``point`` (3,) in cube coordinates is marked with a cross in
    every view at its projection.
    """
    rgb = _to_hwc_uint8(images).astype(np.float32) / 255.0
    v, h, w, _ = rgb.shape
    if heatmaps is not None:
        hm = heatmaps.detach().float().cpu().numpy()
        if hm.shape != (v, h, w):
            raise ValueError(f"heatmaps must have shape {(v, h, w)}, got {hm.shape}")
        weight = alpha * (hm / np.maximum(hm.reshape(v, -1).max(1), 1e-12)[:, None, None])[..., None]
        rgb = np.stack([(1 - weight[k]) * rgb[k] + weight[k] * _heat_colours(hm[k]) for k in range(v)])
    strip = np.concatenate(list((rgb * 255).round().astype(np.uint8)), axis=1)
    img = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    if point is not None:
        if point.shape != (3,):
            raise ValueError(f"point must have shape (3,), got {tuple(point.shape)}")
        uvd = project(point.detach().double().cpu()[None], h)[0]
        for k in range(v):
            cx, cy = (uvd[k, 0].item() + 0.5 + k * w) * scale, (uvd[k, 1].item() + 0.5) * scale
            r = 4 * scale
            draw.line([(cx - r, cy), (cx + r, cy)], fill=(0, 255, 0), width=scale)
            draw.line([(cx, cy - r), (cx, cy + r)], fill=(0, 255, 0), width=scale)
    if labels:
        for k, name in enumerate(VIEW_NAMES):
            draw.text((k * w * scale + 4, 4), name, fill=(255, 255, 255))
    return img


def save_views(path: str | Path, images: Tensor, heatmaps: Tensor | None = None, point: Tensor | None = None,
               **kwargs) -> Path:
    """Write :func:`views_image` as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    views_image(images, heatmaps, point, **kwargs).save(path)
    return path
