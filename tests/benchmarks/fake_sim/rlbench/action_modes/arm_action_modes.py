"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/action_modes/arm_action_modes.py::EndEffectorPoseViaPlanning``
(``FAKE_RLBENCH_FORK=gembench``: rjgpinel/RLBench @ ebdc339's). The control flow is the real one: shape and
unit-quaternion checks, the workspace check, planning (PerAct fork: with collision checking unless the action's
``ignore_collisions``; GemBench fork: unless ``collision_checking`` is off), one retry ignoring collisions, an
``InvalidActionError`` when no path is found, then the path is followed, stopping early on success."""

from __future__ import annotations

import numpy as np

from rlbench import FORK
from rlbench.backend.exceptions import InvalidActionError

try:
    from pyrep.const import ConfigurationPathAlgorithms as Algos
except ImportError:  # pragma: no cover
    Algos = None
from pyrep.errors import ConfigurationPathError


def assert_action_shape(action: np.ndarray, expected_shape: tuple):
    if np.shape(action) != expected_shape:
        raise InvalidActionError(
            f"Expected the action shape to be: {expected_shape}, but was shape: {np.shape(action)}")


def assert_unit_quaternion(quat):
    if not np.isclose(np.linalg.norm(quat), 1.0):
        raise InvalidActionError("Action contained non unit quaternion!")


class ArmActionMode:
    def action(self, scene, action: np.ndarray):
        raise NotImplementedError

    def action_shape(self, scene):
        raise NotImplementedError

    def set_control_mode(self, robot):
        robot.arm.set_control_loop_enabled(True)


class EndEffectorPoseViaPlanning(ArmActionMode):
    def __init__(self, absolute_mode: bool = True, frame: str = "world", collision_checking: bool = False):
        self._absolute_mode = absolute_mode
        self._frame = frame
        self._collision_checking = collision_checking
        self._callable_each_step = None
        if frame not in ["world", "end effector"]:
            raise ValueError("Expected frame to one of: 'world, 'end effector'")

    def _quick_boundary_check(self, scene, action: np.ndarray):
        if not scene.check_target_in_workspace(action[:3]):
            raise InvalidActionError("A path could not be found because the target is outside of workspace.")

    def _plan(self, scene, action, ignore_collisions: bool):
        kwargs = dict(quaternion=action[3:], relative_to=None, trials=100, max_configs=10, max_time_ms=10,
                      trials_per_goal=5, algorithm=Algos.RRTConnect)
        try:
            return scene.robot.arm.get_path(action[:3], ignore_collisions=ignore_collisions, **kwargs)
        except ConfigurationPathError as e:
            if ignore_collisions:
                raise InvalidActionError("A path could not be found. Most likely due to the target being "
                                         "inaccessible or a collison was detected.") from e
            try:  # try once more with collision checking disabled
                return scene.robot.arm.get_path(action[:3], ignore_collisions=True, **kwargs)
            except ConfigurationPathError as e2:
                raise InvalidActionError("A path could not be found. Most likely due to the target being "
                                         "inaccessible or a collison was detected.") from e2

    def _follow(self, scene, path) -> None:
        done = False
        while not done:
            done = path.step()
            scene.step()
            success, _ = scene.task.success()
            if success and self._callable_each_step is None:
                break

    if FORK == "gembench":
        def action(self, scene, action: np.ndarray):
            assert_action_shape(action, (7,))
            assert_unit_quaternion(action[3:])
            self._quick_boundary_check(scene, action)
            self._follow(scene, self._plan(scene, action, ignore_collisions=not self._collision_checking))
    else:
        def action(self, scene, action: np.ndarray, ignore_collisions: bool = True):
            assert_action_shape(action, (7,))
            assert_unit_quaternion(action[3:])
            self._quick_boundary_check(scene, action)
            self._follow(scene, self._plan(scene, action, ignore_collisions))

    def action_shape(self, scene) -> tuple:
        return (7,)
