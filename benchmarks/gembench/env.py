"""GemBench behind :class:`benchmarks.protocol.Environment`, as its authors and BridgeVLA evaluate it.

The published protocol (REFERENCE §4; robot-3dlotus ``genrobo3d/rlbench/environments.py`` and
``evaluation/eval_simple_policy.py`` @ c1da0da; BridgeVLA ``finetune/GemBench/client.py`` @ a68b2f5):

- RLBench fork rjgpinel/RLBench@ebdc339 (GemBench's new tasks) on PyRep fork cshizhe/PyRep, CoppeliaSim 4.1.0;
- a "task" is a taskvar ``<task>+<variation>`` of levels L1-L4 (:mod:`benchmarks.gembench.levels`);
- cameras left_shoulder, right_shoulder, wrist, front at 256 x 256, OPENGL;
- ``MoveArmThenGripper(EndEffectorPoseViaPlanning(collision_checking=False), Discrete())`` with the 8-value action
  ``[x, y, z, qx, qy, qz, qw, gripper_open]`` (our ``ignore_collisions`` has nowhere to go: collisions are never
  checked) driven by the retrying mover (:mod:`benchmarks.gembench.mover`: <= 10 tries, 5 cm / 2 cm); no clipping;
- test episodes: seeds 200, 300, 400, 500, 600 x 20 episodes per taskvar, restored from
  ``<test_root>/seed<seed>/<task>/variation<v>/episodes/episode<i>`` with ``reset_to_demo``; at most 25 keyposes; the
  episode ends on reward 1 or a planner error (the task's termination flag does not stop it);
- the instruction shown is a random one of the variation's phrasings (BridgeVLA's client; seeded here, so a rerun
  shows the same one); level score = mean over its taskvars, mean ± std over seeds (:mod:`benchmarks.gembench.table`).

Runner seeds are ``EPISODE_STRIDE * seed + episode`` with the GemBench seed itself (200 ... 600) as the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.gembench.levels import LEVEL_OF, LEVELS, split_taskvar
from benchmarks.gembench.mover import RetryingMover
from benchmarks.protocol import Keypose
from benchmarks.rlbench.harness import (
    CoppeliaEnv,
    HarnessConfig,
    HarnessNotInstalled,
    episode_folders,
    has_parameter,
    observation_config,
    rlbench_modules,
    unit_quaternion,
)

GEMBENCH_FORK = "GemBench's RLBench fork rjgpinel/RLBench@ebdc339 (with PyRep fork cshizhe/PyRep)"


@dataclass
class GemBenchConfig(HarnessConfig):
    levels: list[str] = field(default_factory=lambda: list(LEVELS))
    image_size: int = 256
    max_tries: int = 10  # the mover's attempts per keypose
    tolerance: float = 0.05  # metres: "arrived" when the gripper is this close to the target
    gripper_change_tolerance: float = 0.02  # ... or this close when the keypose opens/closes the gripper
    instruction: Literal["random", "first"] = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [lvl for lvl in self.levels if lvl not in LEVELS]
        if bad or not self.levels:
            raise ValueError(f"env.levels must name levels of {list(LEVELS)}, got {self.levels}")
        unknown = [t for t in self.tasks if t not in LEVEL_OF]
        if unknown:
            raise ValueError(f"env.tasks: {unknown} are not GemBench taskvars (e.g. 'push_button+0')")
        if self.instruction not in ("random", "first"):
            raise ValueError(f"env.instruction must be 'random' or 'first', got {self.instruction!r}")


def gembench_action(keypose: Keypose) -> np.ndarray:
    """Our keypose -> GemBench's 8 values (``ignore_collisions`` is dropped: GemBench never checks collisions)."""
    return np.concatenate([np.asarray(keypose.position, dtype=np.float64), unit_quaternion(keypose.quaternion),
                           [float(keypose.gripper_open)]])


class GemBenchEnv(CoppeliaEnv):
    """GemBench L1-L4 (see module doc)."""

    benchmark = "gembench"
    terminate_ends_episode = False
    keyframe_start = "clamp"  # GemBench's keystep detection

    def __init__(self, config: GemBenchConfig | None = None) -> None:
        super().__init__(config or GemBenchConfig())
        self._mover: RetryingMover | None = None

    def tasks(self) -> list[str]:
        if self.config.tasks:
            return [t for t in self.config.tasks if LEVEL_OF[t] in self.config.levels]
        return [tv for level in self.config.levels for tv in LEVELS[level]]

    def _split(self, task: str) -> tuple[str, int | None]:
        return split_taskvar(task)

    def _modules(self) -> dict[str, str]:
        return rlbench_modules(GEMBENCH_FORK)

    def _check_fork(self, mods: dict[str, Any]) -> None:
        # GemBench's fork adds load_images to Environment.get_demos; the PerAct fork and upstream lack it (and lack
        # GemBench's tasks).
        if not has_parameter(mods["rlbench.environment"].Environment.get_demos, "load_images"):
            raise HarnessNotInstalled(f"--benchmark {self.benchmark} needs {GEMBENCH_FORK}: the installed rlbench "
                                      f"is another fork (its Environment.get_demos has no load_images)")

    def _make_environment(self, mods: dict[str, Any], task: str) -> Any:
        action_mode = mods["rlbench.action_modes.action_mode"].MoveArmThenGripper(
            arm_action_mode=mods["rlbench.action_modes.arm_action_modes"].EndEffectorPoseViaPlanning(
                collision_checking=False),
            gripper_action_mode=mods["rlbench.action_modes.gripper_action_modes"].Discrete())
        obs_config = observation_config(mods, self.config.cameras, self.config.image_size, self.config.render_mode)
        return mods["rlbench.environment"].Environment(action_mode, "", obs_config, headless=self.config.headless)

    def _task_class(self, mods: dict[str, Any], task: str) -> type:
        return mods["rlbench.backend.utils"].task_file_to_task_class(task)

    def _stored_episode(self, task: str, run: int, episode: int) -> tuple[Path, int]:
        name, variation = split_taskvar(task)
        seed_dir = Path(self.config.test_root) / f"seed{run}"
        if not seed_dir.is_dir():
            raise ValueError(f"env.test_root: no {seed_dir} (GemBench's test seeds are 200-600: run the evaluation "
                             f"with seeds 200 300 400 500 600 and seed_offset 0)")
        folders = episode_folders(seed_dir / name / f"variation{variation}" / "episodes")
        if episode >= len(folders):
            raise ValueError(f"env.test_root: {task} has {len(folders)} stored episodes in {seed_dir}, "
                             f"episode {episode} asked")
        return folders[episode], variation

    def _instructions(self, descriptions: list[str], seed: int) -> list[str]:
        if self.config.instruction == "first" or len(descriptions) < 2:
            return list(descriptions)
        chosen = int(np.random.default_rng(seed).integers(len(descriptions)))
        return [descriptions[chosen]] + [d for i, d in enumerate(descriptions) if i != chosen]

    def _on_reset(self, obs: Any) -> None:
        self._mover = RetryingMover(self._task_env.step, self.config.max_tries, self.config.tolerance,
                                    self.config.gripper_change_tolerance)
        self._mover.reset(obs.gripper_pose, obs.gripper_open)

    def _action(self, keypose: Keypose) -> np.ndarray:
        return gembench_action(keypose)

    def _execute(self, action: np.ndarray) -> tuple[Any, float, bool, dict[str, Any]]:
        return self._mover(action)
