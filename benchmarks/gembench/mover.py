"""GemBench's retrying mover (robot-3dlotus ``genrobo3d/rlbench/environments.py::Mover`` @ c1da0da, as facts).

Motion planning ignores collisions and the Panda does not always land where asked, so GemBench repeats a move:

- while moving, the gripper keeps its previous state (the target's open/close is applied only after the arm
  arrived), so a grasp never closes mid-way;
- up to ``max_tries`` steps toward the same target, stopping once the gripper position is within 5 cm of it (2 cm
  when this keypose changes the gripper state) or the task reports success;
- then, if the gripper state changes and the arm arrived (and the task has not succeeded yet), one more step with
  the real target applies the new gripper state;
- the next keypose's "previous state" is this target (whether or not it was reached).

Planner errors propagate (the caller fails the episode), as in GemBench's evaluation loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

StepFn = Callable[[np.ndarray], tuple[Any, float, bool]]


class RetryingMover:
    def __init__(self, step: StepFn, max_tries: int = 10, tolerance: float = 0.05,
                 gripper_change_tolerance: float = 0.02) -> None:
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        if not 0 < gripper_change_tolerance <= tolerance:
            raise ValueError(f"tolerances must satisfy 0 < {gripper_change_tolerance} <= {tolerance}")
        self._step, self.max_tries = step, max_tries
        self.tolerance, self.gripper_change_tolerance = tolerance, gripper_change_tolerance
        self._last: np.ndarray | None = None

    def reset(self, gripper_pose: np.ndarray, gripper_open: float) -> None:
        """Start of an episode: the 'previous action' is where the gripper is."""
        self._last = np.concatenate([np.asarray(gripper_pose, dtype=np.float64).reshape(7), [float(gripper_open)]])

    def __call__(self, action: np.ndarray) -> tuple[Any, float, bool, dict[str, Any]]:
        """Execute one 8-value action ``[xyz, qxyzw, open]``; returns (obs, reward, terminate, info)."""
        if self._last is None:
            raise ValueError("RetryingMover.reset() must be called before the first action")
        target = np.asarray(action, dtype=np.float64).reshape(8).copy()
        changes_gripper = (self._last[7] > 0.5) != (target[7] > 0.5)
        moving = target.copy()
        moving[7] = self._last[7]
        tolerance = self.gripper_change_tolerance if changes_gripper else self.tolerance
        obs, reward, terminate, reached, distance, tries = None, 0.0, False, False, float("inf"), 0
        for tries in range(1, self.max_tries + 1):  # noqa: B007 (tries is reported)
            obs, reward, terminate = self._step(moving)
            distance = float(np.linalg.norm(target[:3] - np.asarray(obs.gripper_pose, dtype=np.float64)[:3]))
            reached = distance < tolerance
            if reached or reward == 1:
                break
        gripper_step = bool(not reward and changes_gripper and reached)
        if gripper_step:
            obs, reward, terminate = self._step(target)
        self._last = target
        return obs, float(reward), bool(terminate), {"tries": tries, "reached": reached, "distance": distance,
                                                     "gripper_step": gripper_step}
