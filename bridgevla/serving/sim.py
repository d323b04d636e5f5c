"""The simulated robot: the embedded MuJoCo environment as the arm and the cameras, so the runner, the server and
the safety layer run end to end without hardware. An approved keypose becomes ``env.step(keypose)`` (planning,
motion, MoveArmThenGripper), exactly what ``bridgevla eval`` does, so both give the same episodes."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.protocol import CameraFrame, Environment, Keypose, Observation
from bridgevla.serving.arm import ArmResult, ArmState
from bridgevla.serving.safety import ApprovedKeypose, require_approved


class SimRobot:
    """One environment episode seen as an arm (``arm``) and a camera rig (``cameras``)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.observation: Observation | None = None
        self.arm = SimArm(self)
        self.cameras = SimCameras(self)

    def reset(self, task: str, variation: int, seed: int) -> Observation:
        self.observation = self.env.reset(task, variation, seed)
        return self.observation

    def _obs(self) -> Observation:
        if self.observation is None:
            raise RuntimeError("SimRobot: call reset(task, variation, seed) first")
        return self.observation


class SimArm:
    def __init__(self, robot: SimRobot) -> None:
        self.robot = robot

    def state(self) -> ArmState:
        o = self.robot._obs()
        return ArmState(np.asarray(o.gripper_pose, float).copy(), bool(o.gripper_open > 0.5),
                        np.asarray(o.joint_positions, float).copy(), np.asarray(o.joint_velocities, float).copy())

    def execute(self, keypose: ApprovedKeypose) -> ArmResult:
        k = require_approved(keypose)
        t0 = time.perf_counter()
        obs, success, done, info = self.robot.env.step(k.keypose())
        self.robot.observation = obs
        error = info.get("error") if isinstance(info, dict) else None
        return ArmResult(error is None, error, bool(success), bool(done), time.perf_counter() - t0)

    def set_gripper(self, open_: bool) -> None:
        """Open or close in place: the simulator executes keyposes only, so this is one to the current pose with the
        new gripper state (how the recorder's gripper key acts on the simulated arm)."""
        pose = self.state().pose
        obs, _, _, info = self.robot.env.step(Keypose(pose[:3].copy(), pose[3:].copy(), bool(open_), False))
        self.robot.observation = obs
        if isinstance(info, dict) and info.get("error"):
            raise RuntimeError(f"simulated gripper {'open' if open_ else 'close'} failed: {info['error']}")

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimCameras:
    def __init__(self, robot: SimRobot) -> None:
        self.robot = robot

    @property
    def names(self) -> list[str]:
        return list(self.robot._obs().cameras)

    def read(self, ee_pose: np.ndarray | None = None) -> dict[str, CameraFrame]:
        return dict(self.robot._obs().cameras)

    def close(self) -> None:
        pass
