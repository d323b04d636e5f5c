"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/backend/robot.py``."""


class Robot:
    def __init__(self, arm, gripper):
        self.arm = arm
        self.gripper = gripper
