"""RLBench/PerAct episode folders ⇄ our :class:`~benchmarks.dataset.Episode` (docs/dataset.md, REFERENCE §2).

RLBench layout: ``<root>/<task>/all_variations/episodes/episode<N>/`` with ``<cam>_rgb/<i>.png``,
``<cam>_depth/<i>.png`` (one per sim step), ``low_dim_obs.pkl``, ``variation_number.pkl`` and
``variation_descriptions.pkl``. Conventions we convert:

- depth PNGs are 24-bit integers ``R·65536 + G·256 + B`` over 2²⁴−1, a fraction between the camera's near and far
  planes (``misc['<cam>_camera_near'/'_far']``). A saturated pixel (exactly the far plane) is "no return" for us.
- intrinsics have negative focal lengths. Flipping the sign of a focal length flips that camera axis, so our
  positive-focal camera is theirs with its x and y axes negated: ``E_ours = E_rlbench · diag(sx, sy, 1, 1)``,
  ``sx, sy`` the signs of their focal lengths. Both give the same world point for every pixel.
- ``Observation.ignore_collisions`` is the flag of the waypoint being executed; a keypose takes its keyframe's own.

Export writes one image per tick as RLBench's loaders expect: ticks we recorded without images repeat the latest
earlier image (and its camera parameters) and are marked ``misc['bridgevla_repeated_image'] = True`` so that our
importer does not count them as real frames. No masks or point clouds are written (those fields are None).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.dataset import Episode, episode_dir, list_episodes, load_episode, save_episode
from benchmarks.keyframes import discover_keyframes
from benchmarks.protocol import CameraFrame, Keypose
from benchmarks.rlbench.pickles import (
    DemoRecord,
    ObservationRecord,
    RLBenchDemo,
    RLBenchObservation,
    dump_rlbench_pickle,
    load_rlbench_pickle,
)

RLBENCH_CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
DEPTH_SCALE = 2**24 - 1
LOW_DIM_PICKLE = "low_dim_obs.pkl"
VARIATION_NUMBER = "variation_number.pkl"
VARIATION_DESCRIPTIONS = "variation_descriptions.pkl"
REPEATED_FLAG = "bridgevla_repeated_image"
# Per-tick RLBench fields we carry through our format (as Episode.extra_lowdim["rlbench.<field>"]) when present.
CARRIED_FIELDS = ("ignore_collisions", "joint_forces", "gripper_joint_positions", "gripper_touch_forces",
                  "task_low_dim_state")


# ---------------------------------------------------------------------------------------------------- depth
def encode_depth_rgb24(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Metres -> (H, W, 3) uint8 24-bit fixed point of (d - near)/(far - near); no return -> saturated."""
    if not far > near:
        raise ValueError(f"far must be > near, got near={near}, far={far}")
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    frac = np.clip((np.where(valid, d, far) - near) / (far - near), 0.0, 1.0)
    n = np.where(valid, np.rint(frac * DEPTH_SCALE), DEPTH_SCALE).astype(np.uint32)
    n = np.where(valid & (n == DEPTH_SCALE), DEPTH_SCALE - 1, n)  # a real return never reads as "none"
    return np.stack([(n >> 16) & 255, (n >> 8) & 255, n & 255], axis=-1).astype(np.uint8)


def decode_depth_rgb24(rgb: np.ndarray, near: float, far: float) -> np.ndarray:
    """(H, W, 3) uint8 -> float32 metres; saturated pixels (the far plane: nothing hit) -> 0 = no return."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"rgb must be (H, W, 3), got {a.shape}")
    n = (a[..., 0].astype(np.int64) << 16) + (a[..., 1].astype(np.int64) << 8) + a[..., 2].astype(np.int64)
    metres = near + (n / DEPTH_SCALE) * (far - near)
    return np.where(n >= DEPTH_SCALE, 0.0, metres).astype(np.float32)


# ----------------------------------------------------------------------------------------------- cameras
def camera_from_rlbench(intrinsics: np.ndarray, extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RLBench (negative-focal) camera -> ours (positive focal), same world point for every pixel."""
    k = np.array(intrinsics, dtype=np.float64)
    e = np.array(extrinsics, dtype=np.float64)
    if k.shape != (3, 3) or e.shape != (4, 4):
        raise ValueError(f"intrinsics must be (3, 3) and extrinsics (4, 4), got {k.shape} and {e.shape}")
    signs = np.array([np.sign(k[0, 0]) or 1.0, np.sign(k[1, 1]) or 1.0, 1.0, 1.0])
    k[0, 0], k[1, 1] = abs(k[0, 0]), abs(k[1, 1])
    return k, e * signs[None, :]  # right-multiplying by diag(signs) scales the columns


