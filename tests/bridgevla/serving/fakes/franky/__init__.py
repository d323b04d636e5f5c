"""A fake ``franky`` (franky-control 2.0.0) for tests: the names, argument names and defaults of the real bindings,
no robot. Read from TimSchneider42/franky: python/bind_robot.cpp @ 35fe213e185281eb239c96d767be0c64c3a9cc6c
(Robot, Gripper, set_collision_behavior overloads, move(motion, asynchronous=False)), the Affine binding
(``Affine(translation=[0, 0, 0], quaternion=[0, 0, 0, 1])`` with Eigen's xyzw ``coeffs``, ``.translation``,
``.quaternion``, ``.matrix``, ``.inverse``, ``*``), python/bind_errors.cpp @ 06f97dec (exception names), the
CartesianMotion binding (``target, reference_type=ReferenceType.Absolute, relative_dynamics_factor=1.0,
return_when_finished=True, ee_frame=None``) and README.md @ 020d406 (state properties, gripper helpers).

Every call that would reach hardware is appended to :data:`CALLS` as ``(name, args dict)``; ``Robot.fail_next``
makes the next ``move`` raise a reflex (``ControlException``) as libfranka does. Motions are single-use
(``MotionReuseException``), as in franky. A moved robot is at the motion's target.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

CALLS: list[tuple[str, dict[str, Any]]] = []


def reset_calls() -> None:
    CALLS.clear()


class Exception(RuntimeError):  # noqa: A001 - franky.Exception is franka::Exception's name
    pass


class CommandException(Exception):
    pass


class ControlException(Exception):
    pass


class InvalidOperationException(Exception):
    pass


class MotionReuseException(Exception):
    pass


class GripperException(Exception):
    pass


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(np.asarray(q, float)).as_matrix()  # scipy's quaternions are xyzw, like Eigen's coeffs


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(m).as_quat()


class Affine:
    def __init__(self, translation: Any = (0.0, 0.0, 0.0), quaternion: Any = (0.0, 0.0, 0.0, 1.0)) -> None:
        t = np.asarray(translation, dtype=np.float64)
        if t.shape == (4, 4):  # the transformation_matrix overload
            self._m = t.copy()
            return
        q = np.asarray(quaternion, dtype=np.float64)
        if t.shape != (3,) or q.shape != (4,):
            raise TypeError("Affine(translation: 3 floats, quaternion: 4 floats xyzw)")
        self._m = np.eye(4)
        self._m[:3, :3] = _quat_to_matrix(q)
        self._m[:3, 3] = t

    @property
    def translation(self) -> np.ndarray:
        return self._m[:3, 3].copy()

    @property
    def quaternion(self) -> np.ndarray:
        return _matrix_to_quat(self._m[:3, :3])

    @property
    def matrix(self) -> np.ndarray:
        return self._m.copy()

    @property
    def inverse(self) -> Affine:
        return Affine(np.linalg.inv(self._m))

    def __mul__(self, other: Affine) -> Affine:
        return Affine(self._m @ other._m)


class ReferenceType(enum.Enum):
    Absolute = 0
    Relative = 1


class RelativeDynamicsFactor:
    def __init__(self, velocity: float = 1.0, acceleration: float = 1.0, jerk: float = 1.0) -> None:
        for v in (velocity, acceleration, jerk):
            if not 0 < v <= 1:
                raise ValueError("relative dynamics factors must be in (0, 1]")
        self.velocity, self.acceleration, self.jerk = float(velocity), float(acceleration), float(jerk)


class CartesianMotion:
    def __init__(self, target: Any, reference_type: ReferenceType = ReferenceType.Absolute,
                 relative_dynamics_factor: Any = 1.0, return_when_finished: bool = True, ee_frame: Any = None) -> None:
        if not isinstance(target, Affine):
            raise TypeError("CartesianMotion target must be an Affine (or RobotPose/CartesianState)")
        self.target, self.reference_type = target, reference_type
        self.relative_dynamics_factor = relative_dynamics_factor
        self._used = False


class _Pose:
    def __init__(self, affine: Affine) -> None:
        self.end_effector_pose = affine


class _CartesianState:
    def __init__(self, affine: Affine) -> None:
        self.pose = _Pose(affine)


class _JointState:
    def __init__(self, q: np.ndarray, dq: np.ndarray) -> None:
        self.position, self.velocity = q, dq


def _vector(value: Any, n: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    v = list(value)
    if len(v) != n:
        raise TypeError(f"{name} must be a float or {n} floats")
    return [float(x) for x in v]


class Robot:
    # Where every fake robot starts: 0.5 m in front of the base, 0.4 m up, gripper pointing down.
    START = Affine([0.5, 0.0, 0.4], [1.0, 0.0, 0.0, 0.0])

    def __init__(self, fci_hostname: str, relative_dynamics_factor: Any = 1.0, default_torque_threshold: float = 20.0,
                 default_force_threshold: float = 30.0, **kwargs: Any) -> None:
        CALLS.append(("Robot", {"fci_hostname": fci_hostname}))
        self.fci_hostname = fci_hostname
        self._rdf = relative_dynamics_factor
        self._pose = Affine(Robot.START.matrix)
        self.has_errors = False
        self.fail_next: str | None = None

    @property
    def relative_dynamics_factor(self) -> Any:
        return self._rdf

    @relative_dynamics_factor.setter
    def relative_dynamics_factor(self, value: Any) -> None:
        if not isinstance(value, (RelativeDynamicsFactor, float, int)):
            raise TypeError("relative_dynamics_factor must be a float or RelativeDynamicsFactor")
        CALLS.append(("relative_dynamics_factor", {"value": value}))
        self._rdf = value

    def recover_from_errors(self) -> None:
        CALLS.append(("recover_from_errors", {}))
        self.has_errors = False

    def set_collision_behavior(self, torque_thresholds: Any, force_thresholds: Any) -> None:
        CALLS.append(("set_collision_behavior", {"torque_thresholds": _vector(torque_thresholds, 7, "torques"),
                                                 "force_thresholds": _vector(force_thresholds, 6, "forces")}))

    def move(self, motion: CartesianMotion, asynchronous: bool = False) -> None:
        if self.has_errors:
            raise InvalidOperationException("robot is in an error state: call recover_from_errors()")
        if motion._used:
            raise MotionReuseException("motion was already used")
        motion._used = True
        CALLS.append(("move", {"target": motion.target, "reference_type": motion.reference_type,
                               "asynchronous": asynchronous}))
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            self.has_errors = True
            raise ControlException(message)
        if motion.reference_type is ReferenceType.Absolute:
            self._pose = Affine(motion.target.matrix)
        else:
            self._pose = self._pose * motion.target

    def join_motion(self, timeout: float | None = None) -> bool:
        return True

    def stop(self) -> None:
        CALLS.append(("stop", {}))

    @property
    def current_cartesian_state(self) -> _CartesianState:
        return _CartesianState(Affine(self._pose.matrix))

    @property
    def current_joint_state(self) -> _JointState:
        return _JointState(np.zeros(7), np.zeros(7))


class Gripper:
    def __init__(self, fci_hostname: str) -> None:
        CALLS.append(("Gripper", {"fci_hostname": fci_hostname}))
        self._width = 0.08
        self.max_width = 0.08

    def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.005) -> bool:
        CALLS.append(("grasp", {"width": width, "speed": speed, "force": force, "epsilon_inner": epsilon_inner,
                                "epsilon_outer": epsilon_outer}))
        self._width = 0.0
        return False  # nothing between the fingers in a fake

    def move(self, width: float, speed: float) -> bool:
        CALLS.append(("gripper_move", {"width": width, "speed": speed}))
        self._width = width
        return True

    def open(self, speed: float) -> bool:
        CALLS.append(("open", {"speed": speed}))
        self._width = self.max_width
        return True

    def homing(self) -> bool:
        return True

    @property
    def width(self) -> float:
        return self._width

    @property
    def is_grasped(self) -> bool:
        return False
