"""Rendering and decoding speed: ms for the three 224² views of {10k, 100k, 1M} points, and for the 224³ fusion decode.

Run: ``python -m benchmarks.speed.render`` (part of ``make bench``). Figures go to docs/PERFORMANCE.md.
``--baseline REV`` also times ``rendering/render.py`` as it was at git revision REV, interleaved with today's in the
same run (the ratio is the figure to trust on a shared machine), after checking that both give identical images.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.speed.common import devices, load_baseline, machine, time_interleaved_ms, time_ms
from rendering import Rendered, fuse_heatmaps, gaussian_targets, render, soft_fuse_heatmaps


def tabletop_cloud(n: int, generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A table-top-like cloud (1, n, 3): half the points on a thin slab, the rest uniform in the cube, so that
    occlusion is realistic; and random colours (1, n, 3)."""
    pts = torch.rand(1, n, 3, generator=generator) * 2 - 1
    pts[:, : n // 2, 2] = -0.5 + 0.01 * pts[:, : n // 2, 2]
    return pts.to(device), torch.rand(1, n, 3, generator=generator).to(device)


def same_images(a: Rendered, b: Rendered) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("valid", "index", "depth", "xyz", "features"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--baseline", default=None, help="git revision whose rendering/render.py to compare against")
    parser.add_argument("--no-decode", action="store_true", help="rendering rows only")
    args = parser.parse_args(argv)
    old = load_baseline(args.baseline, ["rendering.render"])["rendering.render"] if args.baseline else None
    print(f"machine: {machine()}")
    if old is None:
        print(f"| device | what | ms (median of {args.repeats}) |")
        print("|---|---|---|")
    else:
        print(f"| device | what | {args.baseline} ms | today ms | today / {args.baseline} | identical |")
        print("|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for dev in devices():
        for n in args.sizes:
            pts, feats = tabletop_cloud(n, g, dev)
            what = f"render 3 views, {n:,} points, {args.image_size}²"
            new_fn = lambda pts=pts, feats=feats: render(pts, feats, image_size=args.image_size)  # noqa: E731
            if old is None:
                print(f"| {dev} | {what} | {time_ms(new_fn, dev, repeats=args.repeats):.1f} |", flush=True)
                continue
            old_fn = lambda pts=pts, feats=feats: old.render(pts, feats, image_size=args.image_size)  # noqa: E731
            same = same_images(new_fn(), old_fn())
            ms = time_interleaved_ms({"old": old_fn, "new": new_fn}, dev, repeats=args.repeats)
            print(f"| {dev} | {what} | {ms['old']:.1f} | {ms['new']:.1f} | {ms['new'] / ms['old']:.2f} | "
                  f"{'yes' if same else 'NO'} |", flush=True)
        if args.no_decode:
            continue
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
