"""Our versioned on-disk episode format (docs/dataset.md) and the in-memory :class:`Episode`.

One folder per episode; nothing is pickled:

    episode.json          format name + version, task, variation, seed, index, instructions, cameras, image frames,
                          keyframes, expert keyposes (with ignore_collisions), success, free-form ``extra``
    lowdim.npz            per-tick streams: gripper_pose (T,7) xyz+xyzw, gripper_open (T,), joint_positions (T,J),
                          joint_velocities (T,J), plus optional ``extra.<name>`` streams (T, ...)
    cameras.npz           per camera, aligned with image_frames: ``<cam>.intrinsics`` (F,3,3),
                          ``<cam>.extrinsics`` (F,4,4) camera-to-world (the wrist camera moves)
    <cam>_rgb/<tick>.png  uint8 RGB
    <cam>_depth/<tick>.png uint16 depth in millimetres, 0 = no return
    manifest.json         sha256 and size of every other file (written last; optional: older episodes lack it)

Depth is a 16-bit PNG in millimetres rather than a float npz: the quantisation error (<= 0.5 mm) is ten times
smaller than a pixel of the model's 224-px view of a 1 m cube (4.5 mm), the files are 5x smaller than compressed
float32 npz on our scenes, any image viewer shows them, and they decode as fast as the RGB. Depth beyond 65.534 m,
non-finite or <= 0 is stored as 0 ("no return"), which ``CameraFrame.point_cloud`` turns into NaN points as it does
for live sensors.

Episodes are written to a temporary sibling folder, fsync'd and renamed into place, so a folder with
``episode.json`` is always complete — that is what makes demo generation resumable. The manifest lets
``benchmarks.dataset_check`` (``bridgevla data check``, and the start of every training run) catch a flipped bit or a
truncated file anywhere in a dataset; reading errors always name the file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.fileio import fsync_dir, fsync_tree, write_manifest
from benchmarks.keyframes import discover_keyframes
from benchmarks.protocol import CameraFrame, Keypose, Observation

FORMAT_NAME = "bridgevla-episode"
FORMAT_VERSION = 1
EPISODE_JSON = "episode.json"
MANIFEST_FORMAT = "bridgevla-episode-files"
LOWDIM_NPZ = "lowdim.npz"
CAMERAS_NPZ = "cameras.npz"
DEPTH_ENCODING = "png-uint16-mm"
_MAX_DEPTH_MM = np.iinfo(np.uint16).max - 1  # 65534: keep 65535 free so a saturated sensor is never mistaken
_PNG_COMPRESS_LEVEL = 1  # level 1 is ~2x faster than the default 6 on our small images and only a little larger

CameraLoader = Callable[[int], dict[str, CameraFrame]]


def encode_depth_mm(depth: np.ndarray) -> np.ndarray:
    """Float metres -> uint16 millimetres (rounded); no-return, non-finite and out-of-range values -> 0."""
    d = np.asarray(depth, dtype=np.float64)
    mm = np.rint(d * 1000.0)
    ok = np.isfinite(mm) & (mm > 0) & (mm <= _MAX_DEPTH_MM)
    return np.where(ok, mm, 0).astype(np.uint16)


def decode_depth_mm(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres (0 stays 0 = no return)."""
    return (np.asarray(mm, dtype=np.float32) / np.float32(1000.0)).astype(np.float32)


def _keypose_to_json(k: Keypose) -> dict[str, Any]:
    return {
        "position": k.position.tolist(),
        "quaternion": k.quaternion.tolist(),
        "gripper_open": k.gripper_open,
        "ignore_collisions": k.ignore_collisions,
    }


def _keypose_from_json(d: dict[str, Any]) -> Keypose:
    return Keypose(d["position"], d["quaternion"], d["gripper_open"], d["ignore_collisions"])


