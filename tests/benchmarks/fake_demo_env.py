"""A tiny deterministic stand-in for ``benchmarks.embedded.EmbeddedEnv`` (the INTERFACES.md contract).

Kinematics are trivial on purpose: joint i of 7 moves linearly to the target, the gripper sits at the first three
joint values, so every recorded tick is predictable. Two cameras look down at a table (z = 0) with one box on it;
depth is ray-cast analytically (vectorised), so point clouds are exact and the cameras must agree on the box top.
It is fast (a demo in a few ms) and doubles as the test environment for generation, the format and RLBench I/O.
"""

from __future__ import annotations

import numpy as np

from benchmarks.protocol import CameraFrame, Keypose, Observation, StepResult
from rendering import SceneBounds

TASKS = {"reach_fake": 2, "pick_fake": 3, "always_fail_fake": 1}
BOX_HALF = 0.05  # m
BOX_HEIGHT = 0.1  # m
TICKS_PER_MOVE = 8
GRIPPER_TICKS = 1  # like EmbeddedEnv: the gripper changes state within one tick


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world 4x4 for an OpenCV-style camera (x right, y down, z forward)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], axis=1)
    m[:3, 3] = eye
    return m


def raycast(extrinsics: np.ndarray, intrinsics: np.ndarray, size: int, box_xy: np.ndarray) -> tuple:
    """Depth (z in camera) and RGB of the table plane z=0 (|x|,|y| <= 1) plus a box of height BOX_HEIGHT."""
    v, u = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    rays_cam = np.stack(
        [(u - intrinsics[0, 2]) / intrinsics[0, 0], (v - intrinsics[1, 2]) / intrinsics[1, 1], np.ones_like(u)], -1
    )
    rays = rays_cam @ extrinsics[:3, :3].T  # world direction per unit camera depth
    eye = extrinsics[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = (0.0 - eye[2]) / rays[..., 2]
        t_box = (BOX_HEIGHT - eye[2]) / rays[..., 2]
    hit_table = eye[:2] + t_table[..., None] * rays[..., :2]
    hit_box = eye[:2] + t_box[..., None] * rays[..., :2]
    on_table = (t_table > 0) & np.all(np.abs(hit_table) <= 1.0, axis=-1)
    on_box = (t_box > 0) & np.all(np.abs(hit_box - box_xy) <= BOX_HALF, axis=-1)
    depth = np.where(on_box, t_box, np.where(on_table, t_table, 0.0)).astype(np.float32)
    rgb = np.zeros((size, size, 3), dtype=np.uint8)
    rgb[on_table] = (90, 60, 30)
    rgb[on_box] = (200, 20, 20)
    return depth, rgb


class FakeDemoEnv:
    """Speaks ``Environment`` plus expert_keyposes / start_recording / stop_recording / instructions."""

    def __init__(self, config: object | None = None, image_size: int = 32) -> None:
        self.image_size = image_size
        f = image_size * 0.9
        self.intrinsics = np.array([[f, 0, (image_size - 1) / 2], [0, f, (image_size - 1) / 2], [0, 0, 1.0]])
        self.static_cams = {
            "front": look_at(np.array([1.2, 0.0, 0.9]), np.zeros(3), np.array([0, 0, 1.0])),
            "overhead": look_at(np.array([0.0, 0.0, 1.5]), np.zeros(3), np.array([1.0, 0, 0])),
        }
        self._recording: list[Observation] | None = None

    # -- task catalogue -------------------------------------------------------------------------------------
    def tasks(self) -> list[str]:
        return list(TASKS)

    def task_names(self) -> list[str]:
        return self.tasks()

    def variations(self, task: str) -> int:
        return TASKS[task]

    def instructions(self, task: str, variation: int) -> list[str]:
        return [f"do {task} number {variation}", f"please {task} ({variation})"]

    # -- episode --------------------------------------------------------------------------------------------
    def reset(self, task: str, variation: int, seed: int) -> Observation:
        if task not in TASKS:
            raise ValueError(f"task {task!r} unknown")
        rng = np.random.default_rng([seed, variation, len(task)])
        self.task, self.variation, self.seed = task, variation, seed
        self.box_xy = rng.uniform(-0.4, 0.4, size=2)
        self.q = np.concatenate([[0.0, 0.0, 0.5], rng.uniform(-0.2, 0.2, size=4)])
        self.qd = np.zeros(7)
        self.open = 1.0
        self.steps = 0
        self.tick = 0
        self._recording = None
        top = np.array([*self.box_xy, BOX_HEIGHT])
        quat = np.array([1.0, 0.0, 0.0, 0.0])  # pointing down, xyzw
        self.plan = [
            Keypose(top + [0, 0, 0.15], quat, True, False),
            Keypose(top + [0, 0, 0.02], quat, task != "pick_fake", False),
            Keypose(top + [0, 0, 0.30], quat, task != "pick_fake", True),
        ]
        return self._observe(with_cameras=True)

    def expert_keyposes(self) -> list[Keypose]:
        return list(self.plan)

    def workspace(self) -> SceneBounds:
        """Where this toy world's keyposes live (boxes at |x|, |y| <= 0.4, up to 0.4 m high): the workspace guard
        checks against it instead of the runner's default (RLBench-sized) bounds."""
        return SceneBounds((-0.6, -0.6, -0.1), (0.6, 0.6, 1.1))

    def start_recording(self, image_every: int = 10) -> None:
        if image_every < 1:
            raise ValueError(f"image_every must be >= 1, got {image_every}")
        self.image_every = image_every
        self.tick = 0
        self._recording = [self._observe(with_cameras=True)]  # the first tick: the state before any motion

    def stop_recording(self) -> list[Observation]:
        out, self._recording = self._recording or [], None
        return out

    def step(self, keypose: Keypose) -> StepResult:
        start = self.q.copy()
        goal = np.concatenate([keypose.position, start[3:]])
        for k in range(1, TICKS_PER_MOVE + 1):
            s = k / TICKS_PER_MOVE
            self.q = start + s * (goal - start)
            # speed is high while moving and exactly zero on the arrival tick
            self.qd = (goal - start) if k < TICKS_PER_MOVE else np.zeros(7)
            self._tick(last=k == TICKS_PER_MOVE and keypose.gripper_open == bool(self.open))
        if keypose.gripper_open != bool(self.open):
            for k in range(GRIPPER_TICKS):
                self.open = float(keypose.gripper_open)
                self._tick(last=k == GRIPPER_TICKS - 1)
        self.steps += 1
        success = self.steps == len(self.plan) and self.task != "always_fail_fake"
        done = success or self.steps >= len(self.plan)
        return StepResult(self._observe(with_cameras=True), success, done, {})

    def close(self) -> None:
        pass

    # -- internals ------------------------------------------------------------------------------------------
    def _tick(self, last: bool) -> None:
        self.tick += 1
        if self._recording is not None:
            images = last or self.tick % self.image_every == 0
            self._recording.append(self._observe(with_cameras=images))

    def _observe(self, with_cameras: bool) -> Observation:
        cams = {}
        if with_cameras:
            wrist = look_at(self.q[:3] + [0, 0, 0.3], self.q[:3] - [0, 0, 1.0], np.array([1.0, 0, 0]))
            for name, ext in [*self.static_cams.items(), ("wrist", wrist)]:
                depth, rgb = raycast(ext, self.intrinsics, self.image_size, self.box_xy)
                cams[name] = CameraFrame(rgb, depth, self.intrinsics.copy(), ext)
        return Observation(
            cameras=cams,
            gripper_pose=np.concatenate([self.q[:3], [1.0, 0.0, 0.0, 0.0]]),
            gripper_open=self.open,
            joint_positions=self.q.copy(),
            joint_velocities=self.qd.copy(),
            instructions=self.instructions(self.task, self.variation),
            task=self.task,
            variation=self.variation,
            misc={"keyposes_done": self.steps},  # as EmbeddedEnv: keyposes finished when this tick was recorded
        )
