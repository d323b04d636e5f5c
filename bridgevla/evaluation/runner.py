"""The evaluation runner: agents × tasks × seeds × episodes through the environment protocol.

- Episode ``e`` of run ``seed`` on ``task`` uses variation ``e mod variations(task)`` and environment seed
  ``seed_offset + 10000·seed + e``; ``seed_offset`` keeps test scenes away from the demo seeds used for training.
- An episode ends on success, when the environment says done (an invalid keypose is a failure there), or after
  ``max_keyposes`` keyposes; an agent that raises fails the episode.
- Every keypose passes the workspace guard (``benchmarks.protocol.WorkspaceGuard``) before the environment sees it:
  the environment's own ``workspace()`` when it declares one, else ``bounds``. A keypose that is not finite or lies
  more than ``workspace_tolerance`` outside fails the episode, its error quoting requested vs allowed; one within the
  tolerance is clamped (counted in the record's ``clamped``).
- Every finished episode is one checksummed line appended (and fsync'd) to ``episodes.jsonl``; a restarted run reads
  it and skips what is done, so a crash costs at most the episodes in flight. Reading never loses a line: valid
  JSON lines it does not recognise stay, torn or corrupted ones move to ``episodes.jsonl.rejected``, and the file is
  only ever replaced atomically (``benchmarks.fileio``).
- A simulator failure (``benchmarks.protocol.SimulatorError``, or a worker process or Ray actor that died) voids the
  episode rather than failing it: it is rerun from its reset in a fresh simulator, up to ``restarts`` times.
- ``workers > 1`` runs one environment (and one agent) per process (workers exit when the parent dies,
  ``benchmarks.workers``); with ``ray_address`` the same episodes go to ``workers`` Ray actors (one simulator each)
  across a cluster (``bridgevla.evaluation.parallel``). Either way the driver alone writes the JSONL, as results
  arrive.
- ``videos=N``: an MP4 of each of the first N episodes per agent and task (first seed), written by
  ``bridgevla.evaluation.video`` (optional ``[viz]`` extra); the episode's record names it.
- A ``module:factory`` benchmark imports and runs code: ``evaluate`` refuses it unless ``allow_code`` (the CLI passes
  it for a benchmark named on the command line or with ``--allow-code``).

Nothing here knows a benchmark: environments come from ``bridgevla.evaluation.envs.make_env``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.fileio import REJECTED_SUFFIX, append_jsonl, read_jsonl
from benchmarks.protocol import (
    EPISODE_STRIDE,
    MAX_EPISODE_KEYPOSES,
    WORKSPACE_TOLERANCE,
    Environment,
    KeyposeRejected,
    SimulatorError,
    WorkspaceGuard,
    environment_diagnosis,
    environment_workspace,
)
from bridgevla.evaluation.agents import AGENT_NAMES, Agent, AgentSpec, make_agent, save_strip
from bridgevla.evaluation.envs import check_suite, make_env
from bridgevla.evaluation.observe import EpisodeObserver
from rendering.bounds import REFERENCE_BOUNDS, SceneBounds

EPISODES_FILE = "episodes.jsonl"


@dataclass
class EvalConfig:
    benchmark: str = "embedded"
    checkpoint: str | None = None  # a save_pretrained directory; needed by the 'policy' agent
    agents: list[str] = field(default_factory=lambda: ["policy"])
    tasks: list[str] = field(default_factory=list)  # empty: every task of the benchmark
    episodes: int = 25  # per task and seed
    seeds: list[int] = field(default_factory=lambda: [0])
    max_keyposes: int = MAX_EPISODE_KEYPOSES
    seed_offset: int = 1_000_000
    workers: int = 1  # processes (or Ray actors), each with its own environment
    restarts: int = 3  # reruns of an episode whose simulator failed (SimulatorError, a dead worker) before it fails
    ray_address: str = ""  # "" = no Ray; "auto" = the running cluster; "local" = start one here; or "ray://host:port"
    ray_num_cpus: float = 1.0  # per Ray actor (one simulator each)
    ray_num_gpus: float = 0.0  # per Ray actor: give the policy agent a GPU share on GPU clusters
    out_dir: str = "runs/eval"
    device: str = "auto"
    # Speed settings for the loaded policy instead of the saved ones (from_pretrained's runtime overrides, e.g.
    # {compile: model, compile_mode: reduce-overhead} on a GPU); they do not change the maths.
    runtime: dict[str, Any] = field(default_factory=dict)
    # The random baseline's box, and the workspace keyposes must lie in when the environment declares none.
    bounds: list[float] = field(default_factory=lambda: [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6])
    workspace_tolerance: float = WORKSPACE_TOLERANCE  # metres outside the workspace still clamped; beyond: refused
    strips: int = 0  # PNG strips (views + heatmaps per step) of the first N episodes per task (policy agent)
    videos: int = 0  # MP4 of the first N episodes per agent and task, first seed (needs the [viz] extra)
    video_camera: str = ""  # the camera the videos show; empty: the observation's first camera
    video_fps: int = 10
    progress: bool = True
    env: dict[str, Any] = field(default_factory=dict)  # options of the benchmark's environment
    # A suite of the benchmark (evaluation/envs.py, e.g. embedded: perturbations, levels): the environment
    # lists the suite's tasks, and the report lays the results out as the suite's table. Empty: the task list.
    suite: str = ""

    def __post_init__(self) -> None:
        from bridgevla.model.config import check_runtime

        check_runtime(self.runtime, "eval")
        for name in ("episodes", "max_keyposes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"eval.{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds:
            raise ValueError("eval.seeds must hold at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"eval.seeds must be distinct, got {self.seeds}")
        if not self.agents:
            raise ValueError("eval.agents must name at least one agent")
        bad = [a for a in self.agents if a not in AGENT_NAMES]
        if bad:
            raise ValueError(f"eval.agents: unknown {bad}; choose from {list(AGENT_NAMES)}")
        if "policy" in self.agents and not self.checkpoint:
            raise ValueError("eval.checkpoint is required when agents include 'policy'")
        if self.checkpoint and "policy" in self.agents and not Path(self.checkpoint).is_dir():
            raise ValueError(f"eval.checkpoint: {self.checkpoint} is not a directory")
        if len(self.bounds) != 6:
            raise ValueError(f"eval.bounds needs 6 values, got {len(self.bounds)}")
        SceneBounds.from_list(self.bounds)  # max > min, finite
        if not self.workspace_tolerance >= 0:
            raise ValueError(f"eval.workspace_tolerance must be >= 0 metres, got {self.workspace_tolerance}")
        if self.strips < 0:
            raise ValueError(f"eval.strips must be >= 0, got {self.strips}")
        if self.videos < 0:
            raise ValueError(f"eval.videos must be >= 0, got {self.videos}")
        if self.video_fps < 1:
            raise ValueError(f"eval.video_fps must be >= 1, got {self.video_fps}")
        if self.restarts < 0:
            raise ValueError(f"eval.restarts must be >= 0, got {self.restarts}")
        if self.ray_num_cpus <= 0 or self.ray_num_gpus < 0:
            raise ValueError(f"eval.ray_num_cpus must be > 0 and eval.ray_num_gpus >= 0, got "
                             f"{self.ray_num_cpus} and {self.ray_num_gpus}")
        if self.episodes > EPISODE_STRIDE:
            raise ValueError(f"eval.episodes must be <= {EPISODE_STRIDE}, got {self.episodes}")
        if self.suite:
            check_suite(self.benchmark, self.suite)
            if self.env.get("suite", self.suite) != self.suite:
                raise ValueError(f"eval.suite {self.suite!r} and eval.env.suite {self.env['suite']!r} disagree: "
                                 "set the suite once, with eval.suite")
            # The environment lists the suite's tasks: every process that builds one gets the option.
            self.env = {**self.env, "suite": self.suite}


@dataclass(frozen=True)
class EpisodeSpec:
    agent: str
    task: str
    variation: int
    seed: int  # evaluation run
    episode: int  # index within the run
    env_seed: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.agent, self.task, self.seed, self.episode)


def episode_specs(cfg: EvalConfig, tasks: list[str], variations: dict[str, int]) -> list[EpisodeSpec]:
    return [
        EpisodeSpec(agent, task, e % variations[task], seed, e, cfg.seed_offset + EPISODE_STRIDE * seed + e)
        for agent in cfg.agents for task in tasks for seed in cfg.seeds for e in range(cfg.episodes)
    ]


def workspace_guard(env: Environment, bounds: list[float], tolerance: float = WORKSPACE_TOLERANCE
                    ) -> WorkspaceGuard:
    """The guard every keypose of an evaluation passes: the environment's declared workspace, else ``bounds``."""
    return WorkspaceGuard(environment_workspace(env) or SceneBounds.from_list(bounds), tolerance)


