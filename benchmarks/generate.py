"""Expert demo generation (the command line is ``bridgevla generate``, bridgevla/scripts/generate.py).

Episode ``i`` of a task (``i`` from ``seed_offset`` to ``seed_offset + episodes - 1``) is reset with seed ``i`` and
variation ``i mod (number of variations)``, its scripted expert plan is executed while the env records every control
tick, and a successful episode is written atomically to ``DIR/<task>/episode_<i>`` (docs/dataset.md). Finished
episodes are skipped, so an interrupted run resumes where it stopped. Worker processes are spawned (one simulator
each; MuJoCo/EGL state must not be forked) and exit when the parent dies; a worker that dies (a simulator taking
its process down) costs only the episodes it had in flight, which rerun (``restarts`` per episode, then it is
reported failed) while the rest of the run goes on. Prints each task's expert success rate,
writes ``DIR/summary.json`` atomically, and exits with status 1 if any expert episode failed its success check.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.dataset import Episode, episode_dir, is_complete, save_episode
from benchmarks.fileio import atomic_write_json, remove_stale_temps
from benchmarks.workers import WorkerDied, run_isolating, worker_pool

DEFAULT_ENV = "benchmarks.embedded:EmbeddedEnv"


@dataclass
class GenerateConfig:
    tasks: list[str] = field(default_factory=list)  # empty: every task the environment has
    episodes: int = 10  # per task
    out: str = "data/demos"
    workers: int = 1  # 1: in this process; K > 1: K spawned worker processes
    seed_offset: int = 0
    image_every: int = 10  # camera images every N ticks (plus each keypose's first and last tick)
    env: str = DEFAULT_ENV  # module:Class of the environment
    env_config: dict[str, Any] = field(default_factory=dict)  # fields of the env's config dataclass
    # Worker deaths one episode may cause (it alone in flight) before it is reported failed (workers > 1 only).
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.image_every < 1:
            raise ValueError(f"image_every must be >= 1, got {self.image_every}")
        if self.restarts < 0:
            raise ValueError(f"restarts must be >= 0, got {self.restarts}")
        if ":" not in self.env:
            raise ValueError(f"env must be 'module:Class', got {self.env!r}")


@dataclass
class EpisodeResult:
    task: str
    index: int
    success: bool
    skipped: bool = False
    error: str = ""
    frames: int = 0
    keyframes_match: bool = True  # the PerAct heuristic found one keyframe per expert keypose
    keyframes_without_images: int = 0
    seconds: float = 0.0


def env_config_type(spec: str) -> type | None:
    """The dataclass the ``config`` argument of environment class ``module:Class`` is annotated with (or None)."""
    cls = _env_class(spec)
    hint = typing.get_type_hints(cls.__init__).get("config")
    candidates = [a for a in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(a)]
    return candidates[0] if candidates else None


def _env_class(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"env {spec!r} cannot be imported: {e}") from e


def make_env(spec: str, env_config: Any = None) -> Any:
    """Instantiate ``module:Class`` with ``env_config``, an instance of its config dataclass (None: its defaults).

    A mapping from YAML or the command line is turned into that dataclass by the config system first
    (``bridgevla.scripts.generate.resolve_env_config``): this package sits below ``bridgevla`` and does not parse.
    """
    cls = _env_class(spec)
    if env_config is None or (isinstance(env_config, dict) and not env_config):
        return cls()
    expected = env_config_type(spec)
    if expected is None:
        raise ValueError(f"env_config given but {spec} has no dataclass-typed 'config' argument")
    if not isinstance(env_config, expected):
        raise ValueError(f"env_config must be a {expected.__name__} for {spec}, got {type(env_config).__name__} "
                         "(a mapping is resolved by bridgevla.scripts.generate.resolve_env_config)")
    return cls(env_config)


def record_episode(env: Any, task: str, index: int, image_every: int) -> tuple[Episode, EpisodeResult]:
    """Reset, run the expert plan while recording, and package the recording as an :class:`Episode`."""
    start = time.perf_counter()
    variation = index % env.variations(task)
    env.reset(task, variation, index)
    plan = env.expert_keyposes()
    env.start_recording(image_every=image_every)
    success, error, executed = False, "", 0
    try:
        for keypose in plan:
            _, success, done, info = env.step(keypose)
            executed += 1
            if done:  # the env ends an episode on success, so a plan's trailing keyposes may never run
                error = str(info.get("error", ""))
                break
    finally:
        frames = env.stop_recording()
    plan = plan[:executed]
    if not success and not error:
        error = "the expert plan ended without success"
    episode = Episode.from_observations(
        frames,
        task=task,
        variation=variation,
        seed=index,
        index=index,
        keyposes=plan,
        success=success,
        instructions=env.instructions(task, variation),
        extra_lowdim=_per_tick_streams(frames, plan),
        extra={"generator": "benchmarks.generate", "image_every": image_every},
    )
    result = EpisodeResult(
        task=task,
        index=index,
        success=success,
        error=error,
        frames=len(episode),
        keyframes_match=len(episode.keyframes) == len(plan),
        keyframes_without_images=sum(not episode.has_images(k) for k in episode.keyframes),
        seconds=time.perf_counter() - start,
    )
    return episode, result


def _per_tick_streams(frames: list[Any], plan: list[Any]) -> dict[str, np.ndarray]:
    """``keypose_index`` (which expert keypose each tick moves towards) and its ``ignore_collisions`` flag, when the
    env reports progress as ``misc["keyposes_done"]`` (EmbeddedEnv does). They label every tick as RLBench does,
    so that targets stay right even where the keyframe heuristic and the expert plan disagree."""
    done = [f.misc.get("keyposes_done") for f in frames]
    if not plan or any(d is None for d in done):
        return {}
    index = np.minimum(np.asarray(done, dtype=np.int64), len(plan) - 1)
    flags = np.array([k.ignore_collisions for k in plan], dtype=np.float64)
    return {"keypose_index": index, "ignore_collisions": flags[index]}


# One environment per worker process, built once by the pool initializer.
_WORKER_ENV: Any = None


def _set_worker_env(env: Any) -> None:
    global _WORKER_ENV
    _WORKER_ENV = env


def _init_worker(spec: str, env_config: Any) -> None:
    _set_worker_env(make_env(spec, env_config))


def _run_job(out: str, task: str, index: int, image_every: int) -> EpisodeResult:
    try:
        episode, result = record_episode(_WORKER_ENV, task, index, image_every)
    except Exception as e:  # noqa: BLE001 - one broken episode is reported, it must not kill the whole run
        return EpisodeResult(task, index, False, error=f"{type(e).__name__}: {e}")
    if result.success:  # failed expert episodes never enter the dataset; they are reported instead
        save_episode(episode, episode_dir(out, task, index), overwrite=True)
    return result


def _remove_stale_temp_folders(out: Path, tasks: list[str]) -> None:
    """Temp folders of dead writers (``.tmp-<name>-<pid>``) are leftovers of a crash."""
    for task in tasks:
        remove_stale_temps(out / task, ".tmp-*")


def generate(cfg: GenerateConfig, env_config: Any = None) -> dict[str, dict[str, Any]]:
    """Run the whole job; returns the per-task summary (also written to ``<out>/summary.json``).

    ``env_config`` is ``cfg.env_config`` resolved into the environment's config dataclass (see :func:`make_env`).
    """
    if env_config is None and cfg.env_config:
        raise ValueError("generate: cfg.env_config is a mapping; pass it resolved as env_config= "
                         "(bridgevla.scripts.generate.resolve_env_config)")
    probe = make_env(cfg.env, env_config)
    available = list(probe.tasks())
    tasks = list(cfg.tasks) or available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise ValueError(f"tasks {unknown} unknown; available: {available}")
    out = Path(cfg.out)
    _remove_stale_temp_folders(out, tasks)
    jobs = [(t, i) for t in tasks for i in range(cfg.seed_offset, cfg.seed_offset + cfg.episodes)]
    results = [EpisodeResult(t, i, True, skipped=True) for t, i in jobs if is_complete(episode_dir(out, t, i))]
    todo = [(t, i) for t, i in jobs if not is_complete(episode_dir(out, t, i))]
    if results:
        print(f"resuming: {len(results)} finished episodes skipped, {len(todo)} to generate")
    bar = tqdm(total=len(todo), desc="demos", unit="episode", dynamic_ncols=True)
    failed = 0

    def collect(r: EpisodeResult) -> None:
        nonlocal failed
        results.append(r)
        failed += not r.success
        bar.set_postfix(failed=failed)
        bar.update()
        if not r.success:
            tqdm.write(f"FAILED {r.task} episode {r.index}: {r.error}")

    if cfg.workers == 1 or len(todo) <= 1:
        _set_worker_env(probe)  # in-process: the probe env does the work
        for t, i in todo:
            collect(_run_job(str(out), t, i, cfg.image_every))
    else:
        # Spawned workers (one simulator each) that exit if this process dies (benchmarks.workers).
        def submit(pool: Any, job: tuple[str, int]) -> Any:
            return pool.submit(_run_job, str(out), *job, cfg.image_every)

        for done in run_isolating(lambda: worker_pool(cfg.workers, _init_worker, (cfg.env, env_config)), submit,
                                  todo, cfg.workers, cfg.restarts):
            r = done.result
            collect(EpisodeResult(*done.job, False, error=f"{r.reason} ({done.restarts} restarts)")
                    if isinstance(r, WorkerDied) else r)
    bar.close()
    close = getattr(probe, "close", None)
    if close is not None:
        close()
    return _summarise(out, tasks, results)


def _summarise(out: Path, tasks: list[str], results: list[EpisodeResult]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for t in tasks:
        rs = [r for r in results if r.task == t]
        new = [r for r in rs if not r.skipped]
        summary[t] = {
            "episodes": len(rs),
            "successes": sum(r.success for r in rs),
            "success_rate": sum(r.success for r in rs) / len(rs) if rs else float("nan"),
            "failed_indices": sorted(r.index for r in rs if not r.success),
            "errors": {str(r.index): r.error for r in sorted(rs, key=lambda r: r.index) if not r.success},
            "generated": len(new),
            "keyframes_match": sum(r.keyframes_match for r in new),
            "keyframes_without_images": sum(r.keyframes_without_images for r in new),
            "seconds_per_episode": sum(r.seconds for r in new) / len(new) if new else None,
        }
    atomic_write_json(out / "summary.json", summary)
    return summary


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    print(f"{'task':<32} {'episodes':>8} {'expert success':>15} {'kf=expert':>10}")
    for t, s in summary.items():
        match = f"{s['keyframes_match']}/{s['generated']}"
        print(f"{t:<32} {s['episodes']:>8} {100 * s['success_rate']:>14.1f}% {match:>10}")
        if s["failed_indices"]:
            print(f"  failed episodes: {s['failed_indices']}")
