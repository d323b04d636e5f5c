"""The evaluation runner: agents × tasks × seeds × episodes through the environment protocol.

- Episode ``e`` of run ``seed`` on ``task`` uses variation ``e mod variations(task)`` and environment seed
  ``seed_offset + 10000·seed + e``; ``seed_offset`` keeps test scenes away from the demo seeds used for training.
- An episode ends on success, when the environment says done (an invalid keypose is a failure there), or after
  ``max_keyposes`` keyposes; an agent that raises or returns a non-finite keypose fails the episode.
- Every finished episode is one line appended to ``episodes.jsonl``; a restarted run reads it and skips what is
  done, so a crash costs at most the episodes in flight.
- ``workers > 1`` runs one environment (and one agent) per process; the parent alone writes the JSONL.

Nothing here knows a benchmark: environments come from ``bridgevla.evaluation.envs.make_env``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.protocol import MAX_EPISODE_KEYPOSES, Environment
from bridgevla.evaluation.agents import AGENT_NAMES, Agent, AgentSpec, make_agent, save_strip
from bridgevla.evaluation.envs import check_suite, make_env

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
    workers: int = 1  # processes, each with its own environment
    out_dir: str = "runs/eval"
    device: str = "auto"
    bounds: list[float] = field(default_factory=lambda: [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6])  # random baseline's box
    strips: int = 0  # PNG strips (views + heatmaps per step) of the first N episodes per task (policy agent)
    progress: bool = True
    env: dict[str, Any] = field(default_factory=dict)  # options of the benchmark's environment
    # A suite of the benchmark (evaluation/envs.py SUITES, e.g. embedded: perturbations, levels): the environment
    # lists the suite's tasks, and the report adds the suite's published table. Empty: the plain task list.
    suite: str = ""

    def __post_init__(self) -> None:
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
        if self.strips < 0:
            raise ValueError(f"eval.strips must be >= 0, got {self.strips}")
        if self.suite:
            check_suite(self.benchmark, self.suite)
            if "suite" in self.env:
                raise ValueError("eval.suite and eval.env.suite both given: set the suite once, with eval.suite")

    def env_options(self) -> dict[str, Any]:
        """Options of the environment: ``env``, plus the suite when one is asked for."""
        return {**self.env, "suite": self.suite} if self.suite else dict(self.env)


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
        EpisodeSpec(agent, task, e % variations[task], seed, e, cfg.seed_offset + 10_000 * seed + e)
        for agent in cfg.agents for task in tasks for seed in cfg.seeds for e in range(cfg.episodes)
    ]


def run_episode(env: Environment, agent: Agent, spec: EpisodeSpec, max_keyposes: int,
                strip: Path | None = None) -> dict[str, Any]:
    """One episode. Never raises for agent or environment misbehaviour: a long evaluation must not die on one bad
    episode, so the exception is recorded as the failure reason in the JSONL (and counted in the report).
    ``strip``: write a PNG of the agent's per-step pictures there (agents that can record, i.e. the policy)."""
    recording = strip is not None and hasattr(agent, "frames")
    if recording:
        agent.frames = []
    try:
        return _episode(env, agent, spec, max_keyposes)
    finally:
        if recording:
            if agent.frames:
                save_strip(agent.frames, strip)
            agent.frames = None


