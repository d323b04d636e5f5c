"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/action_modes/gripper_action_modes.py::Discrete``."""

from __future__ import annotations

import numpy as np

from rlbench.backend.exceptions import InvalidActionError


class GripperActionMode:
    def action(self, scene, action: np.ndarray):
        raise NotImplementedError

    def action_shape(self, scene):
        raise NotImplementedError


class Discrete(GripperActionMode):
    def __init__(self, attach_grasped_objects: bool = True, detach_before_open: bool = True):
        self._attach_grasped_objects = attach_grasped_objects
        self._detach_before_open = detach_before_open

    def _actuate(self, scene, action):
        done = False
        while not done:
            done = scene.robot.gripper.actuate(action, velocity=0.2)
            scene.pyrep.step()
            scene.task.step()

    def action(self, scene, action: np.ndarray):
        if np.shape(action) != (1,):
            raise InvalidActionError(f"Expected the action shape to be: (1,), but was: {np.shape(action)}")
        open_condition = all(x > 0.9 for x in scene.robot.gripper.get_open_amount())
        current_ee = 1.0 if open_condition else 0.0
        action = float(action[0] > 0.5)
        if current_ee != action:
            if action == 0.0 and self._attach_grasped_objects:
                for g_obj in scene.task.get_graspable_objects():
                    scene.robot.gripper.grasp(g_obj)
            else:
                scene.robot.gripper.release()
            self._actuate(scene, action)
            if action == 1.0:
                for _ in range(10):
                    scene.pyrep.step()
                    scene.task.step()

    def action_shape(self, scene) -> tuple:
        return (1,)
