"""The robot runner's episode: read the cameras and the arm, ask for a keypose, pass it through the safety layer,
execute it, repeat until the task is done, ``max_keyposes`` is reached or the operator stops.

The loop is the evaluation runner's (``bridgevla.evaluation.runner``) with a real arm's additions, so that on the
simulated robot it gives the same episode as ``bridgevla eval``. Every run is logged as an episode in our dataset
format (docs/dataset.md): the observation before each keypose and after the last, the executed keyposes (keypose
``j`` is reached at tick ``j + 1``), and in ``extra`` every prediction with its timings and safety outcome, the
rejections with their reasons, why the episode ended, and the server's weights checksum.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.dataset import Episode, episode_dir, save_episode
from benchmarks.protocol import Keypose, Observation
from bridgevla.serving.client import KeyposeSource
from bridgevla.serving.recording import next_index
from bridgevla.serving.safety import SafeArm

log = logging.getLogger("bridgevla.robot")


@dataclass
class EpisodeRun:
    success: bool | None  # None: nobody could tell (a real robot whose operator was not asked)
    keyposes: int  # executed
    end: str  # success | done | max_keyposes | rejected | declined | stopped | planned | arm_error | policy_error
    error: str | None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list, repr=False)
    executed: list[Keypose] = field(default_factory=list, repr=False)
    log_path: Path | None = None


def observe(arm: SafeArm, cameras: Any, instruction: str, task: str = "") -> Observation:
    """One observation from the arm's state and the cameras (a wrist camera gets the pose at capture time)."""
    s = arm.state()
    frames = cameras.read(np.asarray(s.pose, float))
    return Observation(frames, np.asarray(s.pose, float).copy(), 1.0 if s.gripper_open else 0.0,
                       np.asarray(s.joint_positions, float).copy(), np.asarray(s.joint_velocities, float).copy(),
                       [instruction], task=task)


def _kp_list(k: Keypose) -> list[Any]:
    return [float(v) if np.isfinite(v) else str(v) for v in k.to_array()]


def run_episode(source: KeyposeSource, arm: SafeArm, cameras: Any, instruction: str, max_keyposes: int,
                task: str = "") -> EpisodeRun:
    obs = observe(arm, cameras, instruction, task)
    run = EpisodeRun(None, 0, "max_keyposes", None, observations=[obs])
    last_success: bool | None = None
    for step in range(max_keyposes):
        if arm.operator.stop_requested():
            run.end, run.error = "stopped", "stop requested by the operator"
            break
        try:
            inference = source.infer(obs, history=list(run.executed))  # a memory policy needs the episode so far
        except Exception as e:  # noqa: BLE001 - a server error ends the episode, recorded; the robot stays put
            run.end, run.error = "policy_error", f"{type(e).__name__}: {e}"
            break
        outcome = arm.execute(inference.keypose)
        entry = {"step": step, "keypose": _kp_list(inference.keypose), "status": outcome.status,
                 "reasons": outcome.reasons, "timing": {k: float(v) for k, v in inference.timing.items()}}
        run.predictions.append(entry)
        if outcome.status != "executed":
            run.end, run.error = outcome.status, "; ".join(outcome.reasons) or None
            break
        result = outcome.result
        entry["arm_seconds"] = float(result.seconds)
        run.executed.append(inference.keypose)
        run.keyposes += 1
        obs = observe(arm, cameras, instruction, task)
        run.observations.append(obs)
        if not result.ok:
            run.end, run.error, run.success = "arm_error", result.error, False
            break
        if result.success:
            run.end, run.success = "success", True
            break
        if result.done:
            run.end, run.success = "done", bool(result.success)
            break
        last_success = result.success
    if run.success is None and last_success is not None:  # out of keyposes on an arm that can tell (simulation)
        run.success = bool(last_success)
    return run


def write_log(run: EpisodeRun, root: str | Path, task: str, instruction: str, extra: dict[str, Any],
              variation: int = 0, seed: int = 0) -> Path:
    """The run as an episode folder under ``root/<task>/`` (next free index)."""
    ep = Episode.from_observations(run.observations, task=task, variation=variation, seed=seed, index=0,
                                   keyposes=[], success=bool(run.success), instructions=[instruction])
    index = next_index(root, task)
    ep = dataclasses.replace(
        ep, index=index, keyframes=list(range(1, len(run.executed) + 1)), keyposes=list(run.executed),
        extra={"source": "bridgevla robot run", "end": run.end, "error": run.error, "success": run.success,
               "predictions": run.predictions, **extra})
    run.log_path = save_episode(ep, episode_dir(root, task, index))
    return run.log_path


def timing_summary(runs: list[EpisodeRun]) -> dict[str, float]:
    """Median request → keypose times over all predictions of ``runs`` (ms)."""
    rows = [p["timing"] for r in runs for p in r.predictions]
    keys = sorted({k for row in rows for k in row})
    return {k: float(np.median([row[k] for row in rows if k in row])) for k in keys} if rows else {}


__all__ = ["EpisodeRun", "observe", "run_episode", "timing_summary", "write_log"]
