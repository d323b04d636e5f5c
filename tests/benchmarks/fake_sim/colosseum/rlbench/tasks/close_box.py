"""Fake COLOSSEUM task (robot-colosseum @ 098a910 has colosseum/rlbench/tasks/close_box.py): the fake world's job."""

from rlbench.backend.task import Task


class CloseBox(Task):
    pass
