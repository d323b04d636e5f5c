"""Arms: the small interface the runner drives, and the Franka through ``franky-control``.

An arm executes :class:`~bridgevla.serving.safety.ApprovedKeypose` objects only (``require_approved``): Cartesian
motion to an absolute pose in the robot's base frame, then the gripper (RLBench's MoveArmThenGripper). The
simulated twin is ``bridgevla.serving.sim.SimArm`` (the embedded MuJoCo environment).

franky facts used here (franky-control 2.0.0, TimSchneider42/franky: README @ 020d406, python/bind_robot.cpp @
35fe213): ``Robot(fci_hostname)``, ``recover_from_errors()``, ``relative_dynamics_factor =
RelativeDynamicsFactor(velocity, acceleration, jerk)``, ``set_collision_behavior(torque_thresholds (7),
force_thresholds (6))``, ``CartesianMotion(Affine(translation, quaternion_xyzw), ReferenceType.Absolute)``
(single use), ``move(motion)`` (blocking; stops the robot on Ctrl-C), ``current_cartesian_state.pose.
end_effector_pose`` (an ``Affine`` with ``.translation`` and ``.quaternion`` xyzw), ``current_joint_state.position /
.velocity``, ``Gripper(fci_hostname).grasp(width, speed, force, epsilon_inner, epsilon_outer)``, ``.open(speed)``,
``.move(width, speed)``, ``.width``; libfranka errors raise ``franky.ControlException`` (reflexes) or
``franky.CommandException``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bridgevla.serving.safety import ApprovedKeypose, require_approved

log = logging.getLogger("bridgevla.arm")


@dataclass
class ArmState:
    pose: np.ndarray  # (7,) TCP xyz + quaternion xyzw in the base frame
    gripper_open: bool
    joint_positions: np.ndarray
    joint_velocities: np.ndarray


@dataclass
class ArmResult:
    ok: bool
    error: str | None = None
    success: bool | None = None  # task success, where the arm can tell (simulation); None on a real robot
    done: bool = False  # the episode is over (simulation: success, failure or its keypose cap)
    seconds: float = 0.0


class Arm(Protocol):
    def state(self) -> ArmState: ...

    def execute(self, keypose: ApprovedKeypose) -> ArmResult: ...

    def set_gripper(self, open_: bool) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def import_franky() -> Any:
    try:
        import franky
    except ImportError as e:
        raise ImportError("the Franka arm needs franky-control (and a real-time kernel): pip install "
                          "'bridgevla[real]'; see docs/robot.md") from e
    return franky


@dataclass
class FrankyConfig:
    ip: str = "172.16.0.2"  # the FCI address set in Franka Desk
    # libfranka collision thresholds: contact torques (Nm, per joint) / forces (N, xyz + torques about xyz) above
    # these stop the arm with a reflex. Lower = more sensitive.
    torque_thresholds: list[float] = field(default_factory=lambda: [20.0] * 7)
    force_thresholds: list[float] = field(default_factory=lambda: [20.0] * 6)
    gripper_speed: float = 0.05  # m/s
    gripper_force: float = 20.0  # N
    # grasp(width=0) succeeds for any object narrower than the opening (epsilon_outer = 1 m): we do not know widths.
    grasp_epsilon_outer: float = 1.0
    open_width_threshold: float = 0.07  # a measured width above this counts as open (Franka hand: 0.08 max)
    recover_attempts: int = 1  # after a reflex: recover_from_errors() and retry the motion this many times

    def __post_init__(self) -> None:
        if len(self.torque_thresholds) != 7 or len(self.force_thresholds) != 6:
            raise ValueError("franka.torque_thresholds needs 7 values and franka.force_thresholds 6")
        if min(self.torque_thresholds + self.force_thresholds) <= 0:
            raise ValueError("franka collision thresholds must be > 0")
        if self.gripper_speed <= 0 or self.gripper_force <= 0 or self.recover_attempts < 0:
            raise ValueError("franka.gripper_speed and gripper_force must be > 0, recover_attempts >= 0")


class FrankyArm:
    """A Franka Panda / FR3 through franky. Dynamics come from each approval (the safety layer's factors)."""

    def __init__(self, config: FrankyConfig, franky: Any = None) -> None:
        self.config = config
        self.franky = franky or import_franky()
        self.robot = self.franky.Robot(config.ip)
        self.robot.recover_from_errors()
        self.robot.set_collision_behavior(list(config.torque_thresholds), list(config.force_thresholds))
        self.gripper = self.franky.Gripper(config.ip)
        self._dynamics: tuple[float, float, float] | None = None
        self._gripper_open = self._read_gripper_open()

    def _read_gripper_open(self) -> bool:
        return float(self.gripper.width) > self.config.open_width_threshold

    def _set_dynamics(self, dynamics: tuple[float, float, float]) -> None:
        if dynamics != self._dynamics:
            v, a, j = dynamics
            self.robot.relative_dynamics_factor = self.franky.RelativeDynamicsFactor(v, a, j)
            self._dynamics = dynamics

    def state(self) -> ArmState:
        ee = self.robot.current_cartesian_state.pose.end_effector_pose
        joints = self.robot.current_joint_state
        pose = np.concatenate([np.asarray(ee.translation, float).reshape(3),
                               np.asarray(ee.quaternion, float).reshape(4)])
        return ArmState(pose, self._gripper_open, np.asarray(joints.position, float).copy(),
                        np.asarray(joints.velocity, float).copy())

    def _move(self, k: ApprovedKeypose) -> None:
        f = self.franky
        for attempt in range(self.config.recover_attempts + 1):
            # A motion object is single-use in franky: a fresh one per attempt.
            motion = f.CartesianMotion(f.Affine(k.position.tolist(), k.quaternion.tolist()), f.ReferenceType.Absolute)
            try:
                self.robot.move(motion)
                return
            except f.ControlException as e:
                log.warning("motion stopped by a reflex (attempt %d): %s", attempt + 1, e)
                self.robot.recover_from_errors()
                if attempt == self.config.recover_attempts:
                    raise

    def set_gripper(self, open_: bool) -> None:
        c = self.config
        if open_:
            self.gripper.open(c.gripper_speed)
        else:
            # False when nothing was grasped (the fingers closed on air): still closed, which is what was asked.
            self.gripper.grasp(0.0, c.gripper_speed, c.gripper_force, epsilon_outer=c.grasp_epsilon_outer)
        self._gripper_open = bool(open_)

    def execute(self, keypose: ApprovedKeypose) -> ArmResult:
        k = require_approved(keypose)
        f = self.franky
        self._set_dynamics(k.dynamics)
        try:
            self._move(k)
            if k.gripper_open != self._gripper_open:
                self.set_gripper(k.gripper_open)
        except (f.ControlException, f.CommandException) as e:
            return ArmResult(False, f"{type(e).__name__}: {e}")
        return ArmResult(True)

    def stop(self) -> None:
        self.robot.stop()

    def close(self) -> None:
        pass
