"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/backend/task.py``: ``Task`` with the methods the scene and the
task environment call. Every fake task is the same little job: a cube of the variation's colour is placed by
numpy's global RNG (so a stored RNG state rebuilds the scene, as in RLBench); success is the closed gripper within
2 cm of the point 2 cm above the cube; the tip under the table top + 1 cm is the task's failure condition
(terminate). Collision-checked planning into the 2 cm margin around the cube fails (it would touch the cube).

The cube is the ``Shape`` named ``CUBE`` in the task's tree (``get_base().get_objects_in_tree``) and the task's one
graspable object (``get_graspable_objects``), as a real task's objects are; tests move it through the shape.
"""

from __future__ import annotations

import re

import numpy as np
from pyrep.backend import sim
from pyrep.backend.sim import TABLE_Z
from pyrep.objects.dummy import Dummy
from pyrep.objects.shape import Shape

TASKS_PATH = "rlbench/tasks"
COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
           "cyan": (0.0, 1.0, 1.0)}
CUBE_HALF = 0.03
CUBE_TOP = TABLE_Z + 0.06
CUBE = "cube"


class Task:
    def __init__(self, pyrep, robot, name: str = None):
        self.pyrep = pyrep
        self.robot = robot
        self.name = name if name else re.sub("(?<!^)(?=[A-Z])", "_", self.__class__.__name__).lower()
        self.goal = None
        self.cube_xy = None

    # the job ----------------------------------------------------------------------------------------------------
    def init_task(self) -> None:
        pass

    def init_episode(self, index: int) -> list[str]:
        colour = list(COLOURS)[index % len(COLOURS)]
        xy = np.random.uniform([0.1, -0.25], [0.45, 0.25])
        self.cube_xy = xy
        self.goal = np.array([xy[0], xy[1], CUBE_TOP + 0.02])
        w = sim.world()
        w.cubes = [{"name": CUBE, "xy": xy, "half": CUBE_HALF, "top": CUBE_TOP, "rgb": np.array(COLOURS[colour]),
                    "quat": np.array([0.0, 0.0, 0.0, 1.0])}]
        w.objects[CUBE], w.parents[CUBE] = Shape(CUBE), self.name
        w.blocked = lambda p: bool(np.all(np.abs(p[:2] - xy) <= CUBE_HALF + 0.02) and p[2] < CUBE_TOP + 0.04)
        return [f"touch the {colour} cube", f"reach the {colour} cube", f"go to the {colour} block"]

    def variation_count(self) -> int:
        return len(COLOURS)

    def success(self) -> tuple[bool, bool]:
        tip = self.robot.arm.get_tip().get_position()
        closed = self.robot.gripper.get_open_amount()[0] < 0.5
        ok = bool(self.goal is not None and np.linalg.norm(tip - self.goal) < 0.02 and closed)
        fell = bool(tip[2] < TABLE_Z + 0.01)
        return ok, ok or fell

    def reward(self):
        return None

    # bookkeeping the scene calls ---------------------------------------------------------------------------------
    def get_name(self) -> str:
        return self.name

    def load(self) -> Dummy:
        sim.world().objects[self.name] = self
        return Dummy(self.name)

    def unload(self) -> None:
        w = sim.world()
        for name in [n for n, parent in w.parents.items() if parent == self.name]:
            w.objects.pop(name, None)
            w.parents.pop(name)
        w.objects.pop(self.name, None)

    def get_base(self) -> Dummy:
        return Dummy(self.name)

    def boundary_root(self) -> Dummy:
        return Dummy(self.name)

    def step(self) -> None:
        pass

    def cleanup_(self) -> None:
        pass

    def get_state(self):
        return (b"", 0)

    def restore_state(self, state) -> None:
        pass

    def validate(self) -> None:
        pass

    def is_static_workspace(self) -> bool:
        return False

    def set_initial_objects_in_scene(self) -> None:
        pass

    def get_graspable_objects(self) -> list:
        w = sim.world()
        return [w.objects[CUBE]] if CUBE in w.objects else []

    def decorate_observation(self, observation):
        return observation

    def get_low_dim_state(self) -> np.ndarray:
        return np.concatenate([self.goal if self.goal is not None else np.zeros(3)])
