"""Fake of robot-colosseum @ 098a910 ``colosseum/rlbench/extensions/task_environment.py``."""

from rlbench.task_environment import TaskEnvironment


class TaskEnvironmentExt(TaskEnvironment):
    pass