def run_episode(env: Environment, agent: Agent, spec: EpisodeSpec, max_keyposes: int,
                strip: Path | None = None, restarts: int = 0, video: VideoRequest | None = None,
                observer: EpisodeObserver | None = None, guard: WorkspaceGuard | None = None) -> dict[str, Any]:
    """One episode. Never raises for agent or environment misbehaviour: a long evaluation must not die on one bad
    episode, so the exception is recorded as the failure reason in the JSONL (and counted in the report).
    A ``SimulatorError`` voids the attempt: the episode is rerun from its reset (the environment relaunches its
    simulator) up to ``restarts`` times; the record's ``restarts`` says how many it took.
    ``strip``: write a PNG of the agent's per-step pictures there (agents that can record, i.e. the policy).
    ``video``: write an MP4 of the episode (its path goes into the record as ``video``). ``observer``: any other
    :class:`~bridgevla.evaluation.observe.EpisodeObserver` (``bridgevla inspect`` uses one).
    ``guard``: the workspace guard (default: :func:`workspace_guard` with the reference bounds)."""
    if video is not None and observer is not None:
        raise ValueError("run_episode: pass a video or an observer, not both")
    guard = guard or workspace_guard(env, REFERENCE_BOUNDS.to_list())
    t0 = time.perf_counter()
    last: SimulatorError | None = None
    for attempt in range(restarts + 1):
        if video is not None:  # a fresh film per attempt: a voided attempt's frames must not leak into the next
            from bridgevla.evaluation.video import EpisodeVideo  # lazy: PyAV is an optional extra

            observer = EpisodeVideo(video.path, spec, video.camera, video.fps)
        try:
            record = {**_recorded(env, agent, spec, max_keyposes, strip, guard, observer), "restarts": attempt}
        except SimulatorError as e:
            last = e
            continue
        if video is not None and (written := observer.write(record)) is not None:
            record["video"] = str(written)
        return record
    return failed_record(spec, f"simulator: {last}", restarts, time.perf_counter() - t0)


