"""EmbeddedEnv: the MuJoCo tabletop benchmark behind ``benchmarks.protocol.Environment``."""

from __future__ import annotations

import warnings
import zlib

import mujoco
import numpy as np
import torch

from benchmarks.embedded import perturbations as pert
from benchmarks.embedded.config import EmbeddedConfig
from benchmarks.embedded.levels import level_tasks
from benchmarks.embedded.motion import PlanningError, plan
from benchmarks.embedded.scene import scene_mjcf
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks import ALL_TASKS, TASKS
from benchmarks.embedded.tasks.base import Task, quat_xyzw_from_matrix
from benchmarks.protocol import (
    DIAGNOSIS_MOVE,
    DIAGNOSIS_TURN,
    Keypose,
    KeyposeRejected,
    Observation,
    StepResult,
    WorkspaceGuard,
)
from rendering import quaternion_angle
from rendering.bounds import SceneBounds

_MIN_SPEED = 0.3  # rad/s: moving ticks stay well above PerAct's 0.1 "stopped" threshold
_STEP_SETTLE = 0.1  # s of physics closing every step (a pushed block comes to rest)


class EmbeddedEnv:
    """RLBench-like keypose environment. One scene is compiled per task on first use and reused (a second one, with
    the texture bank and distractor objects, for the task's perturbed cells).

    Task names: a catalogue task (``tasks.TASKS``), a level-2-4 test task (``tasks.TEST_TASKS``), or a perturbation
    cell ``"<task>@<factor>"`` (``perturbations.SUITE_FACTORS``). ``config.suite`` picks which of them
    ``tasks()`` lists; every name can be reset whatever the suite."""

    def __init__(self, config: EmbeddedConfig | None = None) -> None:
        self.config = config or EmbeddedConfig()
        self.guard = WorkspaceGuard(self.workspace(), self.config.workspace_tolerance)
        self._sims: dict[tuple[str, bool], Sim] = {}
        self._task_objs: dict[str, Task] = {}
        self._task: Task | None = None
        self._name = ""  # the name reset() was called with (a perturbation cell names its factor)
        self._sim: Sim | None = None
        self._variation = 0
        self._seed = 0
        self._steps = 0
        self._done = True
        self._success = False
        self._expert: list[Keypose] = []
        self._recording: list[Observation] | None = None
        self._image_every = 10
        self._tick = 0

    # ------------------------------------------------------------------ catalogue
    def tasks(self) -> list[str]:
        """The suite's task names: the catalogue (the five simplest first), every defined perturbation cell
        (task-major, factors in COLOSSEUM's order), or every level task (L1 to L4)."""
        if self.config.suite == "perturbations":
            names = [pert.cell_name(t, f) for t, cls in TASKS.items() for f in pert.SUITE_FACTORS
                     if pert.excluded(cls, f) is None]
        elif self.config.suite == "levels":
            names = level_tasks()
        else:
            names = list(TASKS)
        only = self.config.suite_tasks
        if only:
            known = {pert.split_name(n)[0] for n in names}
            unknown = [t for t in only if t not in known]
            if unknown:
                raise ValueError(f"suite_tasks: {unknown} not in suite {self.config.suite!r} (has {sorted(known)})")
            names = [n for n in names if pert.split_name(n)[0] in only]
        return names

    task_names = tasks

    def workspace(self) -> SceneBounds:
        """The box keyposes are executed in (``benchmarks.protocol.environment_workspace``)."""
        return SceneBounds(tuple(self.config.workspace_lo), tuple(self.config.workspace_hi))

    def _task_obj(self, name: str) -> Task:
        task, _ = pert.split_name(name)
        if task not in ALL_TASKS:
            raise ValueError(f"task {task!r} unknown; available: {sorted(ALL_TASKS)}")
        if task not in self._task_objs:
            self._task_objs[task] = ALL_TASKS[task]()  # tasks keep per-episode state: one instance per env
        return self._task_objs[task]

    def variations(self, task: str) -> int:
        n = self._task_obj(task).num_variations()
        return n if self.config.max_variations is None else min(n, self.config.max_variations)

    def _check_variation(self, task: str, variation: int) -> Task:
        t = self._task_obj(task)
        n = self.variations(task)
        if not 0 <= variation < n:
            raise ValueError(f"variation must be in [0, {n}) for {task}, got {variation}")
        return t

    def instructions(self, task: str, variation: int) -> list[str]:
        return self._check_variation(task, variation).instructions(variation)

    # ------------------------------------------------------------------ episode
    def _scene(self, t: Task, perturbed: bool) -> Sim:
        key = (t.name, perturbed)
        if key not in self._sims:
            c = self.config
            assets, bodies = pert.scene_extras() if perturbed else ("", "")
            xml = scene_mjcf(t.objects_xml() + bodies, c.image_size, c.physics_timestep, t.assets_xml() + assets)
            self._sims[key] = Sim(xml, c.image_size, c.physics_timestep, c.collision_margin)
        return self._sims[key]

    def reset(self, task: str, variation: int, seed: int) -> Observation:
        t = self._check_variation(task, variation)
        factors = pert.active_factors(t, pert.split_name(task)[1])
        sim = self._scene(t, perturbed=bool(factors))
        sim.reset_state()
        # The scene depends on (task, variation, seed) only: a fresh generator from exactly those. A perturbation
        # draws from its own generators, so the layout is the same under every factor.
        rng = np.random.default_rng([zlib.crc32(t.name.encode()), variation, seed])
        t.setup(sim, variation, rng)
        mujoco.mj_forward(sim.model, sim.data)
        if factors:
            pert.perturb(sim, t, factors, variation, seed, self.config.perturbation)
        self._task, self._name, self._sim, self._variation, self._seed = t, task, sim, variation, seed
        self._steps, self._done, self._success = 0, False, False
        self._expert = t.expert(sim)
        if "distractor" in factors:
            pert.place_distractors(sim, t, self._expert, variation, seed, self.config.perturbation)
            mujoco.mj_forward(sim.model, sim.data)
        self._start_xpos = sim.data.xpos.copy()  # where every body was: diagnose() compares against it
        self._start_xquat = sim.data.xquat.copy()
        return self._observation(cameras=True)

    def diagnose(self) -> str | None:
        """What the episode did to the scene, for failure analysis (``bridgevla.evaluation.failures``): which objects
        moved by more than ``DIAGNOSIS_MOVE`` metres or turned by more than ``DIAGNOSIS_TURN`` degrees since reset,
        grouped by top-level body and judged against the task's own objects (``manipulated`` and ``receivers``; and
        ``Task.acted_on`` for changes a pose does not keep, a button pressed and sprung back). A failed episode
        without an error is then "moved a distractor" (the wrong object), "moved the task's objects to the wrong
        place" (the right object, another of the task's places), "... away from the goal" (the right object, further
        from its place than it started), "moved the task's objects without reaching the goal" (the right object, the
        wrong order or not precise enough; with the distances to the goal where the task has a place) or "no object
        moved" (missed everything)."""
        if self._task is None or self._sim is None:
            return None
        sim, t = self._sim, self._task
        m = sim.model
        robot = m.body_rootid[sim.body_id("panda_link0")]
        # MuJoCo's quaternions are wxyz, the renderer's xyzw; the angle, 2 acos |<q0, q1>|, is the same in either order.
        turned = quaternion_angle(torch.from_numpy(sim.data.xquat), torch.from_numpy(self._start_xquat)).numpy()
        turned = turned > DIAGNOSIS_TURN
        moved = (np.linalg.norm(sim.data.xpos - self._start_xpos, axis=1) > DIAGNOSIS_MOVE) | turned
        roots = {int(m.body_rootid[b]) for b in np.flatnonzero(moved) if b > 0 and m.body_rootid[b] != robot}
        names = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, r) for r in roots}
        own = set(t.manipulated) | set(getattr(t, "receivers", ()))
        held = sim.grasp.body if sim.grasp is not None else None
        if held is not None and m.body_rootid[held] != robot:
            held_name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.body_rootid[held]))
            if held_name not in own:
                return f"moved a distractor: holding {held_name}"
        other = sorted(names - own)
        if other:
            return f"moved a distractor: {', '.join(other)}"
        if names & own or t.acted_on(sim):
            return self._placement_diagnosis()
        return "no object moved"

    def _placement_diagnosis(self) -> str:
        """The right objects moved, the goal not reached: for a task with a choice of place (``Task.placement``),
        whether its object went to another place (nearer to it than to the goal, and nearer than it started: an
        object merely left where the layout put it does not count), ended further from the goal than it started
        (knocked away: lost control, not precision) or stopped short of it, with the distances."""
        sim, t = self._sim, self._task
        placement = t.placement()
        if placement is None:
            return "moved the task's objects without reaching the goal"
        obj, goal, places = placement
        ids = [sim.body_id(p) for p in places]
        here, start = sim.data.xpos[sim.body_id(obj), :2], self._start_xpos[sim.body_id(obj), :2]
        centres = sim.data.xpos[ids, :2]
        dist = np.linalg.norm(centres - here, axis=1)
        nearest = int(np.argmin(dist))
        g = places.index(goal)
        to_goal, at_start = float(dist[g]), float(np.linalg.norm(centres[g] - start))
        if places[nearest] != goal and dist[nearest] < np.linalg.norm(centres[nearest] - start):
            return (f"moved the task's objects to the wrong place: {obj} nearest {places[nearest]}, the goal is "
                    f"{goal} ({100 * to_goal:.1f} cm away)")
        distances = f"{obj} {100 * to_goal:.1f} cm from {goal}, {100 * at_start:.1f} cm at the start"
        if to_goal > at_start:
            return f"moved the task's objects away from the goal: {distances}"
        return f"moved the task's objects without reaching the goal: {distances}"

    def expert_keyposes(self) -> list[Keypose]:
        """The scripted plan for the episode just reset (deterministic in task, variation, seed)."""
        if self._task is None:
            raise RuntimeError("call reset() before expert_keyposes()")
        return [Keypose(k.position.copy(), k.quaternion.copy(), k.gripper_open, k.ignore_collisions)
                for k in self._expert]

    def step(self, keypose: Keypose) -> StepResult:
        if self._task is None or self._sim is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            return StepResult(self._observation(True), self._success, True, {"error": "episode already over"})
        info: dict = {}
        try:
            keypose, report = self.guard.check(keypose)
            if report.clamped:
                info["clamped"] = {"requested": report.requested.tolist(), "executed": report.executed.tolist()}
            self._execute(keypose)
            self._success = bool(self._task.success(self._sim))
        except KeyposeRejected as e:
            info["error"] = f"invalid keypose: {e}"
        except (PlanningError, ValueError) as e:
            info["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - the protocol forbids exceptions escaping step()
            info["error"] = f"internal error: {type(e).__name__}: {e}"
            # Still a failed episode for the caller, but a bug must not pass silently.
            warnings.warn(f"EmbeddedEnv.step: {info['error']}", RuntimeWarning, stacklevel=2)
        self._steps += 1
        info["keyposes"] = self._steps
        self._done = self._success or "error" in info or self._steps >= self.config.max_keyposes
        if "error" in info:
            self._success = False
        return StepResult(self._observation(True), self._success, self._done, info)

    def close(self) -> None:
        for s in self._sims.values():
            s.close()
        self._sims.clear()

    # ------------------------------------------------------------------ recording
    def start_recording(self, image_every: int = 10) -> None:
        """Record one Observation per control tick from now on; the current state is frame 0 (with images)."""
        if image_every < 1:
            raise ValueError(f"image_every must be >= 1, got {image_every}")
        if self._sim is None:
            raise RuntimeError("call reset() before start_recording()")
        self._image_every = image_every
        self._tick = 0
        self._recording = [self._observation(cameras=True)]

    def stop_recording(self) -> list[Observation]:
        frames, self._recording = self._recording or [], None
        return frames

    def _record(self, first: bool, last: bool) -> None:
        if self._recording is None:
            return
        self._tick += 1
        images = first or last or self._tick % self._image_every == 0
        self._recording.append(self._observation(cameras=images))

    # ------------------------------------------------------------------ execution
    def _execute(self, keypose: Keypose) -> None:
        """Move to ``keypose``, which the workspace guard has let through (finite, inside the workspace)."""
        c, sim = self.config, self._sim
        pos, quat = keypose.position, keypose.quaternion
        qx, qy, qz, qw = quat / np.linalg.norm(quat)
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, np.array([qw, qx, qy, qz]))
        waypoints = plan(sim, pos, rot.reshape(3, 3), keypose.ignore_collisions, c.detour_heights,
                         c.workspace_hi[2], c.ik_position_tolerance, c.ik_rotation_tolerance,
                         c.retry_ignoring_collisions)
        path = np.stack([sim.arm_q] + waypoints)
        seg = np.max(np.abs(np.diff(path, axis=0)), axis=1)
        length = float(seg.sum())
        n = 1 if length < 1e-4 else max(c.min_ticks, int(np.ceil(length / c.max_joint_step)))
        dt = c.tick_seconds if length < 1e-4 else min(c.tick_seconds, length / (n * _MIN_SPEED))
        # Arc length along the piecewise-linear path (max-norm per segment) -> configuration at each tick.
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        s = np.linspace(0.0, length, n + 1)[1:]
        qs = np.stack([np.interp(s, cum, path[:, j]) for j in range(7)], axis=1)
        prev = path[0]
        for k in range(n):  # a handful of ticks per keypose
            last = k == n - 1
            sim.advance(qs[k], (qs[k] - prev) / dt, dt)
            prev = qs[k]
            if last:
                self._finish_move(keypose.gripper_open, qs[k])
            self._task.on_tick(sim)
            self._record(first=k == 0, last=last)

    def _finish_move(self, gripper_open: bool, q: np.ndarray) -> None:
        """The arm has arrived: stop it, actuate the gripper (MoveArmThenGripper), let the scene settle."""
        sim = self._sim
        zero = np.zeros(7)
        changed = gripper_open != sim.gripper_open
        if changed:
            sim.open_gripper() if gripper_open else sim.close_gripper()
        sim.advance(q, zero, self.config.settle_seconds if changed else _STEP_SETTLE)

    # ------------------------------------------------------------------ observation
    def _observation(self, cameras: bool) -> Observation:
        sim, t = self._sim, self._task
        p, r = sim.tcp_pose()
        frames = sim.render(self.config.cameras) if cameras else {}
        return Observation(
            cameras=frames,
            gripper_pose=np.concatenate([p, quat_xyzw_from_matrix(r)]),
            gripper_open=1.0 if sim.gripper_open else 0.0,
            joint_positions=sim.data.qpos[sim.arm_qadr].copy(),
            joint_velocities=sim.data.qvel[sim.arm_dadr].copy(),
            instructions=t.instructions(self._variation),
            task=self._name,
            variation=self._variation,
            episode=self._seed,
            misc={"finger_positions": sim.data.qpos[sim.finger_qadr].copy(), "keyposes_done": self._steps},
        )
