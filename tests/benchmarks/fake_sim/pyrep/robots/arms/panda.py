"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/robots/arms/panda.py`` (+ ``arm.py``'s ``get_path``/``get_tip``).

The arm is its tip: ``get_path`` plans straight to the target unless the world's planner rules refuse
(``ConfigurationPathError``), and the path reaches the target (plus a test-injected landing offset) in 4 steps.
Joint positions are the tip pose (7 values); joint velocities are the last step's tip displacement. Objects the
gripper grasped (parented to the tip, ``panda_gripper.py``) follow the tip's translation.
"""

from __future__ import annotations

import numpy as np

from pyrep.backend import sim
from pyrep.errors import ConfigurationPathError
from pyrep.objects.dummy import Dummy

PATH_STEPS = 4


class ArmConfigurationPath:
    def __init__(self, arm: Panda, start: np.ndarray, end: np.ndarray) -> None:
        self._arm, self._start, self._end, self._i = arm, start, end, 0

    def step(self) -> bool:
        self._i += 1
        pose = self._start + (self._end - self._start) * self._i / PATH_STEPS
        pose[3:] /= np.linalg.norm(pose[3:])
        self._arm._move_tip(pose)
        return self._i >= PATH_STEPS

    def visualize(self) -> None:
        pass

    def clear_visualization(self) -> None:
        pass


class Panda:
    def __init__(self, count: int = 0) -> None:
        self._tip = Dummy("Panda_tip")
        sim.world().objects["Panda_tip"] = self._tip  # the gripper finds it to grasp
        self._tip.set_pose(np.array([0.28, 0.0, 1.47, 0.0, 1.0, 0.0, 0.0]))  # RLBench's start: above, pointing down
        self._velocity = np.zeros(7)
        self.joints = [object()] * 7

    def get_tip(self) -> Dummy:
        return self._tip

    def _move_tip(self, pose: np.ndarray) -> None:
        self._velocity = pose - self._tip.get_pose()
        self._tip.set_pose(pose)
        w = sim.world()
        for name in [n for n, parent in w.parents.items() if parent == self._tip.get_name()]:
            w.objects[name].set_position(w.objects[name].get_position() + self._velocity[:3])

    def get_path(self, position, euler=None, quaternion=None, ignore_collisions=False, trials=300, max_configs=1,
                 distance_threshold: float = 0.65, max_time_ms: int = 10, trials_per_goal=1, algorithm=None,
                 relative_to=None) -> ArmConfigurationPath:
        w = sim.world()
        position = np.asarray(position, dtype=np.float64)
        w.planner_calls.append((position.copy(), bool(ignore_collisions)))
        if sim.PLANNER_EXCEPTION is not None:
            error, sim.PLANNER_EXCEPTION = sim.PLANNER_EXCEPTION, None
            raise error
        if w.unreachable(position) or (not ignore_collisions and w.blocked(position)):
            raise ConfigurationPathError("Could not create path.")
        end = np.concatenate([position, np.asarray(quaternion, dtype=np.float64)])
        if sim.LANDING_OFFSETS:
            end[:3] += np.asarray(sim.LANDING_OFFSETS.pop(0), dtype=np.float64)
        return ArmConfigurationPath(self, self._tip.get_pose(), end)

    def get_joint_positions(self) -> list[float]:
        return self._tip.get_pose().tolist()

    def get_joint_velocities(self) -> list[float]:
        return self._velocity.tolist()

    def set_joint_positions(self, positions, disable_dynamics: bool = False) -> None:
        self._tip.set_pose(np.asarray(positions, dtype=np.float64))
        self._velocity = np.zeros(7)

    def set_joint_target_velocities(self, velocities) -> None:
        self._velocity = np.zeros(7)

    def get_joint_forces(self) -> list[float]:
        return [0.0] * 7

    def get_joint_target_velocities(self) -> list[float]:
        return [0.0] * 7

    def check_arm_collision(self, obj=None) -> bool:
        return False

    def get_objects_in_tree(self, *args, **kwargs) -> list:
        return []

    def set_control_loop_enabled(self, value: bool) -> None:
        pass

    def get_configuration_tree(self) -> bytes:
        return b""
