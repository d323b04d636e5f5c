"""Settings of the embedded MuJoCo benchmark (a dataclass, loadable through bridgevla.configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmarks.protocol import WORKSPACE_TOLERANCE
from rendering.bounds import SceneBounds

CAMERA_NAMES: tuple[str, ...] = ("front", "left_shoulder", "right_shoulder", "wrist")
# Which task list ``EmbeddedEnv.tasks()`` offers: the training catalogue, every (task, perturbation factor) cell,
# or every task of the generalisation levels L1-L4 (docs/tasks.md).
SUITES: tuple[str, ...] = ("tasks", "perturbations", "levels")


@dataclass
class PerturbationConfig:
    """Ranges of the factors (COLOSSEUM's where it publishes one)."""

    size_range: tuple[float, float] = (0.75, 1.15)  # uniform scale of a role's objects
    light_colour_lo: tuple[float, float, float] = (0.0, 0.0, 0.0)  # diffuse RGB of each light, uniform per channel
    light_colour_hi: tuple[float, float, float] = (0.5, 0.5, 0.5)
    table_colour_lo: tuple[float, float, float] = (0.25, 0.25, 0.25)
    table_colour_hi: tuple[float, float, float] = (1.0, 1.0, 1.0)
    distractors: int = 2  # objects placed on free table space
    camera_euler: float = 0.05  # rad, uniform per Euler angle, static cameras only
    camera_position: float = 0.1  # m, uniform per axis
    friction_range: tuple[float, float] = (0.5, 1.5)  # multiplier of the objects' sliding friction
    mass_range: tuple[float, float] = (0.5, 2.0)  # multiplier of the objects' masses (and inertias)

    def __post_init__(self) -> None:
        for name in ("size_range", "friction_range", "mass_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"perturbation.{name} must satisfy 0 < lo <= hi, got {(lo, hi)}")
        for name in ("light_colour", "table_colour"):
            lo, hi = np.array(getattr(self, name + "_lo")), np.array(getattr(self, name + "_hi"))
            if not (np.all(lo >= 0) and np.all(hi <= 1) and np.all(lo <= hi)):
                raise ValueError(f"perturbation.{name}_lo/hi must be RGB in [0, 1] with lo <= hi, got {lo}, {hi}")
        if not 0 <= self.distractors <= 4:  # the distractor bank holds four objects (perturbations.DISTRACTORS)
            raise ValueError(f"perturbation.distractors must be in [0, 4], got {self.distractors}")
        if self.camera_euler < 0 or self.camera_position < 0:
            raise ValueError("perturbation.camera_euler and camera_position must be >= 0")


@dataclass
class EmbeddedConfig:
    image_size: int = 128  # square RGB-D images per camera, like RLBench's default
    cameras: tuple[str, ...] = CAMERA_NAMES
    max_keyposes: int = 25  # an episode ends after this many keyposes (RLBench/PerAct protocol)
    tick_seconds: float = 0.05  # simulated time per recorded control tick
    physics_timestep: float = 0.005  # MuJoCo integration step
    max_joint_step: float = 0.03  # rad per tick: sets how many ticks a move takes
    min_ticks: int = 5  # >= 5 ticks per move so that the PerAct stop heuristic (4-frame buffer) sees every stop
    settle_seconds: float = 0.3  # physics after a gripper change, inside the same tick
    collision_margin: float = 0.001  # penetration (m) tolerated by the collision checker
    detour_heights: tuple[float, ...] = (0.12, 0.25)  # lifted-waypoint detours tried before giving up
    retry_ignoring_collisions: bool = False  # RLBench's last resort; off: a colliding plan is an invalid keypose
    ik_position_tolerance: float = 0.002  # metres
    ik_rotation_tolerance: float = 0.02  # radians
    # The box keyposes are executed in (benchmarks.protocol.WorkspaceGuard): a position at most workspace_tolerance
    # metres outside is clamped onto it (RVT clips its predictions too); further out the keypose is refused, an
    # invalid keypose that ends the episode with an error quoting requested vs allowed.
    workspace_lo: tuple[float, float, float] = (-0.3, -0.5, 0.6)
    workspace_hi: tuple[float, float, float] = (0.7, 0.5, 1.6)
    workspace_tolerance: float = WORKSPACE_TOLERANCE
    # Use only each task's first N variations (None: all). Variations are ordered simplest first (one button, two
    # blocks, the first colours), so a small demo can train on few, easy goals.
    max_variations: int | None = None
    suite: str = "tasks"
    # Restrict the suite to these catalogue/level tasks (a perturbation suite keeps all their factor cells);
    # empty: all of them. E.g. the four tasks a small demo policy was trained on.
    suite_tasks: tuple[str, ...] = ()
    perturbation: PerturbationConfig = field(default_factory=PerturbationConfig)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {SUITES}, got {self.suite!r}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown or not self.cameras:
            raise ValueError(f"cameras must be a non-empty subset of {CAMERA_NAMES}, got {self.cameras}")
        if self.max_keyposes < 1:
            raise ValueError(f"max_keyposes must be >= 1, got {self.max_keyposes}")
        if not 0 < self.physics_timestep <= self.tick_seconds:
            raise ValueError(f"physics_timestep must be in (0, tick_seconds], got {self.physics_timestep}")
        if self.min_ticks < 1:
            raise ValueError(f"min_ticks must be >= 1, got {self.min_ticks}")
        if self.max_variations is not None and self.max_variations < 1:
            raise ValueError(f"max_variations must be >= 1 or None, got {self.max_variations}")
        if not self.workspace_tolerance >= 0:
            raise ValueError(f"workspace_tolerance must be >= 0 metres, got {self.workspace_tolerance}")
        SceneBounds(tuple(self.workspace_lo), tuple(self.workspace_hi))  # raises for an empty or non-finite box
        if self.max_joint_step <= 0:
            raise ValueError(f"max_joint_step must be > 0, got {self.max_joint_step}")
