"""Colour-permutation augmentation: recolour the named colours of a scene and its instruction together.

Ten demos of a task whose objects are told apart by colour show each colour in few places: slide_block's ten demos
show each pad colour on each side of the block about once, so a policy can fit them by layout without reading the
colour word (docs/training.md measured exactly that: the first keypose's side is uniform over the four pads). Drawing
a permutation of the palette per sample and applying it to both the cloud's coloured points and the colour words of
the instruction keeps every sample a correct demonstration — the action does not change, only which names the
objects have — and shows every colour in every place.

How a point is recognised: by hue, among the configured colours, and only when it is saturated. Lighting scales a
flat colour and adds a little white, and overexposure clips channels, so the rendered RGB of a palette colour keeps
its hue (within ~10°) but not its values; the table, wood, metal and floor of the embedded scenes are far less
saturated (≤ 0.60, against ≥ 0.69 for rendered palette colours: measured on the demo's clouds, docs/training.md).
A recognised point's RGB is modelled as ``k · albedo + a`` (shading k, white offset a; least squares over the three
channels) and re-rendered with the new colour's albedo, so shading survives the swap.

All tensor code on the batch's device; the only Python loop is over the batch's instruction strings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


def _embedded_palette() -> dict[str, tuple[float, float, float]]:
    from benchmarks.embedded.palette import COLOURS

    return dict(COLOURS)


# A channel at or above this is taken as clipped by overexposure (camera images are 8-bit: 1.0 = 255/255).
_CLIPPED = 0.99
# Two permuted colours closer in hue than this cannot be told apart on a lit point (red and maroon are both 0°).
MIN_HUE_GAP = 10.0


@dataclass
class RecolourConfig:
    # Share of samples recoloured (0 = off). The rest keep the demo's own colours, which are what the tests show.
    probability: float = 0.0
    # The colour words permuted among each other; their albedo RGB comes from ``rgb`` or, for names it does not
    # list, from the embedded benchmark's palette (benchmarks/embedded/palette.py).
    colours: list[str] = field(default_factory=list)
    rgb: dict[str, list[float]] = field(default_factory=dict)
    # A point belongs to a colour when its HSV saturation is at least this and that colour's albedo explains its RGB
    # best, with a relative squared residual of at most max_residual (colour_classes).
    min_saturation: float = 0.66
    max_residual: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"augment.recolour.probability must lie in [0, 1], got {self.probability}")
        if not 0.0 < self.min_saturation <= 1.0:
            raise ValueError(f"augment.recolour.min_saturation must lie in (0, 1], got {self.min_saturation}")
        if not 0.0 < self.max_residual <= 1.0:
            raise ValueError(f"augment.recolour.max_residual must lie in (0, 1], got {self.max_residual}")
        for name, value in self.rgb.items():
            if len(value) != 3 or not all(0.0 <= float(v) <= 1.0 for v in value):
                raise ValueError(f"augment.recolour.rgb.{name} must be three numbers in [0, 1], got {value}")
        if self.probability > 0:
            if len(self.colours) < 2:
                raise ValueError("augment.recolour.colours must name at least two colours to permute, got "
                                 f"{self.colours}")
            if len(set(self.colours)) != len(self.colours):
                raise ValueError(f"augment.recolour.colours lists a colour twice: {self.colours}")
            self.albedos()  # unknown names are a config error now, not at the first training step
            hues = _hue(torch.tensor(self.albedos()))[0]
            gap = _hue_distance(hues[:, None], hues[None, :]) + 360.0 * torch.eye(len(hues))
            if float(gap.min()) < MIN_HUE_GAP:
                i, j = divmod(int(gap.argmin()), len(hues))
                raise ValueError(f"augment.recolour.colours: {self.colours[i]!r} and {self.colours[j]!r} have hues "
                                 f"{float(gap.min()):.0f}° apart; points of one would be taken for the other")

    def albedos(self) -> list[list[float]]:
        palette = _embedded_palette()
        out = []
        for name in self.colours:
            if name in self.rgb:
                out.append([float(v) for v in self.rgb[name]])
            elif name in palette:
                out.append(list(palette[name]))
            else:
                raise ValueError(f"augment.recolour.colours: no RGB for {name!r}; give it in augment.recolour.rgb "
                                 f"or use a palette colour ({sorted(palette)})")
        return out


def _hue(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """HSV hue (degrees in [0, 360)) and saturation of RGB in [0, 1], any leading shape."""
    mx, argmx = rgb.max(-1)
    mn = rgb.min(-1).values
    delta = mx - mn
    sat = torch.where(mx > 0, delta / mx.clamp_min(1e-6), torch.zeros_like(mx))
    r, g, b = rgb.unbind(-1)
    d = delta.clamp_min(1e-6)
    h = torch.where(argmx == 0, torch.remainder((g - b) / d, 6.0),
                    torch.where(argmx == 1, (b - r) / d + 2.0, (r - g) / d + 4.0)) * 60.0
    return torch.remainder(h, 360.0), sat


def _hue_distance(a: Tensor, b: Tensor) -> Tensor:
    d = torch.remainder(a - b, 360.0)
    return torch.minimum(d, 360.0 - d)


def colour_classes(colors: Tensor, albedos: Tensor, min_saturation: float, max_residual: float) -> Tensor:
    """Index of the palette colour each point shows ((..., 3) RGB → (...) long), -1 for points of no palette
    colour. A point is a candidate when saturated; its colour is the albedo that best explains it as
    ``clip(k · albedo)``: k is fitted on the unclipped channels, a clipped channel only asks ``k · albedo ≥ 1``.
    Hue alone is not enough: overexposure clips the largest channel, which moves a lit orange top face (1, .72, .08)
    to 42°, nearer yellow's 53° than orange's 28°, while orange explains it exactly (k = 1.44)."""
    sat = _hue(colors)[1]
    y = colors[..., None, :]  # (..., 1, 3)
    open_ = (y < _CLIPPED).to(colors.dtype)  # unclipped channels
    k = (y * albedos * open_).sum(-1) / (albedos * albedos * open_).sum(-1).clamp_min(1e-6)  # (..., C)
    pred = k[..., None] * albedos
    miss = torch.where(open_ > 0, pred - y, (1.0 - pred).clamp_min(0.0))
    residual = (miss * miss).sum(-1) / (y * y).sum(-1).clamp_min(1e-6)  # relative, (..., C)
    best, cls = residual.min(-1)
    keep = (sat >= min_saturation) & (best <= max_residual)
    return torch.where(keep, cls, torch.full_like(cls, -1))


def reshade(colors: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """Re-render points of albedo ``old`` with albedo ``new`` (all (..., 3)): fit ``colors ≈ k·old + a`` per point
    (least squares over the channels, k ≥ 0) and return ``clip(k·new + a)``."""
    oc = old - old.mean(-1, keepdim=True)
    yc = colors - colors.mean(-1, keepdim=True)
    k = ((yc * oc).sum(-1) / (oc * oc).sum(-1).clamp_min(1e-6)).clamp_min(0.0)
    a = colors.mean(-1) - k * old.mean(-1)
    return (k[..., None] * new + a[..., None]).clamp(0.0, 1.0)


def _rename(text: str, mapping: dict[str, str], pattern: re.Pattern[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        word = m.group(0)
        out = mapping[word.lower()]
        return out.capitalize() if word[0].isupper() else out

    return pattern.sub(sub, text)


def recolour_batch(batch: Any, cfg: RecolourConfig, generator: torch.Generator | None = None) -> Any:
    """Recolour a share ``cfg.probability`` of a ``PolicyBatch``'s samples (see module doc): one random permutation
    of ``cfg.colours`` per sample, applied to its points' colours and its instruction's colour words."""
    if cfg.probability <= 0:
        return batch
    colors = batch.colors
    b, dev = colors.shape[0], colors.device
    albedo = torch.tensor(cfg.albedos(), device=dev, dtype=colors.dtype)  # (C, 3)
    c = albedo.shape[0]
    applied = torch.rand(b, generator=generator, device=dev) < cfg.probability
    perm = torch.argsort(torch.rand(b, c, generator=generator, device=dev), dim=-1)
    perm = torch.where(applied[:, None], perm, torch.arange(c, device=dev).expand(b, c))
    # Only saturated points of recoloured samples can change (~1 in 10 of a tabletop cloud): classify just those.
    mx, mn = colors.max(-1).values, colors.min(-1).values
    sample, point = (applied[:, None] & (mx - mn >= cfg.min_saturation * mx) & (mx > 0)).nonzero(as_tuple=True)
    y = colors[sample, point]  # (M, 3)
    cls = colour_classes(y, albedo, cfg.min_saturation, cfg.max_residual)
    safe = cls.clamp_min(0)
    target = perm[sample, safe]  # the colour each candidate point becomes
    moved = (cls >= 0) & (target != safe)  # a colour the permutation keeps stays bit-identical
    new_colors = colors.clone()
    new_colors[sample, point] = torch.where(moved[:, None], reshade(y, albedo[safe], albedo[target]), y)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in cfg.colours) + r")\b", re.IGNORECASE)
    names = [n.lower() for n in cfg.colours]
    perm_rows = perm.tolist()
    instructions = [
        _rename(text, {names[i]: names[j] for i, j in enumerate(perm_rows[s])}, pattern) if bool(applied[s]) else text
        for s, text in enumerate(batch.instructions)
    ]
    return dataclasses.replace(batch, colors=new_colors, instructions=instructions)


def marker_colour_clash(cfg: RecolourConfig) -> list[str]:
    """The permuted colours that would take the memory markers' points (``rendering.markers``: pure cyan = open,
    magenta = closed, at the brightnesses they are drawn with) for their own: permuting those would change what a
    marker means."""
    from rendering.markers import CLOSED_RGB, OPEN_RGB

    shades = torch.linspace(0.3, 1.0, 8)[:, None]
    markers = torch.cat([shades * torch.tensor(OPEN_RGB), shades * torch.tensor(CLOSED_RGB)])
    cls = colour_classes(markers, torch.tensor(cfg.albedos()), cfg.min_saturation, cfg.max_residual)
    return sorted({cfg.colours[int(c)] for c in cls if c >= 0})


__all__ = ["RecolourConfig", "colour_classes", "marker_colour_clash", "recolour_batch", "reshade"]
