"""COLOSSEUM behind :class:`benchmarks.protocol.Environment`, as BridgeVLA/RVT evaluate it.

The published protocol (REFERENCE §3; robot-colosseum @ 098a910; BridgeVLA ``finetune/Colosseum/eval.py``, adapted
from rvt_colosseum):

- COLOSSEUM's 20 tasks on the same RLBench fork, PyRep and CoppeliaSim as RLBench-18, through COLOSSEUM's
  ``EnvironmentExt``, whose scene applies the perturbation *factors* of one spreadsheet row: factor index ``i`` of a
  task is ``get_spreadsheet_config(<task>.yaml, <task>.json, i).env`` (index -> name in :data:`FACTORS`); rows a
  task's JSON disables do not exist for that task;
- the same observation (4 cameras, 128 px) and action as RLBench-18 (9 values, collision-aware planning with the
  ignore-collisions retry, target clipped into the workspace);
- a "task" here is COLOSSEUM's own ``<task>_<factor>`` name; 25 trials per cell, each rebuilt from
  ``<test_root>/<task>/<task>_<factor>/variation0/episodes/episode<i>`` with ``reset_to_demo`` at RLBench variation 0
  (the published evaluation always sets variation 0, also for factor 13, "RLBench variations"; set
  ``variation_from_demo`` to use the demo's ``variation_number.pkl`` instead);
- each factor draws its perturbation from its own RNG (seeded by the task YAML, created when the task is first
  initialised), once per episode. The published run evaluates episodes 0-24 in order in a fresh process, so episode
  ``i`` sees the ``i``-th draw. To give every episode that same scene whatever the order or the worker it runs on,
  the adapter replays the earlier episodes' resets (reloading the task to rewind when needed);
- the table: 14 columns (factors 1-14) and their plain average (:mod:`benchmarks.colosseum.table`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.rlbench.env import RLBenchEnv
from benchmarks.rlbench.harness import (
    INSTALL,
    HarnessConfig,
    HarnessNotInstalled,
    episode_folders,
    observation_config,
    stored_variation,
)

# COLOSSEUM's spreadsheet index -> factor (REFERENCE §3; MO = manipulated object, RO = receiver object).
FACTORS: dict[int, str] = {
    0: "No_Perturbation", 1: "All", 2: "MO_Color", 3: "RO_Color", 4: "MO_Texture", 5: "RO_Texture", 6: "MO_Size",
    7: "RO_Size", 8: "Light_Color", 9: "Table_Color", 10: "Table_Texture", 11: "Distractor",
    12: "Background_Texture", 13: "RLBench", 14: "Camera_Pose", 15: "RLBench_and_All", 16: "Friction", 17: "Mass",
}
PUBLISHED_FACTORS = tuple(range(1, 15))  # the 14 columns of the published table, averaged plainly
COLOSSEUM_TASKS = (
    "basketball_in_hoop", "close_box", "close_laptop_lid", "empty_dishwasher", "get_ice_from_fridge", "hockey",
    "meat_on_grill", "move_hanger", "wipe_desk", "open_drawer", "slide_block_to_target", "reach_and_drag",
    "put_money_in_safe", "place_wine_at_rack_location", "insert_onto_square_peg", "stack_cups", "turn_oven_on",
    "straighten_rope", "setup_chess", "scoop_with_spatula",
)
COLOSSEUM = "COLOSSEUM (robot-colosseum/robot-colosseum@098a910, pip install -e .)"


def cell_name(task: str, factor: int) -> str:
    return f"{task}_{factor}"


def split_cell(name: str) -> tuple[str, int]:
    """``"close_box_11"`` -> ``("close_box", 11)``."""
    task, sep, factor = name.rpartition("_")
    if not sep or not factor.isdigit() or int(factor) not in FACTORS:
        raise ValueError(f"COLOSSEUM task {name!r} is not '<task>_<factor 0-17>'")
    return task, int(factor)


@dataclass
class ColosseumConfig(HarnessConfig):
    tasks: list[str] = field(default_factory=lambda: list(COLOSSEUM_TASKS))  # base tasks; cells are task x factor
    factors: list[int] = field(default_factory=lambda: list(PUBLISHED_FACTORS))
    clip_to_workspace: bool = True
    variation_from_demo: bool = False  # True: the demo's variation_number.pkl instead of the published variation 0

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [t for t in self.tasks if t not in COLOSSEUM_TASKS]
        if unknown:
            raise ValueError(f"env.tasks: {unknown} are not COLOSSEUM tasks {list(COLOSSEUM_TASKS)}")
        bad = [f for f in self.factors if f not in FACTORS]
        if bad or not self.factors:
            raise ValueError(f"env.factors must be COLOSSEUM factor indices {sorted(FACTORS)}, got {self.factors}")


class ColosseumEnv(RLBenchEnv):
    """COLOSSEUM's task x factor cells (see module doc)."""

    benchmark = "colosseum"

    def __init__(self, config: ColosseumConfig | None = None) -> None:
        super().__init__(config or ColosseumConfig())  # type: ignore[arg-type]
        self._cells: list[str] | None = None

    def _colosseum_assets(self) -> tuple[Path, Path]:
        try:
            import colosseum
        except ImportError as e:
            raise HarnessNotInstalled(f"--benchmark {self.benchmark} needs {COLOSSEUM}: {e}; {INSTALL}") from e
        return Path(colosseum.ASSETS_CONFIGS_FOLDER), Path(colosseum.ASSETS_JSON_FOLDER)

    def _strategy(self, task: str) -> list[dict[str, Any]]:
        return json.loads((self._colosseum_assets()[1] / f"{task}.json").read_text())["strategy"]

    def tasks(self) -> list[str]:
        """Every enabled ``<task>_<factor>`` cell (and, with ``test_root``, only those with stored episodes: the
        published evaluation skips the cells it has no data for)."""
        if self._cells is None:
            cells = []
            for task in self.config.tasks:
                enabled = {int(row["spreadsheet_idx"]) for row in self._strategy(task) if row["enabled"]}
                for f in self.config.factors:
                    folder = Path(self.config.test_root) / task / cell_name(task, f) / "variation0" / "episodes"
                    if f in enabled and (not self.config.test_root or folder.is_dir()):
                        cells.append(cell_name(task, f))
            self._cells = cells
        return list(self._cells)

    def variations(self, task: str) -> int:
        self._check_task(task)
        return 1

    def _split(self, task: str) -> tuple[str, int | None]:
        return split_cell(task)[0], 0

    def _modules(self) -> dict[str, str]:
        return super()._modules() | {
            "colosseum": COLOSSEUM, "colosseum.rlbench.extensions.environment": COLOSSEUM,
            "colosseum.rlbench.utils": COLOSSEUM, "omegaconf": "omegaconf (a COLOSSEUM dependency)",
        }

    def _environment_key(self, task: str) -> Any:
        return split_cell(task)  # every cell has its own factor configuration: a relaunch between cells

    def _episodes_before(self, episode: int) -> int | None:
        return episode

    def _make_environment(self, mods: dict[str, Any], task: str) -> Any:
        base, factor = split_cell(task)
        col, omegaconf = mods["colosseum"], mods["omegaconf"]
        base_cfg = omegaconf.OmegaConf.load(Path(col.ASSETS_CONFIGS_FOLDER) / f"{base}.yaml")
        strategy = json.loads((Path(col.ASSETS_JSON_FOLDER) / f"{base}.json").read_text())
        env_cfg = mods["colosseum.rlbench.utils"].get_spreadsheet_config(base_cfg, strategy, factor).env
        action_mode = mods["rlbench.action_modes.action_mode"].MoveArmThenGripper(
            mods["rlbench.action_modes.arm_action_modes"].EndEffectorPoseViaPlanning(),
            mods["rlbench.action_modes.gripper_action_modes"].Discrete())
        obs_config = observation_config(mods, self.config.cameras, self.config.image_size, self.config.render_mode)
        return mods["colosseum.rlbench.extensions.environment"].EnvironmentExt(
            action_mode=action_mode, obs_config=obs_config, path_task_ttms=col.TASKS_TTM_FOLDER,
            headless=self.config.headless, env_config=env_cfg)

    def _task_class(self, mods: dict[str, Any], task: str) -> type:
        cls = mods["colosseum.rlbench.utils"].name_to_class(task, mods["colosseum"].TASKS_PY_FOLDER)
        if cls is None:
            raise ValueError(f"COLOSSEUM has no task class {task!r} in {mods['colosseum'].TASKS_PY_FOLDER}")
        return cls

    def _stored_episode(self, task: str, run: int, episode: int) -> tuple[Path, int]:
        base, _ = split_cell(task)
        episodes = Path(self.config.test_root) / base / task / "variation0" / "episodes"
        folders = episode_folders(episodes)
        if episode >= len(folders):
            raise ValueError(f"env.test_root: {task} has {len(folders)} stored episodes in {episodes}, "
                             f"episode {episode} asked")
        variation = stored_variation(folders[episode], 0) if self.config.variation_from_demo else 0
        return folders[episode], variation
