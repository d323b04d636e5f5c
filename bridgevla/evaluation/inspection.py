"""Inspecting one episode keypose by keypose: what the policy saw and predicted, next to a reference and what the
arm did (``bridgevla inspect``; the rerun recording is written by ``bridgevla.evaluation.rerun_log``).

Three sources give the same stream of :class:`KeyposeStep` s, handed one by one to a sink (so that a live viewer
fills while an episode runs):

- an **evaluation episode** (:func:`inspect_rollout`): the agent plays ``(task, episode, seed)`` live through the
  runner's own episode loop, with the runner's seed convention, so it is the very scene ``bridgevla eval`` scored.
  The reference is the environment's scripted plan (``expert_keyposes``), index by index — a fair comparison until
  the policy leaves the plan. The arm's motion comes from the environment's optional tick recording.
- a **dataset episode** (:func:`inspect_dataset_episode`): the policy is asked at every keyframe start (the states
  evaluation queries), the reference is the keypose the episode executed next (the trainer's target), and the
  motion is the recorded gripper stream.
- a **robot run**: the robot runner logs episodes in the dataset format, so it is a dataset episode; with
  ``extra.source == "robot"`` the reference is labelled "executed" (what the robot did) rather than "expert".

Every step carries the cloud the policy rendered (``BridgeVLAPolicy.input_cloud``), both stages' views and heatmaps,
each point's fusion score per stage (``rendering.heatmap_scores``), the stage-2 zoom box, the predicted and reference
keyposes and their errors. The episode ends with a final step holding only the end state (no prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from benchmarks.protocol import Environment, Keypose, Observation
from bridgevla.data.preprocess import as_bounds, observation_cloud
from bridgevla.evaluation.observe import TickRecorder
from rendering import (
    cube_to_world,
    heatmap_scores,
    project,
    quaternion_angle,
    unzoom,
    world_to_cube,
    zoom,
)

NO_IMAGES = 1 << 30  # TickRecorder.image_every for trajectories: low-dimensional state only


@dataclass
class StageView:
    """One stage of the policy at one keypose."""

    views: np.ndarray  # (3, S, S, 3) uint8: the rendered RGB the backbone saw (top, front, side)
    heatmaps: np.ndarray  # (3, S, S) float32 probabilities, each view sums to 1
    pixels: np.ndarray  # (3, 2) float (u, v) of the decoded point in each view (pixel centres at integers)
    scores: np.ndarray  # (N,) float32: each cloud point's fusion score under this stage's heatmaps (0 outside)


@dataclass
class KeyposeStep:
    index: int
    observation: Observation  # the state the keypose was predicted from (the end state on the final step)
    points: np.ndarray  # (N, 3) float32 world metres: the cloud the policy rendered (cropped to the bounds)
    colors: np.ndarray  # (N, 3) float32 in [0, 1]
    predicted: Keypose | None = None  # None on the final step, or without a policy on a dataset episode
    reference: Keypose | None = None  # the expert's (or the executed) keypose for this step
    stages: list[StageView] = field(default_factory=list)  # empty for agents that are not the policy
    stage1_position: np.ndarray | None = None  # (3,) world: the stage-2 zoom centre
    zoom_box: tuple[np.ndarray, np.ndarray] | None = None  # world (lo, hi) corners of the stage-2 cube
    gripper_open_prob: float | None = None
    ignore_collisions_prob: float | None = None
    trajectory: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # (T, 7) gripper poses executing it
    trajectory_open: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) gripper open per tick
    errors: dict[str, float] = field(default_factory=dict)
    final: bool = False
    note: str = ""  # what the environment said after this keypose (an error), if anything


@dataclass
class EpisodeHeader:
    source: str  # "evaluation", "dataset" or "robot"
    task: str
    variation: int
    seed: int
    episode: int
    instructions: list[str]
    bounds: list[float]  # the crop box of the clouds (the policy's bounds when there is a policy)
    agent: str
    reference: str  # what the reference keyposes are: "expert" or "executed"


class EpisodeSink(Protocol):
    def begin(self, header: EpisodeHeader) -> None: ...

    def step(self, step: KeyposeStep) -> None: ...

    def end(self, outcome: dict[str, Any]) -> None: ...


def keypose_errors(predicted: Keypose, reference: Keypose, stage1: np.ndarray | None = None) -> dict[str, float]:
    """Position error (cm), stage-1 error (cm, when given), geodesic rotation error (degrees), and whether the
    gripper and collision flags agree (1.0 / 0.0)."""
    out = {"position_cm": float(np.linalg.norm(predicted.position - reference.position) * 100)}
    if stage1 is not None:
        out["stage1_cm"] = float(np.linalg.norm(np.asarray(stage1) - reference.position) * 100)
    angle = quaternion_angle(torch.as_tensor(predicted.quaternion, dtype=torch.float64)[None],
                             torch.as_tensor(reference.quaternion, dtype=torch.float64)[None])
    out["rotation_deg"] = float(angle[0])
    out["gripper_agrees"] = float(predicted.gripper_open == reference.gripper_open)
    out["collision_agrees"] = float(predicted.ignore_collisions == reference.ignore_collisions)
    return out


def _uint8_views(views: torch.Tensor) -> np.ndarray:
    """(3, C, S, S) model input (RGB first, in [0, 1]) → (3, S, S, 3) uint8."""
    return (views[:, :3].float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def policy_step(policy: Any, observation: Observation, index: int) -> KeyposeStep:
    """Ask ``policy`` (a ``BridgeVLAPolicy``) for the keypose at ``observation`` and keep everything it computed."""
    keypose, pred = policy.act(observation, return_prediction=True)
    points, colors = policy.input_cloud(observation)
    bounds, s = policy.bounds, policy.image_size
    factor = float(policy.config.zoom_factor)
    cube = world_to_cube(torch.from_numpy(points).double(), bounds)
    p1 = pred.cube_points[0][0].double().cpu()
    stage_points = [cube, zoom(cube, p1, factor)]  # each stage scores the cloud in its own frame
    stages = []
    for k in range(len(pred.views)):
        heat = pred.heatmaps[k][0].double().cpu()
        stages.append(StageView(
            views=_uint8_views(pred.views[k][0]),
            heatmaps=heat.float().numpy(),
            pixels=project(pred.cube_points[k][0].double().cpu(), s)[:, :2].numpy(),
            scores=heatmap_scores(heat[None], stage_points[k][None])[0].float().numpy(),
        ))
    corners = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    box = cube_to_world(unzoom(corners, p1, factor), bounds).numpy()
    return KeyposeStep(
        index=index, observation=observation, points=points, colors=colors, predicted=keypose, stages=stages,
        stage1_position=pred.stage1_position[0].double().cpu().numpy(), zoom_box=(box[0], box[1]),
        gripper_open_prob=float(pred.gripper_open_prob[0]),
        ignore_collisions_prob=float(pred.ignore_collisions_prob[0]),
    )


def plain_step(observation: Observation, index: int, bounds: Sequence[float], cameras: list[str] | None
               ) -> KeyposeStep:
    """A step without a policy prediction: the cropped cloud only."""
    points, colors = observation_cloud(observation, as_bounds(bounds), cameras)
    return KeyposeStep(index=index, observation=observation, points=points, colors=colors)


def _finish(step: KeyposeStep, reference: Keypose | None) -> KeyposeStep:
    step.reference = reference
    if reference is not None and step.predicted is not None:
        step.errors = keypose_errors(step.predicted, reference, step.stage1_position)
    return step


class InspectingPolicyAgent:
    """The policy as a runner agent that keeps, for each ``act``, the full :class:`KeyposeStep`."""

    name = "policy"

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.last: KeyposeStep | None = None
        self.steps = 0

    def reset(self, env: Environment, observation: Observation, seed: int) -> None:
        self.last, self.steps = None, 0

    def act(self, observation: Observation) -> Keypose:
        self.last = policy_step(self.policy, observation, self.steps)
        self.steps += 1
        return self.last.predicted


class RolloutObserver:
    """Turns the runner's episode callbacks into :class:`KeyposeStep` s for ``sink`` (see the module doc)."""

    def __init__(self, agent: Any, sink: EpisodeSink, bounds: Sequence[float], cameras: list[str] | None) -> None:
        self.agent, self.sink, self.bounds, self.cameras = agent, sink, list(bounds), cameras
        self.ticks = TickRecorder(image_every=NO_IMAGES)
        self.plan: list[Keypose] = []
        self.obs: Observation | None = None
        self.index = 0
        self.path: list[np.ndarray] = []

    def on_reset(self, env: Environment, observation: Observation) -> None:
        planner = getattr(env, "expert_keyposes", None)
        self.plan = list(planner()) if callable(planner) else []
        self.obs, self.index = observation, 0
        self.ticks.start(env)

    def on_step(self, env: Environment, keypose: Keypose, observation: Observation, info: dict[str, Any]) -> None:
        last = getattr(self.agent, "last", None)
        step = last if last is not None and last.index == self.index else \
            plain_step(self.obs, self.index, self.bounds, self.cameras)
        step.predicted = keypose
        ticks = self.ticks.segment(env, observation)
        step.trajectory = np.stack([o.gripper_pose for o in ticks])
        step.trajectory_open = np.array([o.gripper_open for o in ticks], dtype=np.float64)
        step.note = str(info.get("error", "")) if isinstance(info, dict) else ""
        self.sink.step(_finish(step, self.plan[self.index] if self.index < len(self.plan) else None))
        self.obs, self.index = observation, self.index + 1

    def close(self, env: Environment) -> None:
        self.ticks.stop(env)

    def final_step(self) -> KeyposeStep | None:
        if self.obs is None:
            return None
        step = plain_step(self.obs, self.index, self.bounds, self.cameras)
        step.final = True
        return step


