"""Rendering and decoding speed: ms for the three 224² views of {10k, 100k, 1M} points, and for the 224³ fusion decode.

Run: ``python -m benchmarks.speed.render`` (part of ``make bench``). Figures go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.speed.common import devices, machine, time_ms
from rendering import fuse_heatmaps, gaussian_targets, render, soft_fuse_heatmaps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"| device | what | ms (median of {args.repeats}) |")
    print("|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for dev in devices():
        for n in args.sizes:
            # A table-top-like cloud: a dense slab plus objects, not a uniform cube, so that occlusion is realistic.
            pts = (torch.rand(1, n, 3, generator=g) * 2 - 1).to(dev)
            pts[:, : n // 2, 2] = -0.5 + 0.01 * pts[:, : n // 2, 2]
            feats = torch.rand(1, n, 3, generator=g).to(dev)
            ms = time_ms(lambda pts=pts, feats=feats: render(pts, feats, image_size=args.image_size), dev,
                         repeats=args.repeats)
            print(f"| {dev} | render 3 views, {n:,} points, {args.image_size}² | {ms:.1f} |", flush=True)
        target = torch.tensor([[0.1, -0.3, 0.5]], device=dev)
        heat = gaussian_targets(target, args.image_size)
        ms = time_ms(lambda heat=heat: fuse_heatmaps(heat, grid_res=args.image_size), dev, repeats=args.repeats)
        print(f"| {dev} | fusion decode, grid {args.image_size}³, peaked heatmaps | {ms:.1f} |")
        flat = torch.full_like(heat, 1.0 / args.image_size**2)
        ms = time_ms(lambda flat=flat: fuse_heatmaps(flat, grid_res=args.image_size), dev, repeats=3)
        print(f"| {dev} | fusion decode, grid {args.image_size}³, uniform heatmaps (worst case) | {ms:.1f} |")
        ms = time_ms(lambda heat=heat: soft_fuse_heatmaps(heat), dev, repeats=args.repeats)
        print(f"| {dev} | soft-argmax decode | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
