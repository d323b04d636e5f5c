"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/robots/end_effectors/panda_gripper.py`` (+ ``gripper.py``)."""

from __future__ import annotations


class PandaGripper:
    def __init__(self, count: int = 0) -> None:
        self._open = 1.0
        self.joints = [object(), object()]

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
        return False

    def release(self) -> None:
        pass

    def get_grasped_objects(self) -> list:
        return []

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