def inspect_rollout(env: Environment, agent: Any, spec: Any, max_keyposes: int, sink: EpisodeSink,
                    bounds: Sequence[float], cameras: list[str] | None = None, source: str = "evaluation"
                    ) -> dict[str, Any]:
    """Play ``spec`` (a runner ``EpisodeSpec``) with ``agent`` in ``env`` through the runner's episode loop,
    streaming every keypose to ``sink``; returns the runner's episode record."""
    from bridgevla.evaluation.runner import run_episode

    instructions = _instructions(env, spec)
    sink.begin(EpisodeHeader(source, spec.task, spec.variation, spec.seed, spec.episode, instructions, list(bounds),
                             spec.agent, "expert"))
    observer = RolloutObserver(agent, sink, bounds, cameras)
    record = run_episode(env, agent, spec, max_keyposes, observer=observer)
    final = observer.final_step()
    if final is not None:
        sink.step(final)
    sink.end(record)
    return record


def _instructions(env: Environment, spec: Any) -> list[str]:
    get = getattr(env, "instructions", None)
    return list(get(spec.task, spec.variation)) if callable(get) else []


def inspect_dataset_episode(episode: Any, policy: Any | None, sink: EpisodeSink, bounds: Sequence[float],
                            source: str | None = None) -> dict[str, Any]:
    """Every keyframe start of ``episode`` (a ``benchmarks.dataset.Episode``) through ``policy`` (or none),
    streamed to ``sink``; returns a summary record (mean errors, keyposes)."""
    from bridgevla.data.dataset import _target_keypose, sample_refs

    if not episode.keyframes:
        raise ValueError("episode has no keyframes: nothing to inspect")
    source = source or ("robot" if episode.extra.get("source") == "robot" else "dataset")
    cameras = None  # without a policy: every camera of the episode
    if policy is not None:
        bounds, cameras = policy.config.bounds, list(policy.config.cameras) or None
    sink.begin(EpisodeHeader(source, episode.task, episode.variation, episode.seed, episode.index,
                             list(episode.instructions), list(bounds), "policy" if policy is not None else "none",
                             "executed" if source == "robot" else "expert"))
    errors: list[dict[str, float]] = []
    refs = sample_refs(episode, 0, 0)
    for i, ref in enumerate(refs):
        obs = episode.frame(ref.start)
        step = policy_step(policy, obs, i) if policy is not None else plain_step(obs, i, bounds, cameras)
        pos, quat, grip, ignore = _target_keypose(episode, ref.target)
        target_tick = episode.keyframes[ref.target]
        step.trajectory = episode.gripper_pose[ref.start + 1: target_tick + 1]
        step.trajectory_open = episode.gripper_open[ref.start + 1: target_tick + 1]
        sink.step(_finish(step, Keypose(pos, quat, grip > 0.5, ignore > 0.5)))
        errors.append(step.errors)
    last = max((t for t in episode.image_frames), default=None)
    if last is not None:
        final = plain_step(episode.frame(last), len(refs), bounds, cameras)
        final.final = True
        sink.step(final)
    record: dict[str, Any] = {"task": episode.task, "episode": episode.index, "keyposes": len(refs),
                              "success": bool(episode.success), "error": None}
    if errors and errors[0]:
        record["mean_errors"] = {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}
    sink.end(record)
    return record


