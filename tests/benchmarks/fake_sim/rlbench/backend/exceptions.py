"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/backend/exceptions.py``: the same classes."""


class BoundaryError(Exception):
    pass


class WaypointError(Exception):
    def __init__(self, message, task):
        super().__init__(f"Error in task {task.get_name()}. {message}")


class NoWaypointsError(Exception):
    def __init__(self, message, task):
        super().__init__(f"Error in task {task.get_name()}. {message}")


class DemoError(Exception):
    def __init__(self, message, task):
        super().__init__(f"Error in task {task.get_name()}. {message}")


class InvalidActionError(Exception):
    pass


class TaskEnvironmentError(Exception):
    pass
