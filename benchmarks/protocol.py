"""The one environment protocol every simulator, harness and robot speaks.

Data flows one way: an environment produces an :class:`Observation`, a policy turns it into a
:class:`Keypose`, the environment executes it. Nothing here knows about models or training.

Conventions (fixed, see docs/CONTRIBUTING.md):
- positions in metres in the environment's world frame (RLBench's for RLBench-like benchmarks);
- quaternions are **xyzw** (scalar last);
- camera extrinsics are 4x4 camera-to-world; intrinsics 3x3 pinhole with positive focal lengths in our own
  format (the RLBench importer converts their negative-focal convention);
- depth is float32 metres along the camera's optical axis (z in camera frame); 0 or non-finite = no return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from rendering.cameras import depth_to_world

MAX_EPISODE_KEYPOSES = 25
# Runners hand environments the seed ``offset + EPISODE_STRIDE * run + episode``: harnesses whose test episodes are
# stored (RLBench's test demos, GemBench's per-seed sets) recover the run and the episode from it with divmod.
EPISODE_STRIDE = 10_000


def episode_seed(run: int, episode: int, offset: int = 0) -> int:
    """The environment seed of episode ``episode`` of evaluation run ``run`` (see ``EPISODE_STRIDE``)."""
    if not 0 <= episode < EPISODE_STRIDE:
        raise ValueError(f"episode must be in [0, {EPISODE_STRIDE}), got {episode}")
    if run < 0 or offset < 0:
        raise ValueError(f"run and offset must be >= 0, got run={run}, offset={offset}")
    return offset + EPISODE_STRIDE * run + episode


def split_episode_seed(seed: int, offset: int = 0) -> tuple[int, int]:
    """``(run, episode)`` back from :func:`episode_seed`."""
    if seed < offset:
        raise ValueError(f"seed {seed} is below the offset {offset}")
    run, episode = divmod(seed - offset, EPISODE_STRIDE)
    return int(run), int(episode)


class SimulatorError(RuntimeError):
    """The simulator itself failed (crashed, hung, lost its state), not the policy: the episode is void rather
    than failed. Environments raise it from ``reset``/``step`` after cleaning up, and relaunch on the next
    ``reset``; runners rerun the episode from the start (a bounded number of times)."""


@dataclass
class CameraFrame:
    """One RGB-D camera at one instant."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    intrinsics: np.ndarray  # (3, 3) float, pinhole, positive focal lengths
    extrinsics: np.ndarray  # (4, 4) float, camera-to-world

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        if self.depth.shape != self.rgb.shape[:2]:
            raise ValueError(f"depth must be {self.rgb.shape[:2]}, got {self.depth.shape}")
        if self.intrinsics.shape != (3, 3):
            raise ValueError(f"intrinsics must be (3, 3), got {self.intrinsics.shape}")
        if self.extrinsics.shape != (4, 4):
            raise ValueError(f"extrinsics must be (4, 4), got {self.extrinsics.shape}")

    def point_cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """World-frame points (H*W, 3) float32 and their colours (H*W, 3) uint8.

        Pixels without a depth return NaN points, so that callers can keep the image layout and drop them
        in one place (the cropping step), rather than each caller inventing its own filter.
        """
        world = depth_to_world(
            torch.from_numpy(np.asarray(self.depth, dtype=np.float64)),
            torch.from_numpy(np.asarray(self.intrinsics, dtype=np.float64)),
            torch.from_numpy(np.asarray(self.extrinsics, dtype=np.float64)),
        ).numpy()
        return world.astype(np.float32), self.rgb.reshape(-1, 3)


@dataclass
class Observation:
    """What a policy sees at one decision point."""

    cameras: dict[str, CameraFrame]
    gripper_pose: np.ndarray  # (7,) xyz + quaternion xyzw
    gripper_open: float  # 1.0 open, 0.0 closed
    joint_positions: np.ndarray  # (n_joints,)
    joint_velocities: np.ndarray  # (n_joints,)
    instructions: list[str]  # phrasings of the current variation's goal; [0] is the one shown to the policy
    task: str = ""
    variation: int = 0
    episode: int = 0
    misc: dict[str, Any] = field(default_factory=dict)

    def point_cloud(self, cameras: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated world-frame cloud (N, 3) float32 (NaN where no depth) and colours (N, 3) uint8."""
        names = list(self.cameras) if cameras is None else cameras
        missing = [n for n in names if n not in self.cameras]
        if missing:
            raise ValueError(f"cameras {missing} not in observation (has {sorted(self.cameras)})")
        parts = [self.cameras[n].point_cloud() for n in names]
        return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


@dataclass
class Keypose:
    """The next end-effector target, as RLBench's MoveArmThenGripper(EndEffectorPoseViaPlanning, Discrete)."""

    position: np.ndarray  # (3,) metres, world frame
    quaternion: np.ndarray  # (4,) xyzw
    gripper_open: bool
    ignore_collisions: bool

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, dtype=np.float64).reshape(-1)
        self.quaternion = np.asarray(self.quaternion, dtype=np.float64).reshape(-1)
        if self.position.shape != (3,):
            raise ValueError(f"position must have 3 values, got {self.position.shape}")
        if self.quaternion.shape != (4,):
            raise ValueError(f"quaternion must have 4 values (xyzw), got {self.quaternion.shape}")
        self.gripper_open = bool(self.gripper_open)
        self.ignore_collisions = bool(self.ignore_collisions)

    def to_array(self) -> np.ndarray:
        """RLBench's action vector [x, y, z, qx, qy, qz, qw, gripper_open, ignore_collisions]."""
        return np.concatenate(
            [self.position, self.quaternion, [float(self.gripper_open), float(self.ignore_collisions)]]
        )

    @classmethod
    def from_array(cls, action: np.ndarray) -> Keypose:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape not in ((8,), (9,)):
            raise ValueError(f"action must have 8 or 9 values, got {a.shape}")
        return cls(a[:3], a[3:7], a[7] > 0.5, bool(a[8] > 0.5) if a.shape[0] == 9 else True)


class StepResult(NamedTuple):
    """What ``step`` returns; unpacks as ``obs, success, done, info``."""

    observation: Observation
    success: bool
    done: bool
    info: dict[str, Any]


@runtime_checkable
class Environment(Protocol):
    """A benchmark or robot. Implementations must never let a bad keypose escape as an exception:
    an unreachable or invalid keypose ends the episode as a failure (``done=True, success=False`` with
    ``info["error"]`` saying why). The one exception they may raise is :class:`SimulatorError`, when the simulator
    itself broke."""

    def tasks(self) -> list[str]: ...

    def variations(self, task: str) -> int: ...

    def reset(self, task: str, variation: int, seed: int) -> Observation: ...

    def step(self, keypose: Keypose) -> StepResult: ...

    def close(self) -> None: ...