def camera_to_rlbench(intrinsics: np.ndarray, extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our positive-focal camera -> RLBench's negative-focal convention (the exact inverse of the above)."""
    k = np.array(intrinsics, dtype=np.float64)
    e = np.array(extrinsics, dtype=np.float64)
    k[0, 0], k[1, 1] = -abs(k[0, 0]), -abs(k[1, 1])
    return k, e * np.array([-1.0, -1.0, 1.0, 1.0])[None, :]


# ------------------------------------------------------------------------------------------------ import
def _infer_names(folder: Path) -> tuple[str, int | None, int]:
    """(task, variation from the path or None, episode number) from ``<task>/<variations>/episodes/episode<N>``
    (``<variations>`` = ``all_variations`` or ``variation<V>``) or ``<task>/episodes/episode<N>`` (COLOSSEUM's
    RLBench-variations factor keeps no variation folder)."""
    m = re.fullmatch(r"episode(\d+)", folder.name)
    index = int(m.group(1)) if m else 0
    var_dir = folder.parent.parent
    vm = re.fullmatch(r"variation(\d+)", var_dir.name)
    if vm is None and var_dir.name != "all_variations":
        return var_dir.name, None, index
    return var_dir.parent.name, (int(vm.group(1)) if vm else None), index


def _stack_field(records: list[dict[str, Any]], name: str) -> np.ndarray | None:
    values = [r.get(name) for r in records]
    if any(v is None for v in values):
        return None
    arrays = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    if len({a.shape for a in arrays}) != 1:
        return None
    return np.stack(arrays)


def subsample_camera(rgb: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray, size: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an (H, W) RGB-D frame at ``size`` x ``size`` by keeping every ``H // size``-th pixel.

    RGB and depth keep the *same* source pixels, so colour and geometry stay aligned and the intrinsics stay exact
    (a pixel ``u'`` is source pixel ``s·u' + o``: ``f' = f / s``, ``c' = (c - o) / s``). Interpolating would blend
    depths across object edges into points that exist nowhere; RLBench's own loader resizes the 24-bit-encoded depth
    PNG with PIL, which interpolates the encoded bytes. Only integer factors (e.g. 256 -> 128) are accepted.
    """
    h, w = depth.shape
    if h == size and w == size:
        return rgb, depth, intrinsics
    if size < 1 or h != w or h % size:
        raise ValueError(f"image_size {size} must divide the stored square images ({h}x{w}) by a whole factor")
    s = h // size
    o = s // 2  # the middle source pixel of each s x s block
    k = np.array(intrinsics, dtype=np.float64)
    k[0, 0], k[1, 1] = k[0, 0] / s, k[1, 1] / s
    k[0, 2], k[1, 2] = (k[0, 2] - o) / s, (k[1, 2] - o) / s
    return np.ascontiguousarray(rgb[o::s, o::s]), np.ascontiguousarray(depth[o::s, o::s]), k


def _descriptions(folder: Path, fallback: str) -> list[str]:
    """The episode's phrasings: its own ``variation_descriptions.pkl`` (RLBench, GemBench) or the one of its variation
    folder (COLOSSEUM writes it once per ``<task>_<idx>/variation0/``); the task name as a last resort."""
    for candidate in (folder / VARIATION_DESCRIPTIONS, folder.parent.parent / VARIATION_DESCRIPTIONS):
        if candidate.is_file():
            found = [str(d) for d in load_rlbench_pickle(candidate)]
            if found:
                return found
    return [fallback]


def import_rlbench_episode(
    folder: str | Path,
    *,
    task: str | None = None,
    cameras: Sequence[str] | None = None,
    image_every: int | None = None,
    image_size: int | None = None,
    keyframe_start: Literal["wrap", "clamp"] = "wrap",
) -> Episode:
    """Read one RLBench/PerAct, COLOSSEUM or GemBench episode folder into an :class:`Episode` (images are read
    lazily, per tick).

    ``image_every``: keep images only on ticks that are multiples of it, keyframes, and the first and last tick
    (RLBench stores every tick; training needs only these, and our copy is then ~10x smaller). None keeps all.
    ``image_size``: read the images at this square size (a whole divisor of the stored size, e.g. 128 from 256-px
    GemBench data; see :func:`subsample_camera`). ``keyframe_start``: the keyframe heuristic's reading of frames
    0 and 1 (``"wrap"`` = PerAct, used for RLBench and COLOSSEUM; ``"clamp"`` = GemBench's keystep detection).
    """
    if image_every is not None and image_every < 1:
        raise ValueError(f"image_every must be >= 1 or None, got {image_every}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be >= 1 or None, got {image_size}")
    folder = Path(folder)
    if not (folder / LOW_DIM_PICKLE).is_file():
        raise ValueError(f"folder {folder} has no {LOW_DIM_PICKLE}")
    demo = load_rlbench_pickle(folder / LOW_DIM_PICKLE)
    observations = demo.observations if isinstance(demo, DemoRecord) else demo
    if not isinstance(observations, list) or not all(isinstance(o, ObservationRecord) for o in observations):
        raise ValueError(f"folder {folder}: {LOW_DIM_PICKLE} does not hold a Demo of Observations")
    if not observations:
        raise ValueError(f"folder {folder}: the demo has no observations")
    records = [o.as_dict() for o in observations]
    path_task, path_variation, index = _infer_names(folder)
    variation = path_variation or 0
    if (folder / VARIATION_NUMBER).is_file():
        variation = int(load_rlbench_pickle(folder / VARIATION_NUMBER))
    descriptions = _descriptions(folder, (task or path_task).replace("_", " "))

    misc0 = records[0].get("misc") or {}
    if cameras is None:
        cameras = [c for c in RLBENCH_CAMERAS if (folder / f"{c}_rgb").is_dir() and f"{c}_camera_intrinsics" in misc0]
    missing = [c for c in cameras if not (folder / f"{c}_depth").is_dir() or f"{c}_camera_intrinsics" not in misc0]
    if missing:
        raise ValueError(f"cameras {missing} have no depth folder or camera parameters in {folder}")
    # One directory listing per image folder instead of a stat per tick and camera (thousands of episodes).
    present = [set(os.listdir(folder / f"{c}_{kind}")) for c in cameras for kind in ("rgb", "depth")]
    image_frames = [
        i
        for i, r in enumerate(records)
        if cameras
        and not (r.get("misc") or {}).get(REPEATED_FLAG, False)
        and all(f"{i}.png" in names for names in present)
    ]

    gripper_pose = _stack_field(records, "gripper_pose")
    gripper_open = _stack_field(records, "gripper_open")
    joints = _stack_field(records, "joint_positions")
    velocities = _stack_field(records, "joint_velocities")
    if gripper_pose is None or gripper_open is None or joints is None or velocities is None:
        raise ValueError(f"folder {folder}: observations lack gripper_pose/gripper_open/joint_* on some ticks")
    gripper_open = gripper_open[:, 0]
    extra_lowdim = {f"rlbench.{n}": a for n in CARRIED_FIELDS if (a := _stack_field(records, n)) is not None}
    collide = extra_lowdim.get("rlbench.ignore_collisions")
    keyframes = discover_keyframes(gripper_open, velocities, start=keyframe_start)
    if image_every is not None:
        wanted = set(keyframes) | {0, len(records) - 1}
        image_frames = [i for i in image_frames if i % image_every == 0 or i in wanted]
    keyposes = [
        Keypose(gripper_pose[k, :3], gripper_pose[k, 3:], gripper_open[k] > 0.5,
                bool(collide[k, 0] > 0.5) if collide is not None else True)
        for k in keyframes
    ]
    extra: dict[str, Any] = {"source": "rlbench", "source_path": str(folder)}
    seed_state = getattr(demo, "random_seed", None)
    if isinstance(seed_state, tuple) and len(seed_state) == 5:
        name, keys, pos, has_gauss, cached = seed_state
        extra["rlbench_random_seed"] = [str(name), np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)]

    def load(tick: int) -> dict[str, CameraFrame]:
        misc = records[tick].get("misc") or {}
        out = {}
        for c in cameras:
            k, e = camera_from_rlbench(misc[f"{c}_camera_intrinsics"], misc[f"{c}_camera_extrinsics"])
            with Image.open(folder / f"{c}_rgb" / f"{tick}.png") as im:
                rgb = np.asarray(im.convert("RGB"))
            with Image.open(folder / f"{c}_depth" / f"{tick}.png") as im:
                depth = decode_depth_rgb24(np.asarray(im.convert("RGB")), float(misc[f"{c}_camera_near"]),
                                           float(misc[f"{c}_camera_far"]))
            if image_size is not None:
                rgb, depth, k = subsample_camera(rgb, depth, k, image_size)
            out[c] = CameraFrame(rgb, depth, k, e)
        return out

    return Episode(
        task=task or path_task,
        variation=variation,
        seed=-1,  # RLBench keeps a numpy RNG state instead (extra["rlbench_random_seed"])
        index=index,
        instructions=descriptions,
        gripper_pose=gripper_pose,
        gripper_open=gripper_open,
        joint_positions=joints,
        joint_velocities=velocities,
        image_frames=image_frames,
        camera_names=list(cameras),
        keyframes=keyframes,
        keyposes=keyposes,
        success=True,
        extra_lowdim=extra_lowdim,
        extra=extra,
        loader=load,
    )


# ------------------------------------------------------------------------------------------------ export
def per_tick_ignore_collisions(episode: Episode) -> np.ndarray:
    """(T,) flag of the keypose being executed at each tick: ticks in (k_{j-1}, k_j] get keyposes[j]'s."""
    carried = episode.extra_lowdim.get("rlbench.ignore_collisions", episode.extra_lowdim.get("ignore_collisions"))
    if carried is not None:  # recorded per tick (imported from RLBench, or by our generator)
        return np.asarray(carried, dtype=np.float64).reshape(len(episode), -1)[:, 0]
    if not episode.keyposes or not episode.keyframes:
        return np.zeros(len(episode))
    flags = np.array([k.ignore_collisions for k in episode.keyposes], dtype=np.float64)
    segment = np.searchsorted(np.asarray(episode.keyframes), np.arange(len(episode)), side="left")
    return flags[np.minimum(segment, len(flags) - 1)]


def export_rlbench_episode(episode: Episode, folder: str | Path) -> Path:
    """Write ``episode`` as an RLBench episode folder (``folder`` is ``.../episodes/episode<N>``)."""
    folder = Path(folder)
    if (folder / LOW_DIM_PICKLE).exists():
        raise ValueError(f"folder {folder} already holds an RLBench episode")
    unknown = [c for c in episode.camera_names if c not in RLBENCH_CAMERAS]
    if unknown:
        raise ValueError(f"episode.camera_names {unknown} are not RLBench cameras {RLBENCH_CAMERAS}")
    if episode.camera_names and not episode.image_frames:
        raise ValueError("episode has cameras but no image_frames to export")
    ticks = np.arange(len(episode))
    frames = np.asarray(episode.image_frames)
    # source image tick for every tick: the latest image at or before it (the first image before the first one)
    source = frames[np.maximum(np.searchsorted(frames, ticks, side="right") - 1, 0)] if len(frames) else ticks
    images = {int(t): episode.cameras(int(t)) for t in frames}
    near_far = {}
    for c in episode.camera_names:
        deepest = max(float(np.nanmax(np.where(im[c].depth > 0, im[c].depth, np.nan), initial=0.0))
                      for im in images.values())
        near_far[c] = (0.0, max(1.0, deepest * 1.01))  # far beyond every real return keeps them unsaturated
    for c in episode.camera_names:
        (folder / f"{c}_rgb").mkdir(parents=True, exist_ok=True)
        (folder / f"{c}_depth").mkdir(parents=True, exist_ok=True)
    encoded: dict[tuple[int, str], tuple[Image.Image, Image.Image]] = {}
    for t, cams in images.items():
        for c, f in cams.items():
            encoded[(t, c)] = (Image.fromarray(f.rgb), Image.fromarray(encode_depth_rgb24(f.depth, *near_far[c])))
    collide = per_tick_ignore_collisions(episode)
    observations = []
    for t in ticks.tolist():
        src = int(source[t])
        misc: dict[str, Any] = {REPEATED_FLAG: bool(src != t)} if episode.camera_names else {}
        for c in episode.camera_names:
            rgb_img, depth_img = encoded[(src, c)]
            rgb_img.save(folder / f"{c}_rgb" / f"{t}.png", compress_level=1)
            depth_img.save(folder / f"{c}_depth" / f"{t}.png", compress_level=1)
            k, e = camera_to_rlbench(images[src][c].intrinsics, images[src][c].extrinsics)
            misc.update({f"{c}_camera_intrinsics": k, f"{c}_camera_extrinsics": e,
                         f"{c}_camera_near": near_far[c][0], f"{c}_camera_far": near_far[c][1]})
        values = {n[len("rlbench."):]: a[t] for n, a in episode.extra_lowdim.items() if n.startswith("rlbench.")}
        values.update(
            gripper_pose=episode.gripper_pose[t].copy(),
            gripper_open=float(episode.gripper_open[t]),
            joint_positions=episode.joint_positions[t].copy(),
            joint_velocities=episode.joint_velocities[t].copy(),
            ignore_collisions=np.array(collide[t]),
            misc=misc,
        )
        observations.append(RLBenchObservation(**values))
    seed_state = episode.extra.get("rlbench_random_seed")
    random_seed = None
    if seed_state is not None:
        name, keys, pos, has_gauss, cached = seed_state
        random_seed = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    folder.mkdir(parents=True, exist_ok=True)
    dump_rlbench_pickle(RLBenchDemo(observations, random_seed=random_seed), folder / LOW_DIM_PICKLE)
    dump_rlbench_pickle(int(episode.variation), folder / VARIATION_NUMBER)
    dump_rlbench_pickle(list(episode.instructions), folder / VARIATION_DESCRIPTIONS)
    return folder


def rlbench_episode_dir(root: str | Path, task: str, number: int) -> Path:
    return Path(root) / task / "all_variations" / "episodes" / f"episode{number}"


def export_dataset(src: str | Path, dst: str | Path, tasks: Sequence[str] | None = None) -> list[Path]:
    """Export every episode of our dataset ``src`` to RLBench layout under ``dst`` (numbered 0.. per task)."""
    written = []
    paths = list_episodes(src, tasks)
    counters: dict[str, int] = {}
    for p in tqdm(paths, desc="export", unit="episode"):
        ep = load_episode(p)
        n = counters.get(ep.task, 0)
        counters[ep.task] = n + 1
        out = rlbench_episode_dir(dst, ep.task, n)
        if (out / LOW_DIM_PICKLE).exists():  # resume: already exported
            written.append(out)
            continue
        written.append(export_rlbench_episode(ep, out))
    return written


def import_dataset(
    src: str | Path, dst: str | Path, tasks: Sequence[str] | None = None, image_every: int | None = None
) -> list[Path]:
    """Convert RLBench episode folders under ``src`` (``<task>/*/episodes/episode<N>``) into our format at ``dst``."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"src {src} is not a directory")
    folders = sorted(
        p for p in src.glob("*/*/episodes/episode*") if (p / LOW_DIM_PICKLE).is_file()
        and (tasks is None or p.parent.parent.parent.name in tasks)
    )
    written = []
    counters: dict[str, int] = {}
    for p in tqdm(folders, desc="import", unit="episode"):
        task = p.parent.parent.parent.name
        n = counters.get(task, 0)
        counters[task] = n + 1
        out = episode_dir(dst, task, n)
        if not out.exists():
            save_episode(import_rlbench_episode(p, task=task, image_every=image_every), out)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert between RLBench episode folders and our dataset format.")
    parser.add_argument("direction", choices=["import", "export"], help="import: RLBench->ours, export: ours->RLBench")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--image-every", type=int, default=None, help="import: keep images every N ticks + keyframes")
    args = parser.parse_args(argv)
    if args.direction == "import":
        paths = import_dataset(args.src, args.dst, args.tasks, image_every=args.image_every)
    else:
        paths = export_dataset(args.src, args.dst, args.tasks)
    print(f"{args.direction}ed {len(paths)} episodes to {args.dst}")


if __name__ == "__main__":
    main()
