"""Fake of robot-colosseum @ 098a910 ``colosseum/rlbench/extensions/scene.py`` (+ ``variations/manager.py``).

``SceneExt`` loads the task's ``.ttm`` from ``path_task_ttms`` (missing file: ``FileNotFoundError``, as the real one)
and runs a ``VariationsManager`` over the scene config's factors: the manager (re)creates each factor, with a fresh
``numpy.random.default_rng(factor.seed)``, when the task is first initialised, and every enabled factor draws once
per ``init_episode``. The fake implements two factor types: ``table_color`` (the table's RGB from ``color_range``)
and ``camera_pose`` (``position_range`` offsets of the target cameras from their initial poses).
"""

from __future__ import annotations

import inspect
import os

import numpy as np
from omegaconf import DictConfig, ListConfig
from pyrep.backend import sim
from rlbench.backend.scene import Scene


class VariationsManager:
    def __init__(self, pyrep, factors_config: ListConfig = ListConfig([])):  # noqa: B008 (the real signature)
        self._pyrep = pyrep
        self._factors_config = factors_config
        self._variations: list[dict] = []

    def on_init_task(self) -> None:
        self._variations = [
            {"cfg": f, "rng": np.random.default_rng(f.get("seed", None)), "enabled": bool(f.get("enabled", True))}
            for f in self._factors_config if f.get("variation") in ("table_color", "camera_pose")
        ]

    def on_init_episode(self, scene: Scene) -> None:
        for v in self._variations:
            if not v["enabled"]:
                continue
            cfg = v["cfg"]
            if cfg.variation == "table_color":
                lo, hi = np.asarray(cfg.color_range, dtype=np.float64)
                sim.world().table_rgb = v["rng"].uniform(lo, hi)
            else:
                lo, hi = np.asarray(cfg.position_range, dtype=np.float64)
                for name in cfg.targets:
                    cam = scene._cams[name]
                    m = scene._initial_camera_matrices[name].copy()
                    m[:3, 3] += v["rng"].uniform(lo, hi)
                    cam.set_matrix(m)

    def on_step_episode(self) -> None:
        pass


class SceneExt(Scene):
    def __init__(self, pyrep, robot, obs_config=None, robot_setup: str = "panda", path_task_ttms: str = "",
                 scene_config: DictConfig = DictConfig({})):  # noqa: B008 (the real signature)
        super().__init__(pyrep, robot, obs_config, robot_setup)
        self._path_task_ttms = path_task_ttms
        self._initial_camera_matrices = {n: c.get_matrix() for n, c in self._cams.items()}
        factors = scene_config.factors if "factors" in scene_config else ListConfig([])
        self._var_manager = VariationsManager(self.pyrep, factors)

    def load(self, task) -> None:
        ttm_file = os.path.join(self._path_task_ttms, f"{task.name}.ttm")
        if not os.path.isfile(ttm_file):
            raise FileNotFoundError(f"Couldn't find .ttm file {ttm_file}")
        super().load(task)

    def init_episode(self, index: int, randomly_place: bool = True, max_attempts: int = 5,
                     place_demo: bool = False) -> list[str]:
        if not self._has_init_task:
            self._var_manager.on_init_task()
        self._var_manager.on_init_episode(self)
        # the PerAct fork's Scene.init_episode takes 4 parameters (the real SceneExt checks the same way)
        assert len(inspect.signature(Scene.init_episode).parameters) == 4
        return super().init_episode(index, randomly_place, max_attempts)
