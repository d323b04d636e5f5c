"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/backend/utils.py::task_file_to_task_class``: the real one
imports ``rlbench.tasks.<name>`` and returns its CamelCase class; here every valid task file name gets a subclass
of the fake ``Task`` with that class name (unknown-looking names fail like a missing module)."""

import re

from rlbench.backend.task import Task


def task_file_to_task_class(task_file):
    name = task_file.replace(".py", "")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ModuleNotFoundError(f"No module named 'rlbench.tasks.{name}'")
    class_name = "".join([w[0].upper() + w[1:] for w in name.split("_")])
    return type(class_name, (Task,), {"__module__": f"rlbench.tasks.{name}"})
