"""Running evaluation episodes in parallel: worker processes on this machine, or Ray actors on a cluster.

Both keep one :class:`~bridgevla.evaluation.runner.EpisodeWorker` (one simulator, the agents) per worker and at most
one episode in flight per worker, and yield each record as soon as it arrives, so the driver streams them into the
resumable JSONL. A worker that dies (a simulator taking its process down, a lost node) voids the episode it was
running: it is charged one restart and rerun on a fresh worker; after ``cfg.restarts`` of those it is recorded as
failed with the reason. Everything else an episode does is identical to a run in one process.

- processes: ``spawn``-started (simulators and torch hold threads and GL contexts that do not survive a fork), one
  torch thread each.
- Ray (``ray_address``): ``"auto"`` joins the running cluster (``ray start --head`` / ``ray up``), ``"local"``
  starts a private instance with ``workers`` CPUs, anything else is passed to ``ray.init(address=...)``. Each actor
  reserves ``ray_num_cpus`` CPUs and ``ray_num_gpus`` GPUs. Workers must be able to import bridgevla and reach the
  same checkpoint/test data paths (a shared filesystem or the same image on every node).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.workers import WorkerDied, run_isolating, worker_pool
from bridgevla.evaluation.agents import AgentSpec
from bridgevla.evaluation.runner import (
    EpisodeSpec,
    EpisodeWorker,
    EvalConfig,
    VideoRequest,
    failed_record,
    strip_path,
    video_request,
)

RAY_INSTALL = "pip install 'bridgevla[ray]' (ray==2.60.0)"


class _Restarts:
    """Per-episode count of workers lost while it was in flight."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count = limit, Counter()

    def charge(self, spec: EpisodeSpec, reason: str) -> dict[str, Any] | None:
        """Charge one restart; returns the failure record once the limit is passed, None while it may rerun."""
        self.count[spec.key] += 1
        if self.count[spec.key] > self.limit:
            return failed_record(spec, reason, self.limit)
        return None

    def stamp(self, record: dict[str, Any], spec: EpisodeSpec) -> dict[str, Any]:
        return {**record, "restarts": record.get("restarts", 0) + self.count[spec.key]}


# ---- processes --------------------------------------------------------------------------------------------------
_PROCESS_WORKER: EpisodeWorker | None = None


def _process_init(benchmark: str, env_options: dict[str, Any], agent_specs: list[AgentSpec], bounds: list[float],
                  tolerance: float, allow_code: bool) -> None:
    import torch

    global _PROCESS_WORKER
    torch.set_num_threads(1)  # N workers on N cores: one thread each beats oversubscription
    _PROCESS_WORKER = EpisodeWorker(benchmark, env_options, agent_specs, bounds=bounds, tolerance=tolerance,
                                    allow_code=allow_code)


def _process_run(spec: EpisodeSpec, max_keyposes: int, strip: Path | None, restarts: int,
                 video: VideoRequest | None) -> dict[str, Any]:
    assert _PROCESS_WORKER is not None
    return _PROCESS_WORKER.run(spec, max_keyposes, strip, restarts, video)


def process_results(cfg: EvalConfig, agent_specs: list[AgentSpec], todo: list[EpisodeSpec], allow_code: bool = False
                    ) -> Iterator[dict[str, Any]]:
    """Episodes over ``cfg.workers`` spawned processes (``benchmarks.workers.run_isolating``: when a process dies,
    the episodes in flight rerun one at a time, so a restart is charged to the episode that really takes its process
    down, never to its innocent neighbours)."""
    def start_pool() -> Any:
        # Workers die with this process (benchmarks.workers): a killed evaluation leaves no simulator running.
        return worker_pool(cfg.workers, _process_init, (cfg.benchmark, cfg.env, agent_specs, list(cfg.bounds),
                                                        cfg.workspace_tolerance, allow_code))

    def submit(pool: Any, spec: EpisodeSpec) -> Any:
        return pool.submit(_process_run, spec, cfg.max_keyposes, strip_path(cfg, spec), cfg.restarts,
                           video_request(cfg, spec))

    for done in run_isolating(start_pool, submit, todo, cfg.workers, cfg.restarts):
        if isinstance(done.result, WorkerDied):
            yield failed_record(done.job, done.result.reason, cfg.restarts)
        else:  # the worker's own simulator restarts plus the worker deaths charged here
            yield {**done.result, "restarts": done.result.get("restarts", 0) + done.restarts}


# ---- Ray ---------------------------------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ValueError(f"eval.ray_address needs Ray: {RAY_INSTALL} ({e})") from e
    return ray


class _RayEpisodeWorker(EpisodeWorker):
    """The Ray actor: an EpisodeWorker with one torch thread per reserved CPU."""

    def __init__(self, benchmark: str, env_options: dict[str, Any], agent_specs: list[AgentSpec],
                 threads: int = 1, bounds: list[float] | None = None, tolerance: float | None = None,
                 allow_code: bool = False) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        super().__init__(benchmark, env_options, agent_specs, bounds=bounds,
                         **({} if tolerance is None else {"tolerance": tolerance}), allow_code=allow_code)

    def ping(self) -> bool:
        return True


def ray_results(cfg: EvalConfig, agent_specs: list[AgentSpec], todo: list[EpisodeSpec], allow_code: bool = False
                ) -> Iterator[dict[str, Any]]:
    ray = _import_ray()
    from ray.exceptions import RayActorError, WorkerCrashedError

    started = not ray.is_initialized()
    if started:
        if cfg.ray_address == "local":
            # A private instance on loopback only: nothing of it listens on the machine's network address.
            ray.init(num_cpus=max(1, int(cfg.workers * cfg.ray_num_cpus + 0.999)), include_dashboard=False,
                     configure_logging=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=cfg.ray_address, log_to_driver=False)
    actor_class = ray.remote(num_cpus=cfg.ray_num_cpus, num_gpus=cfg.ray_num_gpus, max_restarts=0)(
        _RayEpisodeWorker)

    def new_actor() -> Any:
        return actor_class.remote(cfg.benchmark, cfg.env, agent_specs, int(cfg.ray_num_cpus), list(cfg.bounds),
                                  cfg.workspace_tolerance, allow_code)

    actors = [new_actor() for _ in range(min(cfg.workers, len(todo)))]
    queue, restarts = deque(todo), _Restarts(cfg.restarts)
    pending: dict[Any, tuple[int, EpisodeSpec]] = {}

    def submit(i: int) -> None:
        spec = queue.popleft()
        ref = actors[i].run.remote(spec, cfg.max_keyposes, strip_path(cfg, spec), cfg.restarts,
                                   video_request(cfg, spec))
        pending[ref] = (i, spec)

    try:
        for i in range(len(actors)):
            if queue:
                submit(i)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, spec = pending.pop(ref)
            try:
                record: dict[str, Any] | None = restarts.stamp(ray.get(ref), spec)
            except (RayActorError, WorkerCrashedError) as e:  # the actor (and its simulator) died: a fresh one
                try:
                    ray.kill(actors[i])
                except Exception:  # already gone
                    pass
                actors[i] = new_actor()
                record = restarts.charge(spec, f"Ray worker died (simulator crash?): {type(e).__name__}")
                if record is None:
                    queue.appendleft(spec)
            if record is not None:
                yield record
            if queue:
                submit(i)
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except Exception:
                pass
        if started:
            ray.shutdown()
