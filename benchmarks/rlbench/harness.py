"""What the RLBench, COLOSSEUM and GemBench harnesses share: CoppeliaSim/PyRep/RLBench behind the protocol.

All three run RLBench's ``TaskEnvironment`` in CoppeliaSim 4.1 through PyRep; they differ in the RLBench fork, the
action mode, how a test episode is restored and the table they report (each harness folder has its adapter and its
table). This module holds the common part:

- :func:`import_harness`: the lazy import, naming the missing piece (CoppeliaSim, ``LD_LIBRARY_PATH``, PyRep, the
  RLBench fork, COLOSSEUM) instead of a bare ImportError.
- :func:`observation_config` / :func:`convert_observation`: four RGB-D cameras with depth in metres
  (``CameraConfig(depth_in_meters=True)``) and RLBench's negative-focal intrinsics converted to ours.
- :class:`CoppeliaEnv`: ``reset`` restores a stored test episode (the numpy RNG state RLBench pickles with every demo,
  then ``TaskEnvironment.reset_to_demo``) or seeds a live reset; ``step`` converts our keypose to the harness's
  action; planner, IK and invalid-action errors end the episode as a failure; anything else the simulator raises is
  a :class:`~benchmarks.protocol.SimulatorError` after the simulator is shut down (the next ``reset`` relaunches it);
  ``diagnose`` says which of the task's objects a failed episode moved (for failure analysis).

Test episodes are identified by the runner's seed: ``run, episode = split_episode_seed(seed)``; stored sets are
indexed like RLBench's ``get_demos(from_episode_number=episode, random_selection=False)``, i.e. the episode-th folder
in natural order. The RNG state is read through the restricted unpickler (the rest of the demo, images included, is
not needed to rebuild the scene), and a real ``rlbench.demo.Demo`` carrying it goes to ``reset_to_demo``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import random
import re
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from benchmarks.protocol import (
    DIAGNOSIS_MOVE,
    DIAGNOSIS_TURN,
    MAX_EPISODE_KEYPOSES,
    CameraFrame,
    Keypose,
    Observation,
    SimulatorError,
    StepResult,
    split_episode_seed,
)
from benchmarks.rlbench.demo_io import (
    LOW_DIM_PICKLE,
    VARIATION_NUMBER,
    camera_from_rlbench,
    import_rlbench_episode,
)
from benchmarks.rlbench.pickles import load_rlbench_pickle
from rendering import quaternion_angle

CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist")
INSTALL = "see docs/benchmarks.md (benchmarks/rlbench/install.sh installs it)"
COPPELIASIM = "CoppeliaSim 4.1.0 (CoppeliaSim_Edu_V4_1_0_Ubuntu20_04)"
PYREP = "PyRep (stepjam/PyRep@231a1ac; GemBench: cshizhe/PyRep)"



# The RLBench modules every harness imports (its forks share these paths); ``fork`` names the one it needs.
RLBENCH_MODULES = ("rlbench", "rlbench.environment", "rlbench.observation_config", "rlbench.demo",
                   "rlbench.action_modes.action_mode", "rlbench.action_modes.arm_action_modes",
                   "rlbench.action_modes.gripper_action_modes", "rlbench.backend.exceptions", "rlbench.backend.utils")


def rlbench_modules(fork: str) -> dict[str, str]:
    """``{module: what to install}`` for an RLBench-based harness (see ``RLBenchHarness._modules``)."""
    return {m: fork for m in RLBENCH_MODULES} | {"pyrep.errors": "PyRep", "pyrep.const": "PyRep"}

class HarnessNotInstalled(ImportError, ValueError):
    """An outside simulator piece is missing; the message names it and how to install it. A ValueError too, so
    command lines report it as a one-line error rather than a traceback."""


def import_harness(modules: dict[str, str], benchmark: str) -> dict[str, Any]:
    """Import ``{module: what it is}`` after checking CoppeliaSim and PyRep, or raise :class:`HarnessNotInstalled`
    naming the first missing piece. Returns the modules by name."""
    root = os.environ.get("COPPELIASIM_ROOT", "")
    if not root:
        raise HarnessNotInstalled(
            f"--benchmark {benchmark} needs {COPPELIASIM}: COPPELIASIM_ROOT is not set; {INSTALL}")
    if not Path(root).is_dir():
        raise HarnessNotInstalled(
            f"--benchmark {benchmark}: COPPELIASIM_ROOT={root} is not a directory ({COPPELIASIM}); {INSTALL}")
    try:
        importlib.import_module("pyrep")
    except ImportError as e:
        if "coppeliasim" in str(e).lower():
            raise HarnessNotInstalled(
                f"--benchmark {benchmark}: PyRep cannot load CoppeliaSim's library ({e}); add COPPELIASIM_ROOT to "
                f"LD_LIBRARY_PATH and QT_QPA_PLATFORM_PLUGIN_PATH; {INSTALL}") from e
        raise HarnessNotInstalled(f"--benchmark {benchmark} needs {PYREP}: {e}; {INSTALL}") from e
    out = {}
    for name, what in modules.items():
        try:
            out[name] = importlib.import_module(name)
        except ImportError as e:
            raise HarnessNotInstalled(f"--benchmark {benchmark} needs {what}: {e}; {INSTALL}") from e
    return out


@dataclass
class HarnessConfig:
    """Options every CoppeliaSim harness takes (``env.<name>=...`` on the command line)."""

    tasks: list[str] = field(default_factory=list)  # empty: the benchmark's published list
    test_root: str = ""  # stored test episodes (the published protocol); "" = live resets seeded by the runner
    cameras: list[str] = field(default_factory=lambda: list(CAMERAS))
    image_size: int = 128
    headless: bool = True
    render_mode: Literal["opengl", "opengl3"] = "opengl"  # BridgeVLA/RVT/GemBench evaluate with OPENGL
    max_keyposes: int = MAX_EPISODE_KEYPOSES

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"env.image_size must be >= 16, got {self.image_size}")
        if self.max_keyposes < 1:
            raise ValueError(f"env.max_keyposes must be >= 1, got {self.max_keyposes}")
        if not self.cameras or any(c not in (*CAMERAS, "overhead") for c in self.cameras):
            raise ValueError(f"env.cameras must name RLBench cameras {(*CAMERAS, 'overhead')}, got {self.cameras}")
        if self.render_mode not in ("opengl", "opengl3"):
            raise ValueError(f"env.render_mode must be 'opengl' or 'opengl3', got {self.render_mode!r}")
        if self.test_root and not Path(self.test_root).is_dir():
            raise ValueError(f"env.test_root: {self.test_root} is not a directory")


def observation_config(mods: dict[str, Any], cameras: Sequence[str], image_size: int, render_mode: str) -> Any:
    """RLBench's ``ObservationConfig``: RGB + depth in metres on ``cameras`` (no masks, no point clouds: we build the
    cloud from depth and the camera), the low-dim fields BridgeVLA's evaluation enables, every other camera off."""
    oc = mods["rlbench.observation_config"]
    mode = getattr(mods["pyrep.const"].RenderMode, render_mode.upper())
    unused = oc.CameraConfig()
    unused.set_all(False)
    used = oc.CameraConfig(rgb=True, depth=True, point_cloud=False, mask=False, image_size=(image_size, image_size),
                           render_mode=mode, depth_in_meters=True)
    per_camera = {f"{c}_camera": used if c in cameras else unused
                  for c in ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")}
    return oc.ObservationConfig(**per_camera, joint_forces=False, joint_positions=True, joint_velocities=True,
                                task_low_dim_state=False, gripper_touch_forces=False, gripper_pose=True,
                                gripper_open=True, gripper_matrix=True, gripper_joint_positions=True)


def convert_observation(obs: Any, cameras: Sequence[str], instructions: list[str], task: str, variation: int,
                        episode: int, misc: dict[str, Any] | None = None) -> Observation:
    """An ``rlbench.backend.observation.Observation`` (depth in metres) -> our :class:`Observation`."""
    params = obs.misc or {}
    frames = {}
    for c in cameras:
        rgb, depth = getattr(obs, f"{c}_rgb", None), getattr(obs, f"{c}_depth", None)
        if rgb is None or depth is None or f"{c}_camera_intrinsics" not in params:
            raise ValueError(f"camera {c!r}: the harness observation has no RGB, depth or camera parameters "
                             f"(the ObservationConfig must enable it)")
        k, e = camera_from_rlbench(params[f"{c}_camera_intrinsics"], params[f"{c}_camera_extrinsics"])
        frames[c] = CameraFrame(np.asarray(rgb, dtype=np.uint8), np.asarray(depth, dtype=np.float32), k, e)
    return Observation(
        cameras=frames,
        gripper_pose=np.asarray(obs.gripper_pose, dtype=np.float64).reshape(7),
        gripper_open=float(obs.gripper_open),
        joint_positions=np.asarray(obs.joint_positions, dtype=np.float64).reshape(-1),
        joint_velocities=np.asarray(obs.joint_velocities, dtype=np.float64).reshape(-1),
        instructions=list(instructions),
        task=task,
        variation=int(variation),
        episode=int(episode),
        misc=dict(misc or {}),
    )


def unit_quaternion(q: np.ndarray) -> np.ndarray:
    """xyzw normalised (RLBench refuses non-unit quaternions as an invalid action)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {q} cannot be normalised")
    return q / n


def episode_folders(episodes_dir: Path) -> list[Path]:
    """``episode<N>`` folders with a demo pickle, in RLBench's natural order (episode2 before episode10)."""
    if not episodes_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in episodes_dir.iterdir()
             if (m := re.fullmatch(r"episode(\d+)", p.name)) and (p / LOW_DIM_PICKLE).is_file()]
    return [p for _, p in sorted(found)]


