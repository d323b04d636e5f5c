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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from rendering.bounds import SceneBounds, clamp_to_bounds
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
# Metres a keypose may lie outside a workspace and still be clamped onto its surface; further out it is refused.
WORKSPACE_TOLERANCE = 0.02


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
        points, colors = self.point_cloud_tensor()
        return points.numpy(), colors.numpy()

    def point_cloud_tensor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`point_cloud` as CPU tensors (points float32, colours uint8), computed in float32 throughout (depth
        is float32 metres; float32 keeps world points within ~1 µm of a float64 computation at a few metres)."""
        return _clouds([self])


def _clouds(frames: list[CameraFrame]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated world points (float32) and colours (uint8) of ``frames``, in order; frames of one image size go
    through one batched ``depth_to_world`` call."""
    shapes = {f.depth.shape for f in frames}
    if len(shapes) == 1:
        depth = torch.from_numpy(np.stack([np.asarray(f.depth, dtype=np.float32) for f in frames]))
        k = torch.from_numpy(np.stack([np.asarray(f.intrinsics, dtype=np.float32) for f in frames]))
        e = torch.from_numpy(np.stack([np.asarray(f.extrinsics, dtype=np.float32) for f in frames]))
        points = depth_to_world(depth, k, e).reshape(-1, 3)
    else:
        points = torch.cat([_clouds([f])[0] for f in frames])
    colors = torch.from_numpy(np.concatenate([f.rgb.reshape(-1, 3) for f in frames]))
    return points, colors


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
        points, colors = self.point_cloud_tensor(cameras)
        return points.numpy(), colors.numpy()

    def point_cloud_tensor(self, cameras: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`point_cloud` as CPU tensors: points (N, 3) float32 (NaN where no depth), colours (N, 3) uint8."""
        names = list(self.cameras) if cameras is None else cameras
        missing = [n for n in names if n not in self.cameras]
        if missing:
            raise ValueError(f"cameras {missing} not in observation (has {sorted(self.cameras)})")
        if not names:  # no cameras: an empty cloud, which the policy refuses with a clear error
            return torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.uint8)
        return _clouds([self.cameras[n] for n in names])


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


class KeyposeRejected(ValueError):
    """A keypose that must not be executed. The message says why; for a position outside the workspace it quotes the
    requested position and the allowed box (``requested``, ``allowed`` hold them too)."""

    def __init__(self, message: str, requested: np.ndarray | None = None,
                 allowed: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> None:
        super().__init__(message)
        self.requested = requested
        self.allowed = allowed


@dataclass(frozen=True)
class GuardReport:
    """What :class:`WorkspaceGuard` did to one keypose."""

    requested: np.ndarray  # (3,) the position asked for
    executed: np.ndarray  # (3,) the position let through (clamped into the workspace)
    distance: float  # metres between the two (0: inside)

    @property
    def clamped(self) -> bool:
        return self.distance > 0


def _fmt(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(x):.3f}" for x in v) + ")"


@dataclass(frozen=True)
class WorkspaceGuard:
    """The one check between a keypose and anything that executes it (the evaluation runner, simulators, the robot
    runner): finite position and quaternion, a non-zero quaternion, and a position inside ``bounds``. A position at
    most ``tolerance`` metres outside is clamped onto the box (decoding and rounding put honest predictions a hair
    outside); further out the keypose is refused with :class:`KeyposeRejected`, quoting requested vs allowed."""

    bounds: SceneBounds
    tolerance: float = WORKSPACE_TOLERANCE

    def __post_init__(self) -> None:
        if not isinstance(self.bounds, SceneBounds):
            raise ValueError(f"bounds must be a SceneBounds, got {type(self.bounds).__name__}")
        if not (self.tolerance >= 0):  # NaN fails too
            raise ValueError(f"tolerance must be >= 0 metres, got {self.tolerance}")

    @property
    def allowed(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.bounds.lo, self.bounds.hi

    def check(self, keypose: Keypose) -> tuple[Keypose, GuardReport]:
        """``(keypose to execute, report)`` or :class:`KeyposeRejected`."""
        if not isinstance(keypose, Keypose):
            raise KeyposeRejected(f"expected a Keypose, got {type(keypose).__name__}")
        pos, quat = keypose.position, keypose.quaternion
        if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
            raise KeyposeRejected(f"keypose has non-finite values: position {pos.tolist()}, quaternion {quat.tolist()}",
                                  requested=pos.copy(), allowed=self.allowed)
        if np.linalg.norm(quat) < 1e-6:
            raise KeyposeRejected(f"keypose quaternion {quat.tolist()} has zero norm", requested=pos.copy(),
                                  allowed=self.allowed)
        executed = clamp_to_bounds(torch.from_numpy(pos), self.bounds).numpy()
        distance = float(np.linalg.norm(pos - executed))
        lo, hi = self.allowed
        if distance > self.tolerance:
            raise KeyposeRejected(
                f"keypose outside the workspace: requested position {_fmt(pos)} lies {distance:.3f} m outside the "
                f"allowed box {_fmt(lo)}..{_fmt(hi)} (tolerance {self.tolerance:g} m)",
                requested=pos.copy(), allowed=self.allowed)
        report = GuardReport(pos.copy(), executed, distance)
        if distance == 0:
            return keypose, report
        return Keypose(executed, quat.copy(), keypose.gripper_open, keypose.ignore_collisions), report


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


def environment_workspace(env: Any) -> SceneBounds | None:
    """The box an environment executes keyposes in, when it declares one (an optional ``workspace()`` method
    returning ``SceneBounds``); None otherwise."""
    fn = getattr(env, "workspace", None)
    if not callable(fn):
        return None
    box = fn()
    if not isinstance(box, SceneBounds):
        raise ValueError(f"{type(env).__name__}.workspace() must return SceneBounds, got {type(box).__name__}")
    return box


# What counts as "moved" for an environment's ``diagnose()``, shared so that every benchmark's diagnoses mean the same:
DIAGNOSIS_MOVE = 0.02  # m: an object that moved less since reset is "not moved" ...
DIAGNOSIS_TURN = 15.0  # degrees: ... unless it turned more (a tap's handle or a lid turns in place)


def environment_diagnosis(env: Any) -> str | None:
    """What the episode just run did to the scene, when the environment can say (an optional ``diagnose()`` method
    returning a short sentence, e.g. the embedded benchmark's "moved a distractor: block2"); None otherwise. Failure
    analysis files an episode that failed without an error under it (``bridgevla.evaluation.failures``)."""
    fn = getattr(env, "diagnose", None)
    if not callable(fn):
        return None
    text = fn()
    if text is not None and not isinstance(text, str):
        raise ValueError(f"{type(env).__name__}.diagnose() must return a string or None, got {type(text).__name__}")
    return text
