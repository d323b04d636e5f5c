"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/environment.py`` (``FAKE_RLBENCH_FORK=gembench``:
rjgpinel/RLBench @ ebdc339, whose constructor adds ``shaped_rewards`` and whose ``get_demos`` adds
``load_images``). Stored demos are read by the adapters, not through ``get_demos``, which the fake does not serve."""

from __future__ import annotations

from os.path import abspath, dirname, join

from pyrep import PyRep
from pyrep.robots.arms.panda import Panda
from pyrep.robots.end_effectors.panda_gripper import PandaGripper

from rlbench import FORK
from rlbench.backend.const import TTT_FILE
from rlbench.backend.robot import Robot
from rlbench.backend.scene import Scene
from rlbench.observation_config import ObservationConfig
from rlbench.task_environment import TaskEnvironment

DIR_PATH = dirname(abspath(__file__))


class Environment:
    def __init__(self, action_mode, dataset_root: str = "", obs_config: ObservationConfig = ObservationConfig(),  # noqa: B008 (the real signature)
                 headless: bool = False, static_positions: bool = False, robot_setup: str = "panda",
                 randomize_every=None, frequency: int = 1, visual_randomization_config=None,
                 dynamics_randomization_config=None, attach_grasped_objects: bool = True, **fork_kwargs):
        if FORK != "gembench" and fork_kwargs:
            raise TypeError(f"__init__() got unexpected keyword arguments {sorted(fork_kwargs)}")
        self._dataset_root = dataset_root
        self._action_mode = action_mode
        self._obs_config = obs_config
        self._headless = headless
        self._static_positions = static_positions
        self._robot_setup = robot_setup.lower()
        self._attach_grasped_objects = attach_grasped_objects
        self._shaped_rewards = fork_kwargs.get("shaped_rewards", False)
        self._pyrep = None
        self._robot = None
        self._scene = None
        self._prev_task = None

    def _make_scene(self):
        return Scene(self._pyrep, self._robot, self._obs_config, self._robot_setup)

    def launch(self):
        if self._pyrep is not None:
            raise RuntimeError("Already called launch!")
        self._pyrep = PyRep()
        self._pyrep.launch(join(DIR_PATH, TTT_FILE), headless=self._headless)
        self._robot = Robot(Panda(), PandaGripper())
        self._scene = self._make_scene()
        self._action_mode.arm_action_mode.set_control_mode(self._robot)

    def shutdown(self):
        if self._pyrep is not None:
            self._pyrep.shutdown()
        self._pyrep = None

    def _task_environment(self, task):
        kwargs = {"shaped_rewards": self._shaped_rewards} if FORK == "gembench" else {}
        return TaskEnvironment(self._pyrep, self._robot, self._scene, task, self._action_mode, self._dataset_root,
                               self._obs_config, self._static_positions, self._attach_grasped_objects, **kwargs)

    def get_task(self, task_class) -> TaskEnvironment:
        if self._pyrep is None:
            self.launch()
        self._scene.unload()
        task = task_class(self._pyrep, self._robot)
        self._prev_task = task
        return self._task_environment(task)

    if FORK == "gembench":
        def get_demos(self, task_name: str, amount: int, variation_number=0, image_paths=False,
                      random_selection: bool = True, from_episode_number: int = 0, load_images: bool = True):
            raise NotImplementedError("the fake serves no stored demos")
    else:
        def get_demos(self, task_name: str, amount: int, variation_number=0, image_paths=False,
                      random_selection: bool = True, from_episode_number: int = 0):
            raise NotImplementedError("the fake serves no stored demos")