def _in_memory_loader(frames: dict[int, dict[str, CameraFrame]]) -> CameraLoader:
    return lambda tick: dict(frames.get(tick, {}))


@dataclass
class Episode:
    """One demonstration: low-dim state at every tick, camera images on ``image_frames``, keyframes and keyposes.

    ``keyposes[j]`` is the target reached at ``keyframes[j]`` when the two lists have the same length (the scripted
    expert's commanded poses for our demos, the recorded gripper pose at each keyframe for imported RLBench demos).
    Camera images are loaded lazily through ``loader`` so that opening thousands of episodes costs only their JSON.
    """

    task: str
    variation: int
    seed: int
    index: int
    instructions: list[str]
    gripper_pose: np.ndarray  # (T, 7) xyz + quaternion xyzw
    gripper_open: np.ndarray  # (T,) 1.0 open / 0.0 closed
    joint_positions: np.ndarray  # (T, J)
    joint_velocities: np.ndarray  # (T, J)
    image_frames: list[int]  # ascending ticks that have camera images
    camera_names: list[str]
    keyframes: list[int]
    keyposes: list[Keypose]
    success: bool = True
    extra_lowdim: dict[str, np.ndarray] = field(default_factory=dict)  # extra per-tick streams, leading dim T
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable metadata
    loader: CameraLoader = field(default=lambda tick: {}, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.gripper_pose = np.asarray(self.gripper_pose, dtype=np.float64)
        self.gripper_open = np.asarray(self.gripper_open, dtype=np.float64).reshape(-1)
        self.joint_positions = np.asarray(self.joint_positions, dtype=np.float64)
        self.joint_velocities = np.asarray(self.joint_velocities, dtype=np.float64)
        t = self.gripper_open.shape[0]
        if self.gripper_pose.shape != (t, 7):
            raise ValueError(f"gripper_pose must be ({t}, 7), got {self.gripper_pose.shape}")
        if self.joint_positions.ndim != 2 or self.joint_positions.shape[0] != t:
            raise ValueError(f"joint_positions must be ({t}, n_joints), got {self.joint_positions.shape}")
        if self.joint_velocities.shape != self.joint_positions.shape:
            raise ValueError(
                f"joint_velocities must match joint_positions {self.joint_positions.shape}, "
                f"got {self.joint_velocities.shape}"
            )
        self.image_frames = [int(i) for i in self.image_frames]
        if self.image_frames != sorted(set(self.image_frames)) or any(not 0 <= i < t for i in self.image_frames):
            raise ValueError(f"image_frames must be unique ascending ticks in [0, {t}), got {self.image_frames}")
        self.keyframes = [int(i) for i in self.keyframes]
        if any(not 0 <= i < t for i in self.keyframes):
            raise ValueError(f"keyframes must lie in [0, {t}), got {self.keyframes}")
        for name, arr in self.extra_lowdim.items():
            if np.asarray(arr).shape[:1] != (t,):
                raise ValueError(f"extra_lowdim[{name!r}] must have leading dimension {t}, got {np.shape(arr)}")
        if not self.instructions:
            raise ValueError("instructions must hold at least one phrasing")
        self._image_set = frozenset(self.image_frames)

    def __len__(self) -> int:
        return int(self.gripper_open.shape[0])

    def has_images(self, tick: int) -> bool:
        return tick in self._image_set

    def cameras(self, tick: int) -> dict[str, CameraFrame]:
        """Camera frames at ``tick`` ({} on ticks without images)."""
        if not 0 <= tick < len(self):
            raise ValueError(f"tick must be in [0, {len(self)}), got {tick}")
        return self.loader(tick) if self.has_images(tick) else {}

    def frame(self, tick: int) -> Observation:
        """The :class:`Observation` at ``tick`` (``cameras`` empty on ticks without images)."""
        cams = self.cameras(tick)
        return Observation(
            cameras=cams,
            gripper_pose=self.gripper_pose[tick].copy(),
            gripper_open=float(self.gripper_open[tick]),
            joint_positions=self.joint_positions[tick].copy(),
            joint_velocities=self.joint_velocities[tick].copy(),
            instructions=list(self.instructions),
            task=self.task,
            variation=self.variation,
            episode=self.index,
            misc={"tick": tick, "seed": self.seed},
        )

    @property
    def aligned(self) -> bool:
        """True when there is one keypose per keyframe (``keyposes[j]`` is reached at ``keyframes[j]``)."""
        return len(self.keyposes) == len(self.keyframes)

    def next_keyframe(self, tick: int) -> int | None:
        """The first keyframe strictly after ``tick`` (None after the last one)."""
        later = [k for k in self.keyframes if k > tick]
        return later[0] if later else None

    def target_keypose(self, tick: int) -> Keypose | None:
        """The keypose a policy at ``tick`` should predict: the one reached at the next keyframe."""
        if not self.aligned:
            raise ValueError(f"episode has {len(self.keyposes)} keyposes for {len(self.keyframes)} keyframes")
        later = [j for j, k in enumerate(self.keyframes) if k > tick]
        return self.keyposes[later[0]] if later else None

    def sample_ticks(self, every: int = 10) -> list[int]:
        """PerAct/RVT training starts: keyframes and every ``every``-th tick, with images and a later keyframe."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        last = self.keyframes[-1] if self.keyframes else -1
        keys = set(self.keyframes)
        return [t for t in self.image_frames if (t % every == 0 or t in keys) and t < last]

    def rediscover_keyframes(self) -> list[int]:
        """Run the PerAct heuristic on this episode's low-dim stream."""
        return discover_keyframes(self.gripper_open, self.joint_velocities)

    @classmethod
    def from_observations(
        cls,
        observations: Sequence[Observation],
        *,
        task: str,
        variation: int,
        seed: int,
        index: int,
        keyposes: Sequence[Keypose],
        success: bool,
        instructions: list[str] | None = None,
        extra_lowdim: dict[str, np.ndarray] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Episode:
        """Build an in-memory episode from a recording (one Observation per tick; ``cameras`` on some ticks)."""
        if len(observations) == 0:
            raise ValueError("observations must not be empty")
        frames = {i: dict(o.cameras) for i, o in enumerate(observations) if o.cameras}
        names = sorted({n for cams in frames.values() for n in cams})
        uneven = [i for i, cams in frames.items() if sorted(cams) != names]
        if uneven:
            raise ValueError(f"observations must carry the same cameras {names} on every image tick; ticks {uneven}")
        gripper_open = np.array([o.gripper_open for o in observations], dtype=np.float64)
        velocities = np.stack([np.asarray(o.joint_velocities, dtype=np.float64) for o in observations])
        return cls(
            task=task,
            variation=variation,
            seed=seed,
            index=index,
            instructions=list(instructions if instructions is not None else observations[0].instructions),
            gripper_pose=np.stack([np.asarray(o.gripper_pose, dtype=np.float64) for o in observations]),
            gripper_open=gripper_open,
            joint_positions=np.stack([np.asarray(o.joint_positions, dtype=np.float64) for o in observations]),
            joint_velocities=velocities,
            image_frames=sorted(frames),
            camera_names=names,
            keyframes=discover_keyframes(gripper_open, velocities),
            keyposes=list(keyposes),
            success=success,
            extra_lowdim=dict(extra_lowdim or {}),
            extra=dict(extra or {}),
            loader=_in_memory_loader(frames),
        )


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)


def read_png(path: Path) -> np.ndarray:
    """Decode a whole PNG; any failure (missing, truncated, corrupted) is a ValueError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except FileNotFoundError as e:
        raise ValueError(f"{path} is missing") from e
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, zlib/struct errors for broken files
        raise ValueError(f"{path} is not a readable PNG ({type(e).__name__}: {e})") from e


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz (never unpickling); any failure is a ValueError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as e:
        raise ValueError(f"{path} is missing") from e
    except Exception as e:  # noqa: BLE001 - zipfile/zlib/numpy errors of a damaged file, or a pickled array
        raise ValueError(f"{path} is not a readable npz ({type(e).__name__}: {e})") from e


def save_episode(episode: Episode, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``episode`` to folder ``path`` atomically (temp folder + rename). Returns ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"path {path} already exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_contents(episode, tmp)
        write_manifest(tmp, MANIFEST_FORMAT)
        fsync_tree(tmp)  # durable before it becomes visible: a power cut cannot leave a renamed, empty episode
        if path.exists():
            shutil.rmtree(path)
        os.rename(tmp, path)  # atomic on one filesystem: readers see all of the episode or none of it
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def _write_contents(episode: Episode, folder: Path) -> None:
    names = episode.camera_names
    cams: dict[str, dict[str, list[np.ndarray]]] = {n: {"intrinsics": [], "extrinsics": []} for n in names}
    sizes: dict[str, dict[str, int]] = {}
    for n in episode.camera_names:
        (folder / f"{n}_rgb").mkdir()
        (folder / f"{n}_depth").mkdir()
    for tick in episode.image_frames:
        frames = episode.loader(tick)
        if sorted(frames) != sorted(episode.camera_names):
            raise ValueError(f"episode.loader({tick}) gave cameras {sorted(frames)}, expected {episode.camera_names}")
        for n, f in frames.items():
            _write_png(folder / f"{n}_rgb" / f"{tick}.png", f.rgb)
            _write_png(folder / f"{n}_depth" / f"{tick}.png", encode_depth_mm(f.depth))
            cams[n]["intrinsics"].append(np.asarray(f.intrinsics, dtype=np.float64))
            cams[n]["extrinsics"].append(np.asarray(f.extrinsics, dtype=np.float64))
            sizes[n] = {"height": int(f.rgb.shape[0]), "width": int(f.rgb.shape[1])}
    np.savez(
        folder / CAMERAS_NPZ,
        **{
            f"{n}.{k}": np.stack(v) if v else np.zeros((0, 3, 3) if k == "intrinsics" else (0, 4, 4))
            for n, d in cams.items()
            for k, v in d.items()
        },
    )
    np.savez(
        folder / LOWDIM_NPZ,
        gripper_pose=episode.gripper_pose,
        gripper_open=episode.gripper_open,
        joint_positions=episode.joint_positions,
        joint_velocities=episode.joint_velocities,
        **{f"extra.{k}": np.asarray(v) for k, v in episode.extra_lowdim.items()},
    )
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "task": episode.task,
        "variation": int(episode.variation),
        "seed": int(episode.seed),
        "index": int(episode.index),
        "instructions": list(episode.instructions),
        "num_frames": len(episode),
        "image_frames": episode.image_frames,
        "cameras": {n: sizes.get(n, {}) for n in episode.camera_names},
        "depth_encoding": DEPTH_ENCODING,
        "keyframes": episode.keyframes,
        "keyposes": [_keypose_to_json(k) for k in episode.keyposes],
        "success": bool(episode.success),
        "extra": episode.extra,
    }
    # Written last: its presence marks a complete episode even if the rename were ever not atomic.
    (folder / EPISODE_JSON).write_text(json.dumps(meta, indent=1))


def is_complete(path: str | Path) -> bool:
    return (Path(path) / EPISODE_JSON).is_file()


def _disk_loader(folder: Path, meta: dict[str, Any]) -> CameraLoader:
    position = {tick: j for j, tick in enumerate(meta["image_frames"])}
    cache: dict[str, np.ndarray] = {}

    def load(tick: int) -> dict[str, CameraFrame]:
        if not cache:
            cache.update(read_npz(folder / CAMERAS_NPZ))
        j = position[tick]
        out = {}
        for n in meta["cameras"]:
            rgb = read_png(folder / f"{n}_rgb" / f"{tick}.png")
            depth = decode_depth_mm(read_png(folder / f"{n}_depth" / f"{tick}.png").astype(np.uint16))
            try:
                out[n] = CameraFrame(rgb, depth, cache[f"{n}.intrinsics"][j], cache[f"{n}.extrinsics"][j])
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"{folder}: camera {n!r} at tick {tick} is inconsistent ({type(e).__name__}: {e})"
                                 ) from e
        return out

    return load


def load_episode(path: str | Path) -> Episode:
    """Open an episode folder written by :func:`save_episode` (images are read lazily, per tick)."""
    folder = Path(path)
    if not is_complete(folder):
        raise ValueError(f"path {folder} is not a complete episode folder (no {EPISODE_JSON})")
    try:
        return _load_episode(folder)
    except ValueError as e:
        if str(folder) in str(e):
            raise
        raise ValueError(f"{folder}: {e}") from e
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{folder / EPISODE_JSON}: malformed ({type(e).__name__}: {e})") from e


def _load_episode(folder: Path) -> Episode:
    try:
        meta = json.loads((folder / EPISODE_JSON).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{folder / EPISODE_JSON} is not valid UTF-8 JSON ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{folder / EPISODE_JSON} must hold a JSON object")
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"path {folder}: format {meta.get('format')!r} is not {FORMAT_NAME!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"path {folder}: format version {meta.get('version')} unsupported (this reader: 1)")
    if meta.get("depth_encoding") != DEPTH_ENCODING:
        raise ValueError(f"path {folder}: depth encoding {meta.get('depth_encoding')!r} unsupported")
    low = read_npz(folder / LOWDIM_NPZ)
    missing = [k for k in ("gripper_pose", "gripper_open", "joint_positions", "joint_velocities") if k not in low]
    if missing:
        raise ValueError(f"{folder / LOWDIM_NPZ} lacks the arrays {missing}")
    if not isinstance(meta.get("instructions"), list) or not all(isinstance(t, str) for t in meta["instructions"]):
        raise ValueError(f"{folder / EPISODE_JSON}: instructions must be a list of strings")
    if not isinstance(meta.get("cameras"), dict) or not isinstance(meta.get("keyposes"), list):
        raise ValueError(f"{folder / EPISODE_JSON}: 'cameras' must be an object and 'keyposes' a list")
    return Episode(
        task=meta["task"],
        variation=meta["variation"],
        seed=meta["seed"],
        index=meta["index"],
        instructions=meta["instructions"],
        gripper_pose=low["gripper_pose"],
        gripper_open=low["gripper_open"],
        joint_positions=low["joint_positions"],
        joint_velocities=low["joint_velocities"],
        image_frames=meta["image_frames"],
        camera_names=list(meta["cameras"]),
        keyframes=meta["keyframes"],
        keyposes=[_keypose_from_json(k) for k in meta["keyposes"]],
        success=meta["success"],
        extra_lowdim={k[len("extra.") :]: v for k, v in low.items() if k.startswith("extra.")},
        extra=meta.get("extra", {}),
        loader=_disk_loader(folder, meta),
    )


def episode_dir(root: str | Path, task: str, index: int) -> Path:
    """Where episode ``index`` of ``task`` lives under a dataset ``root``."""
    return Path(root) / task / f"episode_{index:05d}"


def list_episodes(root: str | Path, tasks: Sequence[str] | None = None) -> list[Path]:
    """Complete episode folders under ``root`` (optionally only ``tasks``), sorted by task then index."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {root} is not a directory")
    task_dirs = [root / t for t in tasks] if tasks is not None else sorted(p for p in root.iterdir() if p.is_dir())
    return [p for d in task_dirs if d.is_dir() for p in sorted(d.glob("episode_*")) if is_complete(p)]
