"""Fake of robot-colosseum @ 098a910 ``colosseum/rlbench/utils.py``: ``name_to_class`` (loads
``<tasks_py_folder>/<task>.py`` and returns its CamelCase class, None when absent) and ``get_spreadsheet_config``
(enables the factors of one strategy row on a copy of the task's base config)."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from omegaconf import DictConfig

from colosseum import TASKS_PY_FOLDER as DEFAULT_TASKS_PY_FOLDER


def name_to_class(task_name: str, tasks_py_folder: str = DEFAULT_TASKS_PY_FOLDER):
    task_filepath = os.path.join(tasks_py_folder, task_name) + ".py"
    class_name = "".join([w[0].upper() + w[1:] for w in task_name.split("_")])
    if not os.path.isfile(task_filepath):
        return None
    spec = importlib.util.spec_from_file_location(task_name, task_filepath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[task_name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name, None)


def get_spreadsheet_config(base_cfg: DictConfig, collection_cfg: dict[str, Any], spreadsheet_idx: int) -> DictConfig:
    spreadsheet_cfg = base_cfg.copy()
    for collection_var_cfg in collection_cfg["strategy"][spreadsheet_idx]["variations"]:
        for variation_cfg in spreadsheet_cfg.env.scene.factors:
            if variation_cfg.variation != collection_var_cfg["type"]:
                continue
            if collection_var_cfg["name"] == "any" or (
                    "name" in variation_cfg and variation_cfg.name == collection_var_cfg["name"]):
                variation_cfg.enabled = collection_var_cfg["enabled"]
    return spreadsheet_cfg
