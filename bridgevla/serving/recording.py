"""Demonstrations on the robot, written in our dataset format (docs/dataset.md) so that fine-tuning on a handful of
real demos is ``bridgevla train data.root=<out>``.

The arm is moved by hand (Franka's hand-guiding buttons: kinesthetic teaching) or by any teleoperation that moves
it; the recorder only reads its state at ``rate_hz`` and the cameras every ``image_every`` ticks. Keyframes are
marked by key presses — ``k`` marks the current pose, ``g`` toggles the gripper and marks the pose after it
(MoveArmThenGripper: the keypose's gripper state is the one after the action), ``d`` ends the demo, ``q`` (the stop
key) discards it — or found afterwards by the PerAct keyframe heuristic (``keyframes: heuristic``; every tick
then has images). The keypose of each keyframe is the recorded end-effector pose and gripper state there.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.dataset import Episode, episode_dir, list_episodes, save_episode
from benchmarks.protocol import Keypose, Observation


@dataclass
class RecordConfig:
    task: str = "real_task"  # folder name in the dataset
    instruction: str = ""  # what the policy will be told (required)
    out: str = "data/real"  # dataset root
    variation: int = 0
    rate_hz: float = 10.0  # low-dim state sampling rate
    image_every: int = 5  # ticks between camera frames (keyframe ticks always have images)
    keyframes: Literal["key", "heuristic"] = "key"
    ignore_collisions: bool = True  # the flag stored with every keypose (real arms move straight to the pose)
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.image_every < 1 or self.max_seconds <= 0:
            raise ValueError("record.rate_hz and max_seconds must be > 0, image_every >= 1")


def _observe(arm: Any, cameras: Any, images: bool, instruction: str, task: str) -> Observation:
    s = arm.state()
    frames = cameras.read(s.pose) if images else {}
    return Observation(frames, np.asarray(s.pose, float), 1.0 if s.gripper_open else 0.0,
                       np.asarray(s.joint_positions, float), np.asarray(s.joint_velocities, float), [instruction],
                       task=task)


def next_index(root: str | Path, task: str) -> int:
    root = Path(root)
    if not root.is_dir():
        return 0
    done = [int(p.name.split("_")[-1]) for p in list_episodes(root, [task])]
    return max(done) + 1 if done else 0


def record_demo(arm: Any, cameras: Any, operator: Any, cfg: RecordConfig, index: int | None = None) -> Path | None:
    """Record one demo (``arm`` is a SafeArm, so gripper commands still honour the stop key); returns the episode
    folder, or None when the operator stopped it."""
    if not cfg.instruction.strip():
        raise ValueError("record.instruction must say what the demo does")
    every = 1 if cfg.keyframes == "heuristic" else cfg.image_every
    observations: list[Observation] = []
    marks: list[int] = []
    period = 1.0 / cfg.rate_hz
    start = time.monotonic()
    operator.show("recording: k = keyframe, g = toggle gripper (+ keyframe), d = done, q = discard")
    while time.monotonic() - start < cfg.max_seconds:
        if operator.stop_requested():
            operator.show("demo discarded")
            return None
        tick = len(observations)
        key = operator.poll_key()
        if key == "g":
            arm.set_gripper(not arm.state().gripper_open)
        mark = key in ("k", "g") or (key == "d" and cfg.keyframes == "key" and tick not in marks)
        observations.append(_observe(arm, cameras, mark or tick % every == 0 or key == "d", cfg.instruction,
                                     cfg.task))
        if mark and cfg.keyframes == "key":
            marks.append(tick)
        if key == "d":
            break
        time.sleep(max(0.0, start + (tick + 1) * period - time.monotonic()))
    ep = Episode.from_observations(observations, task=cfg.task, variation=cfg.variation, seed=0,
                                   index=0, keyposes=[], success=True, instructions=[cfg.instruction])
    keyframes = marks if cfg.keyframes == "key" else ep.keyframes
    if not keyframes:
        raise ValueError("the demo has no keyframes (press k at each key pose, or use keyframes: heuristic)")
    keyposes = [Keypose(ep.gripper_pose[t, :3], ep.gripper_pose[t, 3:], ep.gripper_open[t] > 0.5,
                        cfg.ignore_collisions) for t in keyframes]
    index = next_index(cfg.out, cfg.task) if index is None else index
    ep = dataclasses.replace(ep, index=index, keyframes=keyframes, keyposes=keyposes,
                             extra={"source": "bridgevla robot record", "keyframe_mode": cfg.keyframes,
                                    "rate_hz": cfg.rate_hz, "image_every": every})
    path = save_episode(ep, episode_dir(cfg.out, cfg.task, index))
    operator.show(f"saved {len(observations)} ticks, {len(keyframes)} keyframes to {path}")
    return path
