"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/pyrep.py``: ``PyRep`` starts one analytic world per launch."""

from __future__ import annotations

import os

from pyrep.backend import sim
from pyrep.errors import PyRepError


class PyRep:
    def __init__(self) -> None:
        if "COPPELIASIM_ROOT" not in os.environ:
            raise PyRepError("COPPELIASIM_ROOT not defined. See installation instructions.")
        if not os.path.exists(os.environ["COPPELIASIM_ROOT"]):
            raise PyRepError("COPPELIASIM_ROOT was not a correct path. See installation instructions")
        self.running = False

    def launch(self, scene_file: str = "", headless: bool = False, responsive_ui: bool = False,
               blocking: bool = False, verbosity=None) -> None:
        sim.WORLD = sim.World()
        sim.LAUNCHES += 1
        self.headless = headless

    def shutdown(self) -> None:
        sim.WORLD = None

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def step(self) -> None:
        sim.world().step()

    def get_objects_in_tree(self, root_object=None, *args, **kwargs) -> list:
        return []

    def set_configuration_tree(self, config_tree: bytes) -> None:
        pass
