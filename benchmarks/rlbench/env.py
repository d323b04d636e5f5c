"""RLBench-18 (PerAct's split) behind :class:`benchmarks.protocol.Environment`, as BridgeVLA/RVT evaluate it.

The published protocol (REFERENCE §2; BridgeVLA ``finetune/RLBench/eval.py`` @ a68b2f5, RVT's ``eval.py``):

- RLBench fork buttomnutstoast/RLBench@587a6a0 on PyRep@231a1ac and CoppeliaSim 4.1.0, headless;
- cameras front, left_shoulder, right_shoulder, wrist at 128 x 128, rendered with OPENGL;
- action mode ``MoveArmThenGripper(EndEffectorPoseViaPlanning(), Discrete())`` with the 9-value action
  ``[x, y, z, qx, qy, qz, qw, gripper_open, ignore_collisions]``. That fork's planner plans with collision checking
  unless ``ignore_collisions`` is set and, when that fails, retries once ignoring collisions; a target it cannot reach
  is an ``InvalidActionError``. RVT/BridgeVLA first clip the target position into the scene's workspace box
  (``scene._workspace_{min,max}{x,y,z}`` ± 1e-7), which we do here;
- 25 test episodes per task, each rebuilt from the stored test demo (``reset_to_demo`` after
  ``set_variation(<the demo's variation_number.pkl>)``), at most 25 keyposes; the episode stops on success or on
  the task's termination flag; ``IKError``/``ConfigurationPathError``/``InvalidActionError`` fail the episode;
- success rate per task, mean ± std over 5 runs (the table is :mod:`benchmarks.rlbench.table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.protocol import Keypose
from benchmarks.rlbench.harness import (
    CoppeliaEnv,
    HarnessConfig,
    HarnessNotInstalled,
    episode_folders,
    has_parameter,
    observation_config,
    rlbench_modules,
    stored_variation,
    unit_quaternion,
)

# PerAct's 18 tasks and their variation counts (249 in total).
PERACT_TASKS: dict[str, int] = {
    "open_drawer": 3, "slide_block_to_color_target": 4, "sweep_to_dustpan_of_size": 2, "meat_off_grill": 2,
    "turn_tap": 2, "put_item_in_drawer": 3, "close_jar": 20, "reach_and_drag": 20, "stack_blocks": 60,
    "light_bulb_in": 20, "put_money_in_safe": 3, "place_wine_at_rack_location": 3, "put_groceries_in_cupboard": 9,
    "place_shape_in_shape_sorter": 5, "push_buttons": 50, "insert_onto_square_peg": 20, "stack_cups": 20,
    "place_cups": 3,
}
RLBENCH_FORK = "the RLBench fork buttomnutstoast/RLBench@587a6a0 (PerAct lineage)"
WORKSPACE_MARGIN = 1e-7  # RVT's clip stays this far inside the workspace box RLBench's boundary check uses


@dataclass
class RLBenchConfig(HarnessConfig):
    tasks: list[str] = field(default_factory=lambda: list(PERACT_TASKS))
    clip_to_workspace: bool = True  # RVT/BridgeVLA's clip of the target into the workspace box

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [t for t in self.tasks if t not in PERACT_TASKS]
        if unknown:
            raise ValueError(f"env.tasks: {unknown} are not RLBench-18 tasks {list(PERACT_TASKS)}")


def workspace_bounds(scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """The box RLBench's ``Scene`` accepts targets in (its ``check_target_in_workspace``), shrunk by 1e-7."""
    lo = np.array([scene._workspace_minx, scene._workspace_miny, scene._workspace_minz], dtype=np.float64)
    hi = np.array([scene._workspace_maxx, scene._workspace_maxy, scene._workspace_maxz], dtype=np.float64)
    return lo + WORKSPACE_MARGIN, hi - WORKSPACE_MARGIN


def rlbench_action(keypose: Keypose, bounds: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Our keypose -> the PerAct fork's 9-value action; the position clipped into ``bounds`` when given."""
    position = np.asarray(keypose.position, dtype=np.float64)
    if bounds is not None:
        position = np.clip(position, bounds[0], bounds[1])
    return np.concatenate([position, unit_quaternion(keypose.quaternion),
                           [float(keypose.gripper_open), float(keypose.ignore_collisions)]])


class RLBenchEnv(CoppeliaEnv):
    """RLBench-18 through the PerAct fork (see module doc)."""

    benchmark = "rlbench"

    def __init__(self, config: RLBenchConfig | None = None) -> None:
        super().__init__(config or RLBenchConfig())

    def tasks(self) -> list[str]:
        return list(self.config.tasks)

    def variations(self, task: str) -> int:
        self._check_task(task)
        return PERACT_TASKS[task]

    def _modules(self) -> dict[str, str]:
        return rlbench_modules(RLBENCH_FORK)

    def _check_fork(self, mods: dict[str, Any]) -> None:
        # Only the PerAct fork's planner takes the per-action ignore_collisions flag (upstream's and GemBench's
        # forks take 8 values): with another fork the 9th value would be silently dropped.
        arm = mods["rlbench.action_modes.arm_action_modes"].EndEffectorPoseViaPlanning
        if not has_parameter(arm.action, "ignore_collisions"):
            raise HarnessNotInstalled(f"--benchmark {self.benchmark} needs {RLBENCH_FORK}: the installed rlbench's "
                                      f"EndEffectorPoseViaPlanning.action takes no ignore_collisions")

    def _make_environment(self, mods: dict[str, Any], task: str) -> Any:
        action_mode = mods["rlbench.action_modes.action_mode"].MoveArmThenGripper(
            mods["rlbench.action_modes.arm_action_modes"].EndEffectorPoseViaPlanning(),
            mods["rlbench.action_modes.gripper_action_modes"].Discrete())
        obs_config = observation_config(mods, self.config.cameras, self.config.image_size, self.config.render_mode)
        return mods["rlbench.environment"].Environment(action_mode, obs_config=obs_config,
                                                       headless=self.config.headless)

    def _task_class(self, mods: dict[str, Any], task: str) -> type:
        return mods["rlbench.backend.utils"].task_file_to_task_class(task)

    def _stored_episode(self, task: str, run: int, episode: int) -> tuple[Path, int]:
        folders = episode_folders(Path(self.config.test_root) / task / "all_variations" / "episodes")
        if episode >= len(folders):
            raise ValueError(f"env.test_root: {task} has {len(folders)} stored test episodes under "
                             f"{self.config.test_root}/{task}/all_variations/episodes, episode {episode} asked")
        return folders[episode], stored_variation(folders[episode], 0)

    def _action(self, keypose: Keypose) -> np.ndarray:
        bounds = workspace_bounds(self._task_env._scene) if self.config.clip_to_workspace else None
        return rlbench_action(keypose, bounds)