class CollectingSink:
    """Keeps everything in memory (tests, notebooks)."""

    def __init__(self) -> None:
        self.header: EpisodeHeader | None = None
        self.steps: list[KeyposeStep] = []
        self.outcome: dict[str, Any] | None = None

    def begin(self, header: EpisodeHeader) -> None:
        self.header = header

    def step(self, step: KeyposeStep) -> None:
        self.steps.append(step)

    def end(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome


def find_episode_folder(data: str | Path, task: str = "", episode: int = 0) -> Path:
    """``data`` itself when it is an episode folder (has episode.json), else ``data/<task>/episode_<episode>``."""
    from benchmarks.dataset import EPISODE_JSON

    root = Path(data)
    if (root / EPISODE_JSON).is_file():
        return root
    if not task:
        raise ValueError(f"data: {root} is not an episode folder (no {EPISODE_JSON}); name one, or give task= "
                         "and episode= to pick one from a dataset root")
    folder = root / task / f"episode_{episode:05d}"
    if not (folder / EPISODE_JSON).is_file():
        raise ValueError(f"data: no episode {episode} of task {task!r} under {root} (looked for {folder})")
    return folder


__all__ = [
    "CollectingSink",
    "EpisodeHeader",
    "EpisodeSink",
    "InspectingPolicyAgent",
    "KeyposeStep",
    "RolloutObserver",
    "StageView",
    "find_episode_folder",
    "inspect_dataset_episode",
    "inspect_rollout",
    "keypose_errors",
    "plain_step",
    "policy_step",
]


@dataclass
class InspectConfig:
    """``bridgevla inspect``: an evaluation episode (``task``, ``episode``, ``seed`` as in ``bridgevla eval``) or a
    stored one (``data``: an episode folder, or a dataset root with ``task`` and ``episode``)."""

    checkpoint: str | None = None  # a save_pretrained directory; needed by agent=policy, optional with data=
    data: str | None = None  # a stored episode (demo or robot run): inspect it instead of playing one
    benchmark: str = "embedded"
    task: str = ""
    episode: int = 0  # index within the evaluation run (variation = episode mod variations), or the dataset's
    seed: int = 0  # evaluation run
    seed_offset: int = 1_000_000  # as eval.seed_offset: the same (task, episode, seed) is the same scene
    agent: str = "policy"  # policy, expert or random (only the policy has views and heatmaps)
    max_keyposes: int = 25
    env: dict[str, Any] = field(default_factory=dict)  # options of the benchmark's environment
    bounds: list[float] = field(default_factory=lambda: [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6])  # crop without a policy
    device: str = "auto"
    out: str | None = "runs/inspect/episode.rrd"  # the recording; null with serve=true: stream only
    serve: bool = False  # also stream live to a web viewer (and keep serving until Ctrl-C)
    web_port: int = 9090
    grpc_port: int = 9876
    open_browser: bool = False

    def __post_init__(self) -> None:
        if self.data is None and not self.task:
            raise ValueError("task: name the task of the evaluation episode to inspect (or give data=EPISODE_DIR)")
        if self.episode < 0 or self.max_keyposes < 1:
            raise ValueError(f"episode must be >= 0 and max_keyposes >= 1, got {self.episode}, {self.max_keyposes}")
        if self.agent not in ("policy", "expert", "random"):
            raise ValueError(f"agent: {self.agent!r} is not one of ['policy', 'expert', 'random']")
        if self.data is None and self.agent == "policy" and not self.checkpoint:
            raise ValueError("checkpoint: agent=policy needs a policy directory (train.out_dir/policy)")
        if self.checkpoint and not Path(self.checkpoint).is_dir():
            raise ValueError(f"checkpoint: {self.checkpoint} is not a directory")
        if self.out is None and not self.serve:
            raise ValueError("out: give the .rrd file to write, or serve=true to stream to a viewer")
        if len(self.bounds) != 6:
            raise ValueError(f"bounds needs 6 values, got {len(self.bounds)}")


def run_inspect(cfg: InspectConfig, sink: EpisodeSink) -> dict[str, Any]:
    """Inspect the episode ``cfg`` names into ``sink``; returns its record."""
    from bridgevla.evaluation.agents import AgentSpec, make_agent
    from bridgevla.evaluation.envs import make_env
    from bridgevla.evaluation.runner import EvalConfig, episode_specs

    policy = None
    if cfg.checkpoint and (cfg.agent == "policy" or cfg.data is not None):
        from bridgevla.model.policy import BridgeVLAPolicy
        from bridgevla.training.loop import resolve_device

        policy = BridgeVLAPolicy.from_pretrained(cfg.checkpoint, device=resolve_device(cfg.device))
        policy.eval()
    if cfg.data is not None:
        from benchmarks.dataset import load_episode

        return inspect_dataset_episode(load_episode(find_episode_folder(cfg.data, cfg.task, cfg.episode)), policy,
                                       sink, cfg.bounds)
    env = make_env(cfg.benchmark, cfg.env)
    try:
        if cfg.task not in env.tasks():
            raise ValueError(f"task: {cfg.task!r} not in benchmark {cfg.benchmark!r} (has {env.tasks()})")
        # The runner's own episode numbering: the same (task, episode, seed) is the same scene as in bridgevla eval.
        ecfg = EvalConfig(benchmark=cfg.benchmark, checkpoint=cfg.checkpoint, agents=[cfg.agent], tasks=[cfg.task],
                          episodes=cfg.episode + 1, seeds=[cfg.seed], seed_offset=cfg.seed_offset, progress=False)
        spec = episode_specs(ecfg, [cfg.task], {cfg.task: env.variations(cfg.task)})[-1]
        if policy is not None:
            agent, bounds, cameras = InspectingPolicyAgent(policy), policy.config.bounds, list(policy.config.cameras)
        else:
            agent, bounds, cameras = make_agent(AgentSpec(cfg.agent, bounds=tuple(cfg.bounds))), cfg.bounds, []
        return inspect_rollout(env, agent, spec, cfg.max_keyposes, sink, bounds, cameras or None)
    finally:
        env.close()
