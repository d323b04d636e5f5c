"""A PNG grid of predictions for a quick look: each tile an image with its predicted heatmap blended over it, the
ground-truth boxes (or target point), the predicted peak (green inside a box / on target, red otherwise) and the
prompt underneath."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from benchmarks.fileio import atomic_write_bytes

GREEN, RED, BOX = (40, 220, 60), (235, 40, 40), (255, 255, 255)
CAPTION_LINES = 3


def prediction_grid(
    images: Tensor,
    probs: Tensor,
    captions: Sequence[str],
    peaks: Tensor,
    hits: Tensor,
    boxes: Tensor | None = None,
    valid: Tensor | None = None,
    targets: Tensor | None = None,
    columns: int = 4,
    tile: int = 192,
    alpha: float = 0.55,
) -> Image.Image:
    """``images`` (N, 3, S, S) float [0, 1] or uint8; ``probs`` (N, S, S) heatmaps; ``peaks`` (N, 2) pixel (u, v);
    ``hits`` (N,) bool; either ``boxes`` (N, K, 4) normalised xyxy with ``valid`` (N, K), or ``targets`` (N, 2)
    continuous pixel (u, v) of the true point."""
    from matplotlib import colormaps

    n, _, s, _ = images.shape
    if n == 0:
        raise ValueError("prediction_grid needs at least one image")
    if probs.shape != (n, s, s) or peaks.shape != (n, 2) or hits.shape != (n,) or len(captions) != n:
        raise ValueError(f"probs {tuple(probs.shape)}, peaks {tuple(peaks.shape)}, hits {tuple(hits.shape)} and "
                         f"{len(captions)} captions do not match {n} images of {s} px")
    rgb = images.detach().cpu()
    rgb = (rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    heat = probs.detach().float().cpu().numpy()
    heat = heat / np.maximum(heat.reshape(n, -1).max(1), 1e-12)[:, None, None]
    blended = (1 - alpha * heat[..., None]) * rgb + alpha * heat[..., None] * colormaps["inferno"](heat)[..., :3]
    columns = min(columns, n)
    rows = -(-n // columns)
    caption_h = 12 * CAPTION_LINES + 4
    canvas = Image.new("RGB", (columns * tile, rows * (tile + caption_h)), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    scale = tile / s
    for i in range(n):
        x0, y0 = (i % columns) * tile, (i // columns) * (tile + caption_h)
        canvas.paste(Image.fromarray((blended[i] * 255).round().astype(np.uint8)).resize((tile, tile), Image.NEAREST),
                     (x0, y0))
        if boxes is not None and valid is not None:
            for box in boxes[i][valid[i]].tolist():
                draw.rectangle([x0 + box[0] * tile, y0 + box[1] * tile, x0 + box[2] * tile, y0 + box[3] * tile],
                               outline=BOX, width=2)
        if targets is not None:
            tu, tv = ((targets[i].float() + 0.5) * scale).tolist()
            draw.ellipse([x0 + tu - 6, y0 + tv - 6, x0 + tu + 6, y0 + tv + 6], outline=BOX, width=2)
        pu, pv = ((peaks[i].float() + 0.5) * scale).tolist()
        colour, r = (GREEN if bool(hits[i]) else RED), 7
        draw.line([(x0 + pu - r, y0 + pv), (x0 + pu + r, y0 + pv)], fill=colour, width=3)
        draw.line([(x0 + pu, y0 + pv - r), (x0 + pu, y0 + pv + r)], fill=colour, width=3)
        lines = textwrap.wrap(captions[i], width=max(8, tile // 6))[:CAPTION_LINES]
        for j, line in enumerate(lines):
            draw.text((x0 + 3, y0 + tile + 2 + 12 * j), line, fill=(230, 230, 230))
    return canvas


def save_prediction_grid(path: str | Path, *args, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    prediction_grid(*args, **kwargs).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
