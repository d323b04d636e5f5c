"""Training straight from RLBench / COLOSSEUM / GemBench demo folders, without converting them first.

The three harnesses write the same per-episode folder (``low_dim_obs.pkl``, ``<cam>_rgb/<i>.png``,
``<cam>_depth/<i>.png``, ``variation_descriptions.pkl``; REFERENCE §2) under slightly different trees:

- RLBench / PerAct:  ``<root>/<task>/all_variations/episodes/episode<N>/`` (+ ``variation_number.pkl``)
- COLOSSEUM:         ``<root>/<task>/all_variations/episodes/episode<N>/`` for its (unperturbed) training data,
                     ``<root>/<task>_<factor>/variation0/episodes/episode<N>/`` for its per-factor sets (the
                     descriptions sit in ``variation0/``), ``<root>/<task>_13/episodes/episode<N>/`` for factor 13
- GemBench:          ``<root>/<task>/variation<V>/episodes/episode<N>/`` (``<root>`` = ``.../microsteps/seed0``)

:func:`find_demo_folders` finds every episode of every layout under a root; :func:`open_demo_episodes` opens them as
lazy :class:`~benchmarks.dataset.Episode` objects (low-dim data now, images when a tick is asked for), which is what
the training dataset consumes. Pickles are read through the restricted unpickler only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.dataset import Episode
from benchmarks.rlbench.demo_io import LOW_DIM_PICKLE, import_rlbench_episode

_EPISODE = re.compile(r"episode(\d+)")
_VARIATION = re.compile(r"variation(\d+)")


@dataclass(frozen=True)
class DemoFolder:
    task: str  # the folder name below the root (``close_jar``, ``close_box_11``, ``push_button``)
    path: Path
    variation: int | None  # from a ``variation<V>`` folder; None under ``all_variations`` (read from the pickle)
    episode: int


def _folder(root: Path, episode_dir: Path) -> DemoFolder | None:
    m = _EPISODE.fullmatch(episode_dir.name)
    if m is None or not (episode_dir / LOW_DIM_PICKLE).is_file():
        return None
    rel = episode_dir.relative_to(root).parts  # (task, [variations,] "episodes", "episode<N>")
    if len(rel) == 4 and rel[2] == "episodes":
        vm = _VARIATION.fullmatch(rel[1])
        if vm is None and rel[1] != "all_variations":
            return None
        return DemoFolder(rel[0], episode_dir, int(vm.group(1)) if vm else None, int(m.group(1)))
    if len(rel) == 3 and rel[1] == "episodes":
        return DemoFolder(rel[0], episode_dir, None, int(m.group(1)))
    return None


def find_demo_folders(root: str | Path, tasks: Sequence[str] | None = None) -> dict[str, list[DemoFolder]]:
    """``{task: [episode folders sorted by (variation, episode number)]}`` under ``root`` for any of the layouts
    above. ``tasks`` restricts (and orders) the result; a requested task without episodes is an error."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {root} is not a directory")
    found: dict[str, list[DemoFolder]] = {}
    for pattern in ("*/*/episodes/episode*", "*/episodes/episode*"):
        for p in root.glob(pattern):
            f = _folder(root, p)
            if f is not None and (tasks is None or f.task in tasks):
                found.setdefault(f.task, []).append(f)
    for folders in found.values():
        folders.sort(key=lambda f: (-1 if f.variation is None else f.variation, f.episode))
    if tasks is None:
        return dict(sorted(found.items()))
    missing = [t for t in tasks if t not in found]
    if missing:
        raise ValueError(f"tasks {missing} have no RLBench-layout episodes under {root} (found {sorted(found)})")
    return {t: found[t] for t in tasks}


def is_demo_root(root: str | Path) -> bool:
    """True when ``root`` holds RLBench-layout episodes (as opposed to our own dataset format)."""
    root = Path(root)
    return root.is_dir() and any(
        _folder(root, p) is not None
        for pattern in ("*/*/episodes/episode*", "*/episodes/episode*")
        for p in root.glob(pattern)
    )


def open_demo_episodes(
    root: str | Path,
    tasks: Sequence[str] | None = None,
    *,
    episodes_per_task: int = 0,
    cameras: Sequence[str] | None = None,
    image_size: int | None = None,
    keyframe_start: Literal["wrap", "clamp"] = "wrap",
) -> dict[str, list[Episode]]:
    """Every episode under ``root`` as a lazy :class:`Episode` (see :func:`import_rlbench_episode` for
    ``cameras``, ``image_size`` (e.g. 128 from 256-px GemBench images) and ``keyframe_start``);
    ``episodes_per_task > 0`` keeps the first N per task."""
    if episodes_per_task < 0:
        raise ValueError(f"episodes_per_task must be >= 0, got {episodes_per_task}")
    out: dict[str, list[Episode]] = {}
    for task, folders in find_demo_folders(root, tasks).items():
        chosen = folders[:episodes_per_task] if episodes_per_task else folders
        out[task] = [
            import_rlbench_episode(f.path, task=task, cameras=cameras, image_size=image_size,
                                   keyframe_start=keyframe_start)
            for f in chosen
        ]
    return out
