"""Fake COLOSSEUM task (robot-colosseum @ 098a910 has colosseum/rlbench/tasks/open_drawer.py): the fake world's job."""

from rlbench.backend.task import Task


class OpenDrawer(Task):
    pass