def failed_record(spec: EpisodeSpec, error: str, restarts: int, seconds: float = 0.0) -> dict[str, Any]:
    """The record of an episode that could not be run to an outcome (its simulator kept failing)."""
    return {**asdict(spec), "success": False, "keyposes": 0, "error": error, "seconds": round(seconds, 3),
            "restarts": restarts}


def _recorded(env: Environment, agent: Agent, spec: EpisodeSpec, max_keyposes: int,
              strip: Path | None, guard: WorkspaceGuard, observer: EpisodeObserver | None = None) -> dict[str, Any]:
    recording = strip is not None and hasattr(agent, "frames")
    if recording:
        agent.frames = []
    try:
        return _episode(env, agent, spec, max_keyposes, guard, observer)
    finally:
        if observer is not None:
            observer.close(env)
        if recording:
            if agent.frames:
                save_strip(agent.frames, strip)
            agent.frames = None


def _episode(env: Environment, agent: Agent, spec: EpisodeSpec, max_keyposes: int, guard: WorkspaceGuard,
             observer: EpisodeObserver | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    success, steps, error, clamped = False, 0, None, 0
    try:
        obs = env.reset(spec.task, spec.variation, spec.env_seed)
        agent.reset(env, obs, spec.env_seed)
    except SimulatorError:
        raise
    except Exception as e:
        error = f"reset: {type(e).__name__}: {e}"
    else:
        if observer is not None:  # outside the try blocks: an observer's bug is not the agent's or the env's failure
            observer.on_reset(env, obs)
        for steps in range(1, max_keyposes + 1):  # noqa: B007 (steps is reported)
            try:
                kp = agent.act(obs)
            except Exception as e:
                error = f"agent: {type(e).__name__}: {e}"
                break
            try:
                kp, report = guard.check(kp)
            except KeyposeRejected as e:
                error = f"invalid keypose: {e}"
                break
            clamped += report.clamped
            try:
                obs, ok, done, info = env.step(kp)
            except SimulatorError:
                raise
            except Exception as e:  # the protocol forbids it, but a simulator bug must not kill the whole run
                error = f"env: {type(e).__name__}: {e}"
                break
            if observer is not None:
                observer.on_step(env, kp, obs, info)
            if ok:
                success = True
                break
            if done:
                error = info.get("error") if isinstance(info, dict) else None
                break
    record = {**asdict(spec), "success": bool(success), "keyposes": steps, "error": error, "clamped": clamped,
              "seconds": round(time.perf_counter() - t0, 3)}
    if not success and steps:
        try:  # analysis only: a bug in it must not cost the episode's record
            diagnosis = environment_diagnosis(env)
        except Exception as e:  # noqa: BLE001
            diagnosis = f"diagnosis failed: {type(e).__name__}: {e}"
        if diagnosis is not None:
            record["diagnosis"] = diagnosis
    return record


def _episode_key(r: dict[str, Any]) -> tuple[str, str, int, int] | None:
    """The key of a finished-episode record, or None for a JSON object that is not one (kept in the file, not used)."""
    try:
        key = (r["agent"], r["task"], r["seed"], r["episode"])
        ok = isinstance(r["success"], bool) and (r["error"] is None or isinstance(r["error"], str))
    except KeyError:
        return None
    types = (str, str, int, int)
    if not ok or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, types)):
        return None
    return key