def _episode(env: Environment, agent: Agent, spec: EpisodeSpec, max_keyposes: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    success, steps, error = False, 0, None
    try:
        obs = env.reset(spec.task, spec.variation, spec.env_seed)
        agent.reset(env, obs, spec.env_seed)
    except Exception as e:
        error = f"reset: {type(e).__name__}: {e}"
    else:
        for steps in range(1, max_keyposes + 1):  # noqa: B007 (steps is reported)
            try:
                kp = agent.act(obs)
            except Exception as e:
                error = f"agent: {type(e).__name__}: {e}"
                break
            if not (np.isfinite(kp.position).all() and np.isfinite(kp.quaternion).all()) or \
                    np.linalg.norm(kp.quaternion) < 1e-6:
                error = "invalid keypose (non-finite or zero quaternion)"
                break
            try:
                obs, ok, done, info = env.step(kp)
            except Exception as e:  # the protocol forbids it, but a simulator bug must not kill the whole run
                error = f"env: {type(e).__name__}: {e}"
                break
            if ok:
                success = True
                break
            if done:
                error = info.get("error") if isinstance(info, dict) else None
                break
    return {**asdict(spec), "success": bool(success), "keyposes": steps, "error": error,
            "seconds": round(time.perf_counter() - t0, 3)}


def read_done(path: Path) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    """Finished episodes in ``path``. A torn last line (a crash mid-write) is dropped and the file repaired."""
    if not path.exists():
        return {}
    done: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    good: list[str] = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
            done[(r["agent"], r["task"], r["seed"], r["episode"])] = r
            good.append(line)
        except (json.JSONDecodeError, KeyError):
            continue
    path.write_text("".join(g + "\n" for g in good))
    return done


# ---- worker processes: one environment and one set of agents per process --------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(benchmark: str, env_options: dict[str, Any], agent_specs: list[AgentSpec]) -> None:
    import torch

    torch.set_num_threads(1)  # N workers on N cores: one thread each beats oversubscription
    _WORKER["env"] = make_env(benchmark, env_options)
    _WORKER["specs"] = {s.name: s for s in agent_specs}
    _WORKER["agents"] = {}


def _worker_run(spec: EpisodeSpec, max_keyposes: int, strip: Path | None) -> dict[str, Any]:
    agents = _WORKER["agents"]
    if spec.agent not in agents:  # built on first use, so a worker that only runs baselines never loads the model
        agents[spec.agent] = make_agent(_WORKER["specs"][spec.agent])
    return run_episode(_WORKER["env"], agents[spec.agent], spec, max_keyposes, strip)


def strip_path(cfg: EvalConfig, spec: EpisodeSpec) -> Path | None:
    """Where the PNG strip of ``spec`` goes, or None: the first ``strips`` episodes of the first seed, per task."""
    if cfg.strips and spec.seed == cfg.seeds[0] and spec.episode < cfg.strips:
        return Path(cfg.out_dir) / "strips" / f"{spec.agent}_{spec.task}_seed{spec.seed}_ep{spec.episode}.png"
    return None


def _inline(cfg: EvalConfig, env: Environment, specs: list[AgentSpec], todo: list[EpisodeSpec]
            ) -> Iterator[dict[str, Any]]:
    agents: dict[str, Agent] = {}
    by_name = {s.name: s for s in specs}
    for spec in todo:
        if spec.agent not in agents:
            agents[spec.agent] = make_agent(by_name[spec.agent])
        yield run_episode(env, agents[spec.agent], spec, cfg.max_keyposes, strip_path(cfg, spec))


def evaluate(cfg: EvalConfig, env: Environment | None = None) -> list[dict[str, Any]]:
    """Run (or finish) the evaluation described by ``cfg``; returns the records of all its episodes."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_env = env is None
    probe = make_env(cfg.benchmark, cfg.env_options()) if env is None else env
    try:
        available = probe.tasks()
        tasks = list(cfg.tasks) or available
        unknown = [t for t in tasks if t not in available]
        if unknown:
            raise ValueError(f"eval.tasks: {unknown} not in benchmark {cfg.benchmark!r} (has {available})")
        if "expert" in cfg.agents and not callable(getattr(probe, "expert_keyposes", None)):
            raise ValueError(f"eval.agents: 'expert' needs expert_keyposes(), which {cfg.benchmark!r} lacks")
        variations = {t: probe.variations(t) for t in tasks}
        specs = episode_specs(cfg, tasks, variations)
        path = out / EPISODES_FILE
        done = read_done(path)
        todo = [s for s in specs if s.key not in done]
        agent_specs = [AgentSpec(a, cfg.checkpoint, cfg.device, tuple(cfg.bounds)) for a in cfg.agents]
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="eval", disable=not cfg.progress,
                   dynamic_ncols=True)
        with path.open("a") as f:
            for rec in _results(cfg, probe, agent_specs, todo):
                f.write(json.dumps(rec) + "\n")
                f.flush()  # one line per finished episode: the resume point
                done[(rec["agent"], rec["task"], rec["seed"], rec["episode"])] = rec
                bar.update(1)
        bar.close()
        return [done[s.key] for s in specs]
    finally:
        if own_env:
            probe.close()


def _results(cfg: EvalConfig, env: Environment, agent_specs: list[AgentSpec], todo: list[EpisodeSpec]
             ) -> Iterator[dict[str, Any]]:
    if cfg.workers <= 1 or len(todo) <= 1:
        yield from _inline(cfg, env, agent_specs, todo)
        return
    # spawn, not fork: simulators and torch hold threads and GL contexts that do not survive a fork.
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn"), initializer=_worker_init,
                             initargs=(cfg.benchmark, cfg.env_options(), agent_specs)) as pool:
        futures = [pool.submit(_worker_run, s, cfg.max_keyposes, strip_path(cfg, s)) for s in todo]
        for fut in as_completed(futures):
            yield fut.result()
