"""Pictures of every embedded task for docs/tasks.md: the four RGB-D cameras, and the merged point cloud rendered
into the policy's three orthographic views through ``rendering`` (with the first expert keypose marked); with
``--suites``, one task under every perturbation factor and the scenes of every generalisation level, all seen by
one camera.

    python -m benchmarks.embedded.gallery --out docs/images/tasks
    python -m benchmarks.embedded.gallery --suites --out docs/images/suites
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from benchmarks.embedded import perturbations as pert
from benchmarks.embedded.config import EmbeddedConfig
from benchmarks.embedded.env import EmbeddedEnv
from benchmarks.embedded.levels import LEVELS
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


# The suite pictures' camera: over the robot's left shoulder, it sees the table, the cabinets' fronts and the floor.
CAMERA = "left_shoulder"


def labelled_grid(images: list[np.ndarray], labels: list[str], columns: int) -> Image.Image:
    """Equal-sized RGB images in a grid, each with its label in a strip above it."""
    h, w = images[0].shape[:2]
    strip = 16
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * w, rows * (h + strip)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (img, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * w, (i // columns) * (h + strip)
        draw.text((x + 3, y + 2), label, fill="black")
        grid.paste(Image.fromarray(img), (x, y + strip))
    return grid


def suite_pictures(out: Path, task: str = "drag_stick", variation: int = 0, seed: int = 0, size: int = 256) -> None:
    """``perturbations_<task>.png``: ``task`` under every factor (same seed); ``levels.png``: one scene of each
    level; ``level_tasks.png``: every level task. One camera (``CAMERA``) throughout."""
    env = EmbeddedEnv(EmbeddedConfig(image_size=size, cameras=(CAMERA,)))
    cells = [f for f in pert.SUITE_FACTORS if pert.excluded(env._task_obj(task), f) is None]
    images = [env.reset(pert.cell_name(task, f), variation, seed).cameras[CAMERA].rgb for f in tqdm(cells)]
    labelled_grid(images, [pert.COLOSSEUM_NAMES[f] for f in cells], 4).save(out / f"perturbations_{task}.png")
    shown = {lv: names[0] if lv != "L2" else "lift_cylinder" for lv, names in LEVELS.items()}
    images = [env.reset(t, 0, seed).cameras[CAMERA].rgb for t in shown.values()]
    labelled_grid(images, [f"{lv}: {t}" for lv, t in shown.items()], 4).save(out / "levels.png")
    names = [t for lv in LEVELS for t in LEVELS[lv]]
    small = EmbeddedEnv(EmbeddedConfig(image_size=160, cameras=(CAMERA,)))
    images = [small.reset(t, 0, seed).cameras[CAMERA].rgb for t in tqdm(names)]
    labels = [f"{lv} {t}" for lv in LEVELS for t in LEVELS[lv]]
    labelled_grid(images, labels, 6).save(out / "level_tasks.png")
    env.close()
    small.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/images/tasks"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suites", action="store_true", help="the perturbation and level pictures instead")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.suites:
        suite_pictures(a.out, seed=a.seed)
        return
    env = EmbeddedEnv()
    for task in tqdm(env.tasks(), desc="tasks"):
        obs = env.reset(task, 0, a.seed)
        cameras_image(obs).save(a.out / f"{task}_cameras.png")
        first = torch.from_numpy(env.expert_keyposes()[0].position).float()
        save_views(a.out / f"{task}_views.png", cloud_views(obs), point=world_to_cube(first[None])[0])
    env.close()


if __name__ == "__main__":
    main()
