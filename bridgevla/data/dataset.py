"""Keyframe training samples from recorded episodes, task-uniform sampling and the DataLoader.

A *sample* is (the cloud at a start frame, an instruction, the next keypose after it, that keypose's
ignore_collisions flag). Start frames are, per episode, frame 0, every keyframe but the last, and — the reference's
"demo augmentation" — every ``augmentation_every``-th frame; each targets the first keyframe after it. Only frames
that carry camera images can start a sample.

Sampling is task-uniform (a task first, then one of its samples), so a task with long demos does not crowd out a
task with short ones. The sample in slot ``j`` of micro-batch ``k`` is a pure function of ``(seed, k, j)``: the
sampler hands out those keys and the dataset derives everything (task, sample, instruction phrasing, point subset)
from a generator seeded with them. That is what makes training resumable bit for bit with any number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.dataset import Episode, list_episodes, load_episode
from benchmarks.rlbench.demos import is_demo_root, open_demo_episodes
from bridgevla.data.batch import PolicyBatch, collate
from bridgevla.data.preprocess import MemoryMarkers, add_memory_markers, observation_cloud, subsample_cloud


@dataclass
class DataConfig:
    root: str = "data/demos"  # a dataset folder written by `bridgevla generate`, or RLBench/COLOSSEUM/GemBench demos
    # "auto": RLBench-layout episode folders (``<task>/<variations>/episodes/episode<N>``) are read in place,
    # anything else as our own format; "bridgevla" / "rlbench" force one (benchmarks/rlbench/demos.py).
    format: Literal["auto", "bridgevla", "rlbench"] = "auto"
    image_size: int = 0  # RLBench-layout demos: read the images at this size (a whole divisor; 0 = as stored)
    keyframe_start: Literal["wrap", "clamp"] = "wrap"  # RLBench-layout demos: PerAct's heuristic; GemBench's clamps
    tasks: list[str] = field(default_factory=list)  # empty: every task folder under root
    episodes_per_task: int = 0  # use the first N episodes of each task; 0: all
    augmentation_every: int = 10  # demo augmentation stride in frames; 0: keyframe starts only
    instruction: Literal["random", "first"] = "random"  # which phrasing of the variation's instruction to train on
    cache: bool = True  # keep each start frame's cropped cloud in memory after its first decode

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError("data.root must name a dataset folder")
        for name in ("episodes_per_task", "augmentation_every", "image_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SampleRef:
    episode: int  # index into KeyframeDataset.episodes
    start: int  # tick of the observation
    target: int  # index into the episode's keyframes


def _target_keypose(ep: Episode, j: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(position, quaternion xyzw, gripper_open, ignore_collisions) of keyframe ``j``. Our demos store the scripted
    expert's commanded keyposes, one per keyframe; otherwise the recorded pose at the keyframe is the target and
    ignore_collisions comes from the ``rlbench.ignore_collisions`` (or ``ignore_collisions``) low-dim stream when
    there is one (RLBench/PerAct), else 0."""
    if len(ep.keyposes) == len(ep.keyframes):
        k = ep.keyposes[j]
        return k.position, k.quaternion, float(k.gripper_open), float(k.ignore_collisions)
    tick = ep.keyframes[j]
    ignore = ep.extra_lowdim.get("rlbench.ignore_collisions", ep.extra_lowdim.get("ignore_collisions"))
    return (ep.gripper_pose[tick, :3], ep.gripper_pose[tick, 3:], float(ep.gripper_open[tick]),
            float(np.asarray(ignore).reshape(-1)[tick]) if ignore is not None else 0.0)


def sample_refs(ep: Episode, episode_index: int, augmentation_every: int) -> list[SampleRef]:
    """Every (start frame → next keyframe) pair of one episode (see module doc)."""
    keyframes = np.asarray(ep.keyframes, dtype=np.int64)
    if keyframes.size == 0:
        return []
    starts = {0, *keyframes[:-1].tolist()}
    if augmentation_every > 0:
        starts.update(range(0, int(keyframes[-1]), augmentation_every))
    starts_arr = np.asarray(sorted(t for t in starts if ep.has_images(t)), dtype=np.int64)
    # The next keyframe strictly after each start: a binary search, not a loop over frames.
    target = np.searchsorted(keyframes, starts_arr, side="right")
    keep = target < keyframes.size
    return [SampleRef(episode_index, int(s), int(t)) for s, t in zip(starts_arr[keep], target[keep])]