def stored_rng_state(folder: Path) -> tuple:
    """The numpy RNG state a stored demo was recorded from (``Demo.random_seed``), via the restricted unpickler."""
    demo = load_rlbench_pickle(folder / LOW_DIM_PICKLE)
    state = getattr(demo, "random_seed", None)
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == "MT19937"):
        raise ValueError(f"{folder / LOW_DIM_PICKLE} holds no numpy RNG state (random_seed); it cannot be replayed")
    return state


def stored_variation(folder: Path, default: int) -> int:
    path = folder / VARIATION_NUMBER
    return int(load_rlbench_pickle(path)) if path.is_file() else default


class CoppeliaEnv:
    """Base of the three harness adapters (see module doc). Subclasses supply the harness-specific hooks."""

    benchmark = ""
    # Does the harness's ``terminate`` flag (a task's fail condition) end the episode? YARR's evaluation loop
    # (RLBench, COLOSSEUM) stops there; GemBench's keeps stepping until success, an error or the step limit.
    terminate_ends_episode = True
    keyframe_start: Literal["wrap", "clamp"] = "wrap"  # the keyframe rule of the harness's training data

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self._mods: dict[str, Any] | None = None
        self._env: Any = None  # the harness's rlbench Environment (launched)
        self._env_key: Any = None  # what the launched Environment was built for (COLOSSEUM: the factor)
        self._task_env: Any = None
        self._task_name: str | None = None
        self._inits_since_load = 0  # init_episode calls since the task was loaded (COLOSSEUM's factor RNGs)
        self._last: Observation | None = None
        self._source: Path | None = None  # the stored test episode the current one was rebuilt from
        self._start_poses: list[tuple[Any, np.ndarray, np.ndarray]] | None = None  # see _object_poses
        self._steps = 0
        self.launches = 0  # how often the simulator was launched (restarts after crashes show here)

    # ---- hooks -------------------------------------------------------------------------------------------------
    @abstractmethod
    def tasks(self) -> list[str]: ...

    @abstractmethod
    def _modules(self) -> dict[str, str]:
        """``{module: what it is}`` to import (after CoppeliaSim and PyRep)."""

    @abstractmethod
    def _check_fork(self, mods: dict[str, Any]) -> None:
        """Raise HarnessNotInstalled when the installed RLBench is not the fork this harness was published with."""

    @abstractmethod
    def _make_environment(self, mods: dict[str, Any], task: str) -> Any:
        """A new (not yet launched) rlbench ``Environment`` able to run ``task``."""

    @abstractmethod
    def _task_class(self, mods: dict[str, Any], task: str) -> type: ...

    @abstractmethod
    def _stored_episode(self, task: str, run: int, episode: int) -> tuple[Path, int]:
        """(episode folder, RLBench variation) of a stored test episode."""

    @abstractmethod
    def _action(self, keypose: Keypose) -> np.ndarray: ...

    def _environment_key(self, task: str) -> Any:
        """Tasks with different keys need a relaunched Environment (COLOSSEUM: another factor configuration)."""
        return None

    def _episodes_before(self, episode: int) -> int | None:
        """How many ``init_episode`` calls must have happened since the task was loaded before ``episode`` starts,
        or None when the scene depends on the restored RNG state only (RLBench, GemBench)."""
        return None

    def _execute(self, action: np.ndarray) -> tuple[Any, float, bool, dict[str, Any]]:
        obs, reward, terminate = self._task_env.step(action)
        return obs, float(reward), bool(terminate), {}

    def _instructions(self, descriptions: list[str], seed: int) -> list[str]:
        return [str(d) for d in descriptions]

    def _on_reset(self, obs: Any) -> None:
        """Called with the harness observation right after every reset."""

    def _split(self, task: str) -> tuple[str, int | None]:
        """(RLBench task file name, fixed variation or None) of one of ``tasks()``."""
        return task, None

    # ---- protocol ----------------------------------------------------------------------------------------------
    def variations(self, task: str) -> int:
        self._check_task(task)
        return 1

    def _check_task(self, task: str) -> None:
        if task not in self.tasks():
            raise ValueError(f"task {task!r} is not one of {self.benchmark}'s tasks {self.tasks()}")

    def preflight(self) -> None:
        """Import the simulator stack and check the fork without launching anything: a runner calls it before the
        first episode, so a missing piece is one clear error, not a failed episode per test episode."""
        if self._mods is None:
            mods = import_harness(self._modules(), self.benchmark)
            self._check_fork(mods)
            self._mods = mods

    def _ensure(self, task: str, episode: int) -> None:
        """Launch the simulator / load the task as needed (see ``_environment_key`` and ``_episodes_before``)."""
        self.preflight()
        key = self._environment_key(task)
        if self._env is not None and key != self._env_key:
            self._shutdown()
        if self._env is None:
            self._env = self._make_environment(self._mods, task)
            self._env.launch()
            self.launches += 1
            self._env_key, self._task_env, self._task_name = key, None, None
        before = self._episodes_before(episode)
        stale = before is not None and self._inits_since_load > before  # gone past: reload to rewind the draws
        if self._task_env is None or self._task_name != task or stale:
            self._task_env = self._env.get_task(self._task_class(self._mods, self._split(task)[0]))
            self._task_name, self._inits_since_load = task, 0

    def reset(self, task: str, variation: int, seed: int) -> Observation:
        self._check_task(task)
        run, episode = split_episode_seed(seed)
        stored = self._stored_episode(task, run, episode) if self.config.test_root else None
        self._start_poses = None  # a reset that fails must not leave the last episode's poses to diagnose against
        try:
            self._ensure(task, episode)
            te = self._task_env
            for _ in range(self._inits_since_load, self._episodes_before(episode) or 0):
                te.reset()  # replays an earlier episode's draws (COLOSSEUM's factor RNGs advance once per episode)
                self._inits_since_load += 1
            if stored is not None:
                folder, variation = stored
                te.set_variation(variation)
                demo = self._mods["rlbench.demo"].Demo([], random_seed=stored_rng_state(folder))
                descriptions, obs = te.reset_to_demo(demo)
            else:
                fixed = self._split(task)[1]
                variation = fixed if fixed is not None else variation % te.variation_count()
                np.random.seed(seed % 2**32)  # RLBench samples scenes from numpy's global RNG
                random.seed(seed)
                te.set_variation(variation)
                descriptions, obs = te.reset()
            self._inits_since_load += 1
            self._on_reset(obs)
            self._start_poses = self._object_poses()
            self._steps = 0
            self._source = stored[0] if stored is not None else None
            self._last = convert_observation(
                obs, self.config.cameras, self._instructions(list(descriptions), seed), task, variation, episode,
                {"benchmark": self.benchmark, "run": run, "source": str(stored[0]) if stored else "live"})
        except (HarnessNotInstalled, ValueError):
            raise
        except Exception as e:  # the simulator failed to build the scene: restart it and let the runner retry
            self._crash(e, "reset")
        return self._last

    def step(self, keypose: Keypose) -> StepResult:
        if self._last is None:
            raise ValueError("step() before reset()")
        if self._steps >= self.config.max_keyposes:
            return StepResult(self._last, False, True, {"error": f"step limit: {self.config.max_keyposes} keyposes"})
        mods = self._mods
        planner_errors = (mods["pyrep.errors"].IKError, mods["pyrep.errors"].ConfigurationPathError,
                          mods["rlbench.backend.exceptions"].InvalidActionError)
        self._steps += 1
        try:
            action = self._action(keypose)
        except ValueError as e:  # e.g. a zero quaternion: an invalid action, as RLBench would call it
            return StepResult(self._last, False, True, {"error": f"InvalidActionError: {e}", "steps": self._steps})
        try:
            obs, reward, terminate, info = self._execute(action)
        except planner_errors as e:
            return StepResult(self._last, False, True, {"error": f"{type(e).__name__}: {e}", "steps": self._steps})
        except Exception as e:
            self._crash(e, "step")
        self._last = convert_observation(obs, self.config.cameras, self._last.instructions, self._last.task,
                                         self._last.variation, self._last.episode, self._last.misc)
        success = reward >= 1.0  # YARR and GemBench both count reward 1 as success
        limit = self._steps >= self.config.max_keyposes
        done = success or limit or (terminate and self.terminate_ends_episode)
        info = {**info, "steps": self._steps, "action": action.tolist()}
        if done and not success:
            if terminate and self.terminate_ends_episode:
                info["error"] = "task failure condition"
            else:  # ran out of keyposes: no error, like the runner's own cap
                info["step_limit"] = True
        return StepResult(self._last, success, done, info)

    def expert_keyposes(self) -> list[Keypose]:
        """The stored test demo's own keyposes: the gripper pose, state and ``ignore_collisions`` at each keyframe
        of its recording (what training targets; RVT's ``replay_ground_truth``). Replaying them is the ceiling the
        harness and its planner allow, the ``expert`` baseline of ``bridgevla eval``."""
        if self._source is None:
            raise ValueError(f"{self.benchmark}: the expert replays stored test demos; set env.test_root")
        return list(import_rlbench_episode(self._source, cameras=[], keyframe_start=self.keyframe_start).keyposes)

    def _object_poses(self) -> list[tuple[Any, np.ndarray, np.ndarray]] | None:
        """(object, position, xyzw quaternion) of every shape in the task's tree, listed as RLBench's own
        ``Task.set_initial_objects_in_scene`` does (``get_base().get_objects_in_tree``). Shapes only: the tree's
        dummies are waypoints, and its joints and sensors ride on shapes. The objects themselves are kept because a
        grasped object is re-parented to the gripper and leaves the task's tree until released. None when they
        cannot be read: this is analysis only and must not fail the reset."""
        try:
            shape = self._mods["pyrep.const"].ObjectType.SHAPE
            objects = self._task_env._task.get_base().get_objects_in_tree(object_type=shape, exclude_base=True)
            return [(o, np.asarray(o.get_position(), dtype=np.float64),
                     np.asarray(o.get_quaternion(), dtype=np.float64)) for o in objects]
        except Exception:  # a simulator that really failed fails the next step instead
            return None

    def diagnose(self) -> str | None:
        """What the episode did to the scene, for failure analysis (``bridgevla.evaluation.failures``): the task's
        shapes that moved more than ``DIAGNOSIS_MOVE`` metres or turned more than ``DIAGNOSIS_TURN`` degrees since
        reset, and what the gripper still holds: "moved objects without reaching the goal: <names>[ (holding
        <names>)]" or "no object moved". RLBench tasks do not say which of their objects the instruction is about
        (no ``manipulated``/``receivers`` lists as in the embedded benchmark), so this cannot tell the right object
        from a distractor. Not seen: a press that keeps no pose (a button that springs back) and objects outside the
        task's tree (COLOSSEUM's distractor models). None when there is no episode to diagnose."""
        if self._last is None or self._task_env is None or self._start_poses is None:
            return None  # before the first reset, after a failed one, or the simulator crashed and was shut down
        try:
            held = {o.get_name() for o in self._task_env._task.robot.gripper.get_grasped_objects()}
            # an object the task deleted during the episode has no pose to compare: left out
            now = [(o.get_name(), p, q, np.asarray(o.get_position(), dtype=np.float64),
                    np.asarray(o.get_quaternion(), dtype=np.float64))
                   for o, p, q in self._start_poses if o.still_exists()]
        except Exception:  # a dying simulator raises anything: better no diagnosis than a wrong one
            return None
        touched = set(held)
        for name, p0, q0, p1, q1 in now:
            # PyRep's get_quaternion() is xyzw, as quaternion_angle takes it
            turn = float(quaternion_angle(torch.from_numpy(q1), torch.from_numpy(q0)))
            if np.linalg.norm(p1 - p0) > DIAGNOSIS_MOVE or turn > DIAGNOSIS_TURN:
                touched.add(name)
        if not touched:
            return "no object moved"
        holding = f" (holding {', '.join(sorted(held))})" if held else ""
        return f"moved objects without reaching the goal: {', '.join(sorted(touched))}{holding}"

    def _crash(self, error: Exception, where: str) -> None:
        self._shutdown()
        raise SimulatorError(f"{self.benchmark} simulator failed during {where}: {type(error).__name__}: {error}"
                             ) from error

    def _shutdown(self) -> None:
        env, self._env, self._task_env, self._task_name, self._env_key = self._env, None, None, None, None
        self._last, self._start_poses = None, None
        if env is not None:
            try:
                env.shutdown()
            except Exception:  # a crashed CoppeliaSim may not shut down cleanly; the next launch starts afresh
                pass

    def close(self) -> None:
        self._shutdown()


def has_parameter(func: Any, name: str) -> bool:
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
