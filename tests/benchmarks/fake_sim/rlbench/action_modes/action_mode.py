"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/action_modes/action_mode.py``: ``MoveArmThenGripper`` reads
``[arm (7), gripper (1), ignore_collisions (1)]``. With ``FAKE_RLBENCH_FORK=gembench`` it is rjgpinel/RLBench
@ ebdc339's: ``[arm (7), gripper (1)]`` and no per-action collision flag."""

from __future__ import annotations

import numpy as np

from rlbench import FORK
from rlbench.action_modes.arm_action_modes import ArmActionMode
from rlbench.action_modes.gripper_action_modes import GripperActionMode


class ActionMode:
    def __init__(self, arm_action_mode: ArmActionMode, gripper_action_mode: GripperActionMode):
        self.arm_action_mode = arm_action_mode
        self.gripper_action_mode = gripper_action_mode

    def action(self, scene, action: np.ndarray):
        raise NotImplementedError

    def action_shape(self, scene):
        raise NotImplementedError


class MoveArmThenGripper(ActionMode):
    def action(self, scene, action: np.ndarray):
        arm_act_size = np.prod(self.arm_action_mode.action_shape(scene))
        arm_action = np.array(action[:arm_act_size])
        if FORK == "gembench":
            ee_action = np.array(action[arm_act_size:])
            self.arm_action_mode.action(scene, arm_action)
        else:
            ee_action = np.array(action[arm_act_size:arm_act_size + 1])
            ignore_collisions = bool(action[arm_act_size + 1:arm_act_size + 2])
            self.arm_action_mode.action(scene, arm_action, ignore_collisions)
        self.gripper_action_mode.action(scene, ee_action)

    def action_shape(self, scene):
        return np.prod(self.arm_action_mode.action_shape(scene)) + np.prod(
            self.gripper_action_mode.action_shape(scene))