class KeyframeDataset(Dataset):
    """Indexed by ``(micro_step, slot)`` keys (see module doc); ``len`` is the number of distinct samples."""

    def __init__(self, cfg: DataConfig, bounds: list[float], seed: int = 0, max_points: int = 0,
                 cameras: list[str] | None = None, memory: MemoryMarkers | None = None) -> None:
        """``max_points``, ``cameras`` and ``memory`` are the policy's input settings (``BridgeVLAConfig.max_points``
        / ``.cameras``, empty = every camera / ``.memory_markers()``), passed in so that training clouds are built
        exactly as ``act()`` builds test clouds. With memory, a sample's cloud carries markers at the keyposes the
        demo executed before its target (the keyframes before it)."""
        root = Path(cfg.root)
        if not root.is_dir():
            raise ValueError(f"data.root: {root} does not exist; generate demos first "
                             f"(bridgevla generate --out {root} ...)")
        if max_points < 0:
            raise ValueError(f"max_points must be >= 0, got {max_points}")
        self.cfg, self.bounds, self.seed, self.max_points = cfg, list(bounds), seed, max_points
        self.memory = memory
        self.cameras = list(cameras) if cameras else None
        by_task = self._open(root)
        self.tasks = list(by_task)
        self.episodes: list[Episode] = []
        self.by_task: list[list[SampleRef]] = []
        for task, episodes in by_task.items():
            refs: list[SampleRef] = []
            for ep in episodes:
                refs += sample_refs(ep, len(self.episodes), cfg.augmentation_every)
                self.episodes.append(ep)
            if not refs:
                raise ValueError(f"data.tasks: episodes of {task!r} under {root} yield no samples (no keyframes?)")
            self.by_task.append(refs)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _open(self, root: Path) -> dict[str, list[Episode]]:
        """``{task: episodes}`` from our format or, read in place, RLBench/COLOSSEUM/GemBench demo folders."""
        cfg = self.cfg
        if cfg.format == "rlbench" or (cfg.format == "auto" and is_demo_root(root)):
            opened = open_demo_episodes(root, cfg.tasks or None, episodes_per_task=cfg.episodes_per_task,
                                        cameras=self.cameras, image_size=cfg.image_size or None,
                                        keyframe_start=cfg.keyframe_start)
            if not opened:
                raise ValueError(f"data.root: {root} holds no RLBench-layout episodes")
            return opened
        tasks = list(cfg.tasks) or sorted(p.name for p in root.iterdir() if p.is_dir())
        if not tasks:
            raise ValueError(f"data.root: {root} holds no task folders")
        out = {}
        for task in tasks:
            paths = list_episodes(root, [task])
            if cfg.episodes_per_task:
                paths = paths[: cfg.episodes_per_task]
            if not paths:
                raise ValueError(f"data.tasks: no complete episodes of {task!r} under {root}")
            out[task] = [load_episode(p) for p in paths]
        return out

    def __len__(self) -> int:
        return sum(len(r) for r in self.by_task)

    def samples_per_task(self) -> dict[str, int]:
        return {t: len(r) for t, r in zip(self.tasks, self.by_task)}

    def cloud(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray]:
        """The cropped world cloud (points float32, colours float32 in [0, 1]) at a start frame."""
        key = (ref.episode, ref.start)
        if key in self._cache:
            return self._cache[key]
        obs = self.episodes[ref.episode].frame(ref.start)
        out = observation_cloud(obs, self.bounds, self.cameras)
        if self.cfg.cache:
            # uint8 colours would halve this, but the float copy is what collate wants; clouds are small.
            self._cache[key] = out
        return out

    def sample(self, ref: SampleRef, rng: np.random.Generator) -> dict[str, Any]:
        ep = self.episodes[ref.episode]
        points, colors = self.cloud(ref)
        points, colors = subsample_cloud(points, colors, self.max_points, rng)
        if self.memory is not None and self.memory.keyposes:
            done = [_target_keypose(ep, j) for j in range(max(0, ref.target - self.memory.keyposes), ref.target)]
            points, colors = add_memory_markers(points, colors, [(k[0], k[2]) for k in done], self.memory)
        pos, quat, grip, ignore = _target_keypose(ep, ref.target)
        text = ep.instructions[0] if self.cfg.instruction == "first" else \
            ep.instructions[int(rng.integers(len(ep.instructions)))]
        return {"points": points, "colors": colors, "instruction": text,
                "target_position": np.asarray(pos, dtype=np.float32),
                "target_quaternion": np.asarray(quat, dtype=np.float32),
                "target_gripper_open": grip, "target_ignore_collisions": ignore, "task": ep.task}

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        step, slot = key
        rng = np.random.default_rng([self.seed, step, slot])
        refs = self.by_task[int(rng.integers(len(self.by_task)))]
        return self.sample(refs[int(rng.integers(len(refs)))], rng)


class StepKeys(torch.utils.data.Sampler):
    """Infinite batches of keys ``[(k, slot) ...]`` for micro-steps ``k = start, start+1, …``. Under DDP, rank r
    takes slots ``r·B … r·B+B-1`` of each global batch, so ranks never see the same sample."""

    def __init__(self, start: int, batch_size: int, rank: int = 0) -> None:
        self.start, self.batch_size, self.rank = start, batch_size, rank

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        k = self.start
        first = self.rank * self.batch_size
        while True:
            yield [(k, first + j) for j in range(self.batch_size)]
            k += 1


class KeyframeBatches:
    """The trainer's batch source over a :class:`KeyframeDataset`."""

    def __init__(self, dataset: KeyframeDataset, batch_size: int, num_workers: int = 0, rank: int = 0) -> None:
        self.dataset, self.batch_size, self.num_workers, self.rank = dataset, batch_size, num_workers, rank

    def iterate(self, start: int) -> Iterator[PolicyBatch]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=StepKeys(start, self.batch_size, self.rank),
            collate_fn=collate,
            num_workers=self.num_workers,
            # Own generator: creating the iterator must not draw from the global RNG the model uses.
            generator=torch.Generator(),
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        return iter(loader)