def read_done(path: Path) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    """Finished episodes in ``path`` (the last record wins for a key). Never loses a line: valid JSON that is not an
    episode record stays in the file; a torn last line (a kill mid-write) or a corrupted line moves to
    ``<path>.rejected`` and the file is replaced atomically (``benchmarks.fileio.read_jsonl``)."""
    contents = read_jsonl(path)
    done: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for r in contents.records:
        key = _episode_key(r)
        if key is not None:
            done[key] = r
    if contents.rejected:
        lines = ", ".join(f"{n} ({why})" for n, why in contents.rejected[:5])
        warnings.warn(f"{path}: {len(contents.rejected)} unreadable line(s) moved to {path.name}{REJECTED_SUFFIX}, "
                      f"their episodes will be re-run: line {lines}", stacklevel=2)
    return done


class EpisodeWorker:
    """One environment and the agents (each built on first use, so a worker that only runs baselines never loads
    the model): what the driver, each worker process and each Ray actor run episodes with."""

    def __init__(self, benchmark: str, env_options: dict[str, Any], agent_specs: list[AgentSpec],
                 env: Environment | None = None, bounds: list[float] | None = None,
                 tolerance: float = WORKSPACE_TOLERANCE, allow_code: bool = False) -> None:
        self.env = make_env(benchmark, env_options, allow_code=allow_code) if env is None else env
        self.guard = workspace_guard(self.env, bounds or REFERENCE_BOUNDS.to_list(), tolerance)
        self.specs = {s.name: s for s in agent_specs}
        self.agents: dict[str, Agent] = {}

    def run(self, spec: EpisodeSpec, max_keyposes: int, strip: Path | None, restarts: int,
            video: VideoRequest | None = None) -> dict[str, Any]:
        if spec.agent not in self.agents:
            self.agents[spec.agent] = make_agent(self.specs[spec.agent])
        return run_episode(self.env, self.agents[spec.agent], spec, max_keyposes, strip, restarts, video,
                           guard=self.guard)

    def close(self) -> None:
        self.env.close()


def strip_path(cfg: EvalConfig, spec: EpisodeSpec) -> Path | None:
    """Where the PNG strip of ``spec`` goes, or None: the first ``strips`` episodes of the first seed, per task."""
    if cfg.strips and spec.seed == cfg.seeds[0] and spec.episode < cfg.strips:
        return Path(cfg.out_dir) / "strips" / f"{spec.agent}_{spec.task}_seed{spec.seed}_ep{spec.episode}.png"
    return None


