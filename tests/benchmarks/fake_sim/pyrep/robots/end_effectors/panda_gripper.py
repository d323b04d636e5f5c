"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/robots/end_effectors/panda_gripper.py`` (+ ``gripper.py``).

``grasp(obj)`` attaches ``obj`` when the gripper's proximity sensor detects it: here, the arm's tip within
``GRASP_RANGE`` of the object's origin. Like the real one it re-parents the object to the gripper (so it leaves the
task's tree) and ``release`` puts it back; the arm carries attached objects along (``Panda._move_tip``).
"""

from __future__ import annotations

import numpy as np

from pyrep.backend import sim

GRASP_RANGE = 0.06  # m: the expert's closing pose, 2 cm above the fake cube's top, is 5 cm from its centre
TIP = "Panda_tip"


class PandaGripper:
    def __init__(self, count: int = 0) -> None:
        self._open = 1.0
        self.joints = [object(), object()]
        self._grasped_objects: list = []
        self._old_parents: list = []

    def actuate(self, amount: float, velocity: float) -> bool:
        """Moves the fingers halfway to ``amount`` per call; True once there."""
        self._open += (amount - self._open) * 0.5
        if abs(self._open - amount) < 0.05:
            self._open = float(amount)
            return True
        return False

    def get_open_amount(self) -> list[float]:
        return [self._open, self._open]

    def grasp(self, obj) -> bool:
        w = sim.world()
        tip = w.objects.get(TIP)
        detected = bool(tip is not None and np.linalg.norm(tip.get_position() - obj.get_position()) < GRASP_RANGE)
        if detected and obj not in self._grasped_objects:
            self._grasped_objects.append(obj)
            self._old_parents.append(w.parents.get(obj.get_name()))
            w.parents[obj.get_name()] = TIP
        return detected

    def release(self) -> None:
        w = sim.world()
        for obj, parent in zip(self._grasped_objects, self._old_parents):
            if obj.still_exists() and parent is not None:
                w.parents[obj.get_name()] = parent
        self._grasped_objects, self._old_parents = [], []

    def get_grasped_objects(self) -> list:
        return self._grasped_objects

    def get_joint_positions(self) -> list[float]:
        return [0.04 * self._open, 0.04 * self._open]

    def set_joint_positions(self, positions, disable_dynamics: bool = False) -> None:
        self._open = float(positions[0]) / 0.04

    def set_joint_target_velocities(self, velocities) -> None:
        pass

    def get_touch_sensor_forces(self) -> list[list[float]]:
        return [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]

    def get_configuration_tree(self) -> bytes:
        return b""
