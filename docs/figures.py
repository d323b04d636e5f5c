"""Makes docs/images/geometry.png: a synthetic table-top scene rendered into the three views, with the Gaussian target
heatmaps of one point blended in and the point marked. Run: ``python docs/figures.py``."""

from __future__ import annotations

from pathlib import Path

import torch

from rendering import REFERENCE_BOUNDS, gaussian_targets, render, world_to_cube
from rendering.viz import save_views


def box(lo, hi, colour, n, g):
    lo, hi = torch.tensor(lo), torch.tensor(hi)
    p = lo + (hi - lo) * torch.rand(n, 3, generator=g)
    return p, torch.tensor(colour).expand(n, 3)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    parts = [
        box((-0.3, -0.5, 0.74), (0.7, 0.5, 0.76), (0.55, 0.45, 0.35), 60_000, g),  # table top
        box((0.05, -0.25, 0.76), (0.15, -0.15, 0.86), (0.9, 0.1, 0.1), 8_000, g),  # red block
        box((0.25, 0.1, 0.76), (0.33, 0.18, 0.84), (0.1, 0.3, 0.9), 8_000, g),  # blue block
        box((0.3, -0.3, 0.76), (0.4, -0.2, 1.1), (0.1, 0.8, 0.2), 12_000, g),  # green pillar
    ]
    world = torch.cat([p for p, _ in parts])
    colours = torch.cat([c for _, c in parts]).float()
    cube = world_to_cube(world, REFERENCE_BOUNDS)
    out = render(cube[None], colours[None], image_size=224)
    target = world_to_cube(torch.tensor([[0.1, -0.2, 0.9]]), REFERENCE_BOUNDS)
    heat = gaussian_targets(target, 224, sigma=3.0)[0]
    path = Path(__file__).parent / "images" / "geometry.png"
    save_views(path, out.features[0], heat, target[0])
    print(path)


if __name__ == "__main__":
    main()
