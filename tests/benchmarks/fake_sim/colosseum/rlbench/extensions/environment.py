"""Fake of robot-colosseum @ 098a910 ``colosseum/rlbench/extensions/environment.py``: ``EnvironmentExt`` with the
real constructor; its scene is ``SceneExt`` configured by ``env_config.scene``."""

from __future__ import annotations

import os

from omegaconf import DictConfig
from rlbench.environment import Environment
from rlbench.observation_config import ObservationConfig

from colosseum.rlbench.extensions.scene import SceneExt
from colosseum.rlbench.extensions.task_environment import TaskEnvironmentExt

DEFAULT_PATH_TTMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "task_ttms")


class EnvironmentExt(Environment):
    def __init__(self, action_mode, dataset_root: str = "",
                 obs_config: ObservationConfig = ObservationConfig(),  # noqa: B008 (the real signature)
                 headless: bool = False, static_positions: bool = False, robot_setup: str = "panda",
                 randomize_every=None, use_variations: bool = True, frequency: int = 1, vis_random_config=None,
                 dyn_random_config=None, attach_grasped_objects: bool = True, shaped_rewards: bool = False,
                 path_task_ttms: str = DEFAULT_PATH_TTMS,
                 env_config: DictConfig = DictConfig({})):  # noqa: B008 (the real signature)
        super().__init__(action_mode, dataset_root, obs_config, headless, static_positions, robot_setup,
                         randomize_every, frequency, vis_random_config, dyn_random_config, attach_grasped_objects)
        self._path_task_ttms = path_task_ttms
        self._use_variations = use_variations
        self._env_config = env_config

    def _make_scene(self):
        scene_config = self._env_config.scene if "scene" in self._env_config else DictConfig({})
        return SceneExt(self._pyrep, self._robot, obs_config=self._obs_config, robot_setup=self._robot_setup,
                        path_task_ttms=self._path_task_ttms, scene_config=scene_config)

    def get_task(self, task_class) -> TaskEnvironmentExt:
        if self._pyrep is None:
            self.launch()
        self._scene.unload()
        task = task_class(self._pyrep, self._robot)
        return TaskEnvironmentExt(self._pyrep, self._robot, self._scene, task, self._action_mode,
                                  self._dataset_root, self._obs_config, self._static_positions,
                                  self._attach_grasped_objects)
