"""One up-front validation of a dataset folder: every bad file named before anything trains on it.

``bridgevla data check DIR`` runs it, and so does every training run before its first step (``KeyframeDataset``),
so a truncated PNG, a damaged npz, a garbled ``episode.json`` or a keypose 50 m outside the scene bounds is reported
at once, with every offending file, instead of killing training at the step that first reads it (and again on every
``--resume``).

Per episode folder (``benchmarks.dataset`` format):
- the manifest (when present; episodes written before it have none, which is a note, not an error): every file's
  size and sha256, no unlisted files — catches any flipped bit or truncation, in any file;
- ``episode.json`` and ``lowdim.npz`` through ``load_episode`` (format, fields, shapes), plus finite low-dim streams;
- ``cameras.npz``: one finite intrinsics/extrinsics pair per camera and image tick;
- every RGB and depth PNG decoded in full, with the size and type ``episode.json`` records;
- instructions: non-blank text;
- the training targets (the keyposes, or the gripper pose at each keyframe when they are not aligned): finite,
  non-zero quaternion and, given scene bounds, inside them; a target at most ``max_outside`` metres outside is a note
  (it trains clamped onto the border), further out an error quoting requested vs allowed.
A task folder's ``episode_*`` folder without ``episode.json`` (a damaged copy) is an error; a ``.tmp-*`` folder
(a writer killed mid-episode) is a note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.dataset import (
    CAMERAS_NPZ,
    EPISODE_JSON,
    MANIFEST_FORMAT,
    Episode,
    load_episode,
    read_npz,
    read_png,
)
from benchmarks.fileio import MANIFEST, ManifestError, verify_manifest
from rendering.bounds import SceneBounds, clamp_to_bounds

DEFAULT_MAX_OUTSIDE = 0.05  # metres


class DatasetError(ValueError):
    """A dataset holds bad files; the message lists every one (see :class:`DatasetReport`)."""


@dataclass
class DatasetReport:
    root: Path
    episodes: int = 0  # episode folders checked
    files: int = 0  # files read or hashed
    problems: list[tuple[Path, str]] = field(default_factory=list)  # errors: training refuses the dataset
    notes: list[tuple[Path, str]] = field(default_factory=list)  # worth knowing, not fatal

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_paths(self) -> list[Path]:
        return list(dict.fromkeys(p for p, _ in self.problems))

    def text(self, limit: int = 50) -> str:
        lines = [f"{self.root}: {self.episodes} episodes, {self.files} file reads (hashes and decodes), "
                 f"{len(self.problems)} problem(s) in {len(self.bad_paths())} episode(s), {len(self.notes)} note(s)"]
        lines += [f"  ERROR {p}: {m}" for p, m in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more problems")
        lines += [f"  note  {p}: {m}" for p, m in self.notes[:limit]]
        if len(self.notes) > limit:
            lines.append(f"  ... and {len(self.notes) - limit} more notes")
        return "\n".join(lines)


def _training_targets(ep: Episode) -> tuple[np.ndarray, np.ndarray, str]:
    """(positions (K, 3), quaternions (K, 4), what they are) of the keyposes training will target."""
    if ep.aligned:
        pos = np.array([k.position for k in ep.keyposes]).reshape(-1, 3)
        quat = np.array([k.quaternion for k in ep.keyposes]).reshape(-1, 4)
        return pos, quat, "keyposes"
    ticks = np.asarray(ep.keyframes, dtype=np.int64)
    return ep.gripper_pose[ticks, :3], ep.gripper_pose[ticks, 3:], "gripper poses at keyframes"


def _check_targets(ep: Episode, bounds: SceneBounds | None, max_outside: float, problems: list[str],
                   notes: list[str]) -> None:
    pos, quat, what = _training_targets(ep)
    finite = np.isfinite(pos).all(-1) & np.isfinite(quat).all(-1)
    for j in np.flatnonzero(~finite)[:5]:
        problems.append(f"{what}[{j}] is not finite: position {pos[j].tolist()}, quaternion {quat[j].tolist()}")
    zero = finite & (np.linalg.norm(np.where(np.isfinite(quat), quat, 0.0), axis=-1) < 1e-6)
    for j in np.flatnonzero(zero)[:5]:
        problems.append(f"{what}[{j}] has a zero quaternion")
    if bounds is None or not finite.any():
        return
    p = torch.from_numpy(np.ascontiguousarray(pos[finite], dtype=np.float64))
    dist = (p - clamp_to_bounds(p, bounds)).norm(dim=-1).numpy()
    index = np.flatnonzero(finite)
    far, near = index[dist > max_outside], index[(dist > 0) & (dist <= max_outside)]
    box = f"({', '.join(f'{v:g}' for v in bounds.lo)})..({', '.join(f'{v:g}' for v in bounds.hi)})"
    for j, d in zip(far[:5], dist[dist > max_outside][:5]):
        problems.append(f"{what}[{j}] at {np.round(pos[j], 3).tolist()} lies {d:.3f} m outside the scene bounds "
                        f"{box} (more than {max_outside:g} m): the policy cannot predict it")
    if len(far) > 5:
        problems.append(f"... and {len(far) - 5} more {what} outside the scene bounds")
    if len(near):
        notes.append(f"{len(near)} {what} lie up to {dist[(dist > 0) & (dist <= max_outside)].max():.3f} m outside "
                     f"the scene bounds {box}; they train clamped onto the border")


def _check_images(folder: Path, ep_meta: Episode, sizes: dict, problems: list[str]) -> int:
    """Decode every PNG; returns how many files were read."""
    count = 0
    for cam in ep_meta.camera_names:
        size = sizes.get(cam) or {}
        want = (size.get("height"), size.get("width"))
        for tick in ep_meta.image_frames:
            for kind, ndim, dtypes in (("rgb", 3, (np.uint8,)), ("depth", 2, (np.uint16, np.int32))):
                path = folder / f"{cam}_{kind}" / f"{tick}.png"
                count += 1
                try:
                    arr = read_png(path)
                except ValueError as e:
                    problems.append(str(e).replace(str(folder) + "/", ""))
                    continue
                if arr.ndim != ndim or (ndim == 3 and arr.shape[2] != 3) or arr.dtype not in dtypes:
                    problems.append(f"{path.relative_to(folder)} decodes to {arr.shape} {arr.dtype}, not a "
                                    f"{'(H, W, 3) uint8 RGB' if kind == 'rgb' else '(H, W) 16-bit depth'} image")
                elif tuple(arr.shape[:2]) != want:
                    problems.append(f"{path.relative_to(folder)} is {arr.shape[:2]}, {EPISODE_JSON} says {want}")
    return count


def _check_cameras(folder: Path, ep: Episode, problems: list[str]) -> None:
    try:
        cams = read_npz(folder / CAMERAS_NPZ)
    except ValueError as e:
        problems.append(str(e).replace(str(folder) + "/", ""))
        return
    f = len(ep.image_frames)
    for cam in ep.camera_names:
        for key, shape in (("intrinsics", (f, 3, 3)), ("extrinsics", (f, 4, 4))):
            arr = cams.get(f"{cam}.{key}")
            if arr is None:
                problems.append(f"{CAMERAS_NPZ} lacks {cam}.{key}")
            elif arr.shape != shape or not np.issubdtype(arr.dtype, np.floating):
                problems.append(f"{CAMERAS_NPZ}: {cam}.{key} is {arr.shape} {arr.dtype}, expected {shape} float")
            elif not np.isfinite(arr).all():
                problems.append(f"{CAMERAS_NPZ}: {cam}.{key} holds non-finite values")


def check_episode(folder: str | Path, bounds: SceneBounds | None = None, max_outside: float = DEFAULT_MAX_OUTSIDE,
                  images: bool = True) -> tuple[list[str], list[str], int]:
    """``(problems, notes, files read)`` of one episode folder (see the module doc)."""
    folder = Path(folder)
    problems: list[str] = []
    notes: list[str] = []
    files = 0
    if not (folder / EPISODE_JSON).is_file():
        return [f"no {EPISODE_JSON}: not a complete episode (a damaged copy?)"], notes, 0
    if (folder / MANIFEST).is_file():
        try:
            manifest = verify_manifest(folder, MANIFEST_FORMAT, (EPISODE_JSON,), what="episode")
            files += len(manifest["files"])
        except ManifestError as e:
            problems.append(str(e).replace(f"episode {folder}: ", ""))
    else:
        notes.append(f"no {MANIFEST}: written before checksums, bit flips cannot be detected")
    try:
        ep = load_episode(folder)
    except ValueError as e:
        problems.append(str(e).replace(str(folder) + "/", "").replace(str(folder) + ": ", ""))
        return problems, notes, files
    files += 2
    for name in ("gripper_pose", "gripper_open", "joint_positions", "joint_velocities"):
        if not np.isfinite(getattr(ep, name)).all():
            problems.append(f"lowdim.npz: {name} holds non-finite values")
    blank = [i for i, t in enumerate(ep.instructions) if not t.strip()]
    if blank:
        problems.append(f"{EPISODE_JSON}: instructions {blank} are blank")
    _check_targets(ep, bounds, max_outside, problems, notes)
    if images and ep.image_frames:
        _check_cameras(folder, ep, problems)
        sizes = json.loads((folder / EPISODE_JSON).read_text(encoding="utf-8")).get("cameras", {})
        files += 1 + _check_images(folder, ep, sizes, problems)
    return problems, notes, files


def episode_folders(root: Path, tasks: Sequence[str] | None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every ``episode_*`` folder under the task folders (complete or not) and notes about leftovers."""
    task_dirs = [root / t for t in tasks] if tasks else sorted(p for p in root.iterdir() if p.is_dir())
    folders: list[Path] = []
    notes: list[tuple[Path, str]] = []
    for d in task_dirs:
        if not d.is_dir():
            continue
        folders += sorted(p for p in d.glob("episode_*") if p.is_dir())
        notes += [(p, "temporary folder of a writer killed mid-episode (removed by the next generation)")
                  for p in sorted(d.glob(".tmp-*"))]
    return folders, notes


def check_dataset(root: str | Path, tasks: Sequence[str] | None = None, bounds: SceneBounds | None = None,
                  max_outside: float = DEFAULT_MAX_OUTSIDE, images: bool = True, progress: bool = False,
                  folders: Sequence[Path] | None = None) -> DatasetReport:
    """Check every episode under ``root`` (or only ``tasks``, or exactly ``folders``); see the module doc."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    report = DatasetReport(root)
    if folders is None:
        found, report.notes = episode_folders(root, tasks)
    else:
        found = list(folders)
    for folder in tqdm(found, desc="checking dataset", unit="episode", disable=not progress, dynamic_ncols=True):
        problems, notes, files = check_episode(folder, bounds, max_outside, images)
        report.episodes += 1
        report.files += files
        report.problems += [(folder, m) for m in problems]
        report.notes += [(folder, m) for m in notes]
    return report
