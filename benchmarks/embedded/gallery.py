"""Pictures of every embedded task for docs/tasks.md: the four RGB-D cameras, and the merged point cloud rendered
into the policy's three orthographic views through ``rendering`` (with the first expert keypose marked).

    python -m benchmarks.embedded.gallery --out docs/images/tasks
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from benchmarks.embedded.env import EmbeddedEnv
from benchmarks.protocol import Observation
from rendering import REFERENCE_BOUNDS, crop_to_bounds, render, world_to_cube
from rendering.viz import save_views


def cameras_image(obs: Observation) -> Image.Image:
    """RGB on top, depth (near bright, no return black) below, one column per camera."""
    cols = []
    for frame in obs.cameras.values():
        d = frame.depth
        valid = d > 0
        lo, hi = (float(d[valid].min()), float(d[valid].max())) if valid.any() else (0.0, 1.0)
        grey = np.where(valid, 1.0 - (d - lo) / max(hi - lo, 1e-6), 0.0)
        depth_rgb = (np.repeat(grey[..., None], 3, axis=-1) * 255).astype(np.uint8)
        cols.append(np.concatenate([frame.rgb, depth_rgb], axis=0))
    return Image.fromarray(np.concatenate(cols, axis=1))


def cloud_views(obs: Observation, image_size: int = 224) -> torch.Tensor:
    """The merged cloud, cropped to the reference bounds, rendered into the three views (3, 3, S, S) in [0, 1]."""
    points, colours = obs.point_cloud()
    pts = torch.from_numpy(points)
    keep = crop_to_bounds(pts, REFERENCE_BOUNDS)
    cube = world_to_cube(pts[keep], REFERENCE_BOUNDS)
    feats = torch.from_numpy(colours[keep.numpy()]).float() / 255.0
    return render(cube[None], feats[None], image_size=image_size).features[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/images/tasks"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    env = EmbeddedEnv()
    for task in tqdm(env.tasks(), desc="tasks"):
        obs = env.reset(task, 0, a.seed)
        cameras_image(obs).save(a.out / f"{task}_cameras.png")
        first = torch.from_numpy(env.expert_keyposes()[0].position).float()
        save_views(a.out / f"{task}_views.png", cloud_views(obs), point=world_to_cube(first[None])[0])
    env.close()


if __name__ == "__main__":
    main()