@dataclass(frozen=True)
class VideoRequest:
    """Where and how to film one episode (plain values: it travels to worker processes and Ray actors)."""

    path: Path
    camera: str  # "" = the observation's first camera
    fps: int


def video_request(cfg: EvalConfig, spec: EpisodeSpec) -> VideoRequest | None:
    """The video of ``spec``, or None: the first ``videos`` episodes of the first seed, per agent and task."""
    if cfg.videos and spec.seed == cfg.seeds[0] and spec.episode < cfg.videos:
        path = Path(cfg.out_dir) / "videos" / f"{spec.agent}_{spec.task}_seed{spec.seed}_ep{spec.episode}.mp4"
        return VideoRequest(path, cfg.video_camera, cfg.video_fps)
    return None


def _inline(cfg: EvalConfig, env: Environment, specs: list[AgentSpec], todo: list[EpisodeSpec]
            ) -> Iterator[dict[str, Any]]:
    worker = EpisodeWorker(cfg.benchmark, cfg.env, specs, env=env, bounds=list(cfg.bounds),
                           tolerance=cfg.workspace_tolerance)
    for spec in todo:
        yield worker.run(spec, cfg.max_keyposes, strip_path(cfg, spec), cfg.restarts, video_request(cfg, spec))


def evaluate(cfg: EvalConfig, env: Environment | None = None, allow_code: bool = False) -> list[dict[str, Any]]:
    """Run (or finish) the evaluation described by ``cfg``; returns the records of all its episodes.
    ``allow_code``: accept a ``module:factory`` benchmark (see the module doc)."""
    out = Path(cfg.out_dir)
    own_env = env is None
    probe = make_env(cfg.benchmark, cfg.env, allow_code=allow_code) if env is None else env
    out.mkdir(parents=True, exist_ok=True)
    try:
        available = probe.tasks()
        tasks = list(cfg.tasks) or available
        unknown = [t for t in tasks if t not in available]
        if unknown:
            raise ValueError(f"eval.tasks: {unknown} not in benchmark {cfg.benchmark!r} (has {available})")
        preflight = getattr(probe, "preflight", None)  # optional: harnesses check their simulator install up front
        if callable(preflight):
            preflight()
        if "expert" in cfg.agents and not callable(getattr(probe, "expert_keyposes", None)):
            raise ValueError(f"eval.agents: 'expert' needs expert_keyposes(), which {cfg.benchmark!r} lacks")
        if cfg.videos:
            from bridgevla.evaluation.video import require_av

            require_av()  # before the first episode, not after a long run
        variations = {t: probe.variations(t) for t in tasks}
        specs = episode_specs(cfg, tasks, variations)
        path = out / EPISODES_FILE
        done = read_done(path)
        todo = [s for s in specs if s.key not in done]
        agent_specs = [AgentSpec(a, cfg.checkpoint, cfg.device, tuple(cfg.bounds), dict(cfg.runtime))
                       for a in cfg.agents]
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="eval", disable=not cfg.progress,
                   dynamic_ncols=True)
        with path.open("a") as f:
            for rec in _results(cfg, probe, agent_specs, todo, allow_code):
                append_jsonl(f, rec)  # one durable line per finished episode: the resume point
                done[(rec["agent"], rec["task"], rec["seed"], rec["episode"])] = rec
                bar.update(1)
        bar.close()
        return [done[s.key] for s in specs]
    finally:
        if own_env:
            probe.close()


def _results(cfg: EvalConfig, env: Environment, agent_specs: list[AgentSpec], todo: list[EpisodeSpec],
             allow_code: bool = False) -> Iterator[dict[str, Any]]:
    if cfg.ray_address:
        from bridgevla.evaluation.parallel import ray_results

        yield from ray_results(cfg, agent_specs, todo, allow_code)
    elif cfg.workers <= 1 or len(todo) <= 1:
        yield from _inline(cfg, env, agent_specs, todo)
    else:
        from bridgevla.evaluation.parallel import process_results

        yield from process_results(cfg, agent_specs, todo, allow_code)
