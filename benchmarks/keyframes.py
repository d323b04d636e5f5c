"""Keyframe discovery: the PerAct heuristic on a recorded low-dim stream (REFERENCE §2).

Frame ``i > 0`` is a keyframe when the gripper state changed since ``i - 1``, when it is the last frame, or when the
arm *stopped*: every joint velocity is within ``stopping_delta`` of zero, the gripper state is the same at ``i - 2``,
``i - 1``, ``i`` and ``i + 1``, ``i`` is not the second-to-last frame, and no stop was accepted in the 4 frames
before. If the last two keyframes are adjacent, the second-to-last is dropped.

We match the published implementation's behaviour bit for bit, including two details that matter on real RLBench
demos:
- at ``i < 2`` the "frames ``i - 2`` and ``i - 1``" are taken with Python's negative indexing, i.e. they wrap around
  to the *end* of the episode. Frame 0 itself is never a keyframe, but a stop accepted there still starts the
  4-frame refractory period.
- the refractory period is counted from the last *accepted* stop, so accepted stops are greedily at least 5 frames
  apart.

Everything is vectorised over frames; the only loop is a pointer chase over the accepted stops (one iteration per
stop, i.e. per keyframe, never per frame).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

STOPPING_DELTA = 0.1
# After a stop at frame i, frames i+1 .. i+4 cannot be stops (PerAct's ``stopped_buffer = 4``).
REFRACTORY_FRAMES = 4


def _check_stream(gripper_open: np.ndarray, joint_velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(gripper_open)
    v = np.asarray(joint_velocities, dtype=np.float64)
    if g.ndim != 1:
        raise ValueError(f"gripper_open must be 1-D (T,), got shape {g.shape}")
    if v.ndim != 2 or v.shape[0] != g.shape[0]:
        raise ValueError(f"joint_velocities must be (T, n_joints) with T={g.shape[0]}, got shape {v.shape}")
    return g, v


def accepted_stops(candidates: np.ndarray, refractory: int = REFRACTORY_FRAMES) -> np.ndarray:
    """Greedy left-to-right selection of ``candidates`` (bool (T,)) with at least ``refractory + 1`` frames between
    accepted ones. Returns a bool (T,) mask."""
    candidates = np.asarray(candidates, dtype=bool)
    if candidates.ndim != 1:
        raise ValueError(f"candidates must be 1-D, got shape {candidates.shape}")
    t = candidates.shape[0]
    out = np.zeros(t, dtype=bool)
    if t == 0:
        return out
    # next_candidate[j] = smallest candidate index >= j (t if none), via a reversed running minimum.
    idx = np.where(candidates, np.arange(t), t)
    next_candidate = np.minimum.accumulate(idx[::-1])[::-1]
    next_candidate = np.append(next_candidate, t)
    i = int(next_candidate[0])
    while i < t:  # one iteration per accepted stop
        out[i] = True
        i = int(next_candidate[min(i + refractory + 1, t)])
    return out


def discover_keyframes(
    gripper_open: np.ndarray,
    joint_velocities: np.ndarray,
    stopping_delta: float = STOPPING_DELTA,
    start: Literal["wrap", "clamp"] = "wrap",
) -> list[int]:
    """Keyframe indices of one demo from its per-frame gripper state (T,) and joint velocities (T, n_joints).

    ``start="wrap"`` is PerAct's negative indexing at frames 0 and 1; ``"clamp"`` reads frame 0 instead, as some
    later loaders (e.g. 3D Diffuser Actor's) do. The two differ only when the arm is still in the first frames.
    """
    if not np.isfinite(stopping_delta) or stopping_delta < 0:
        raise ValueError(f"stopping_delta must be a finite number >= 0, got {stopping_delta}")
    if start not in ("wrap", "clamp"):
        raise ValueError(f"start must be 'wrap' or 'clamp', got {start!r}")
    g, v = _check_stream(gripper_open, joint_velocities)
    t = g.shape[0]
    if t < 2:
        return []
    i = np.arange(t)
    # PerAct compares gripper states with ==, and wraps i-1 / i-2 around to the end for i < 2 (negative indexing).
    if start == "wrap":
        prev1, prev2 = g[(i - 1) % t], g[(i - 2) % t]
    else:
        prev1, prev2 = g[np.maximum(i - 1, 0)], g[np.maximum(i - 2, 0)]
    next1 = g[np.minimum(i + 1, t - 1)]
    gripper_steady = (i < t - 2) & (g == next1) & (g == prev1) & (prev2 == prev1)
    # np.allclose(v, 0, atol=delta) is |v| <= delta (rtol does not matter against zero).
    small_velocity = np.all(np.abs(v) <= stopping_delta, axis=1)
    stopped = accepted_stops(small_velocity & gripper_steady & (i != t - 2))

    changed = np.zeros(t, dtype=bool)
    changed[1:] = g[1:] != g[:-1]
    is_key = changed | stopped
    is_key[0] = False
    is_key[-1] = True
    keys = np.flatnonzero(is_key).tolist()
    if len(keys) > 1 and keys[-1] - 1 == keys[-2]:
        keys.pop(-2)
    return keys
