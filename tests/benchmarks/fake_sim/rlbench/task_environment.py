"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/task_environment.py`` (``FAKE_RLBENCH_FORK=gembench``: the
rjgpinel/RLBench @ ebdc339 constructor with ``shaped_rewards``). Same reset/step/reset_to_demo semantics."""

from __future__ import annotations

import numpy as np

from rlbench import FORK
from rlbench.backend.exceptions import BoundaryError, TaskEnvironmentError, WaypointError

_MAX_RESET_ATTEMPTS = 40


class TaskEnvironment:
    def __init__(self, pyrep, robot, scene, task, action_mode, dataset_root, obs_config, static_positions=False,
                 attach_grasped_objects=True, shaped_rewards=False):
        self._pyrep = pyrep
        self._robot = robot
        self._scene = scene
        self._task = task
        self._variation_number = 0
        self._action_mode = action_mode
        self._dataset_root = dataset_root
        self._obs_config = obs_config
        self._static_positions = static_positions
        self._attach_grasped_objects = attach_grasped_objects
        self._shaped_rewards = shaped_rewards
        self._reset_called = False
        self._scene.load(self._task)
        self._pyrep.start()

    def get_name(self) -> str:
        return self._task.get_name()

    def sample_variation(self) -> int:
        self._variation_number = np.random.randint(0, self._task.variation_count())
        return self._variation_number

    def set_variation(self, v: int) -> None:
        if v >= self.variation_count():
            raise TaskEnvironmentError(
                f"Requested variation {v}, but there are only {self.variation_count()} variations.")
        self._variation_number = v

    def variation_count(self) -> int:
        return self._task.variation_count()

    def reset(self):
        self._scene.reset()
        try:
            desc = self._scene.init_episode(self._variation_number, max_attempts=_MAX_RESET_ATTEMPTS,
                                            randomly_place=not self._static_positions)
        except (BoundaryError, WaypointError) as e:
            raise TaskEnvironmentError(f"Could not place the task {self._task.get_name()} in the scene.") from e
        self._reset_called = True
        return desc, self._scene.get_observation()

    def get_task_descriptions(self):
        return self._scene.task.init_episode(self._variation_number)

    def get_observation(self):
        return self._scene.get_observation()

    def step(self, action):
        if not self._reset_called:
            raise RuntimeError("Call 'reset' before calling 'step' on a task.")
        self._action_mode.action(self._scene, action)
        success, terminate = self._task.success()
        task_reward = self._task.reward()
        reward = float(success) if task_reward is None or FORK == "gembench" else task_reward
        return self._scene.get_observation(), reward, terminate

    def reset_to_demo(self, demo):
        demo.restore_state()
        return self.reset()
