"""Keyframe discovery against hand-computed streams and a plain-loop transcription of the PerAct rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.keyframes import accepted_stops, discover_keyframes


def loop_reference(gripper: list[float], vel: np.ndarray, delta: float = 0.1, clamp: bool = False) -> list[int]:
    """The rule written as a stateful loop over frames, one frame at a time (slow, obviously like the description)."""
    n = len(gripper)
    keys: list[int] = []
    buffer = 0
    for i in range(n):
        # negative indices wrap, as in the published code, unless clamped to frame 0
        p1, p2 = (max(i - 1, 0), max(i - 2, 0)) if clamp else (i - 1, i - 2)
        steady = (
            i < n - 2
            and gripper[i] == gripper[i + 1]
            and gripper[i] == gripper[p1]
            and gripper[p2] == gripper[p1]
        )
        small = all(abs(x) <= delta for x in vel[i])
        stopped = buffer <= 0 and small and i != n - 2 and steady
        buffer = 4 if stopped else buffer - 1
        if i != 0 and (gripper[i] != gripper[i - 1] or i == n - 1 or stopped):
            keys.append(i)
    if len(keys) > 1 and keys[-1] - 1 == keys[-2]:
        keys.pop(-2)
    return keys


def stream(moving: list[int], gripper: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Velocities of 1 rad/s on frames where ``moving`` is 1, 0 elsewhere (7 joints)."""
    vel = np.outer(np.asarray(moving, dtype=float), np.ones(7))
    return np.asarray(gripper, dtype=float), vel


def test_hand_made_pick_stream():
    # frames: 0 rest | 1-5 move | 6-8 still (arm arrived) | 9 gripper closes | 10-14 move | 15-16 still (end)
    moving = [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    grip = [1] * 9 + [0] * 8
    g, v = stream(moving, grip)
    # frame 0 is no stop: the wrap-around compares it with the last frame, whose gripper (0) differs.
    # frame 6: still, gripper 1 over 4..7 -> stop. 7, 8 are in the refractory window; 9: gripper change.
    # 15: still but it is the second-to-last frame; 16 is the last.
    assert discover_keyframes(g, v) == [6, 9, 16]
    assert loop_reference(grip, v) == [6, 9, 16]


def test_stop_needs_steady_gripper_around_it():
    # The arm stops at frame 4 but the gripper changes at frame 5: the stop is not a keyframe, the change is.
    moving = [0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]
    grip = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    g, v = stream(moving, grip)
    assert discover_keyframes(g, v) == [5, 10]


def test_refractory_period_and_wraparound_at_start():
    # Still everywhere, gripper constant: frame 0 is an accepted (but never emitted) stop because the wrap-around
    # compares it with the equal final states; then stops every 5 frames; the last frame is always a keyframe.
    n = 14
    g, v = stream([0] * n, [1] * n)
    # accepted stops: 0, 5, 10; frame 12 is second-to-last; 13 is last.
    assert discover_keyframes(g, v) == [5, 10, 13]
    # If the episode ends with the other gripper state, frames 0 and 1 are not steady (wrap-around),
    # so the first stop is frame 2.
    grip = [1] * 12 + [0] * 2
    g2, _ = stream([0] * n, grip)
    # stops at 2 and 7; 12 is a gripper change but adjacent to the last frame 13, so it is dropped.
    assert discover_keyframes(g2, v) == [2, 7, 13]
    assert loop_reference(grip, v) == [2, 7, 13]
    # clamped (no wrap-around): frame 0 is a stop again, so the stops are 0 (silent), 5, 10
    assert discover_keyframes(g2, v, start="clamp") == [5, 10, 13]


def test_adjacent_last_two_keyframes_drop_the_second_to_last():
    moving = [0, 1, 1, 1, 1, 1, 1, 1]
    grip = [1, 1, 1, 1, 1, 1, 0, 0]  # change at 6, last at 7 -> 6 dropped
    g, v = stream(moving, grip)
    assert discover_keyframes(g, v) == [7]


def test_velocity_threshold_is_inclusive():
    n = 12
    v = np.full((n, 7), 0.1)
    g = np.ones(n)
    # |v| == delta counts as stopped (np.allclose semantics): stops at 0 (silent), 5; 10 is second-to-last.
    assert discover_keyframes(g, v) == [5, 11]
    assert discover_keyframes(g, v + 1e-6) == [11]


def test_accepted_stops_is_greedy():
    c = np.zeros(20, dtype=bool)
    c[[1, 2, 3, 6, 7, 12, 13, 19]] = True
    assert np.flatnonzero(accepted_stops(c)).tolist() == [1, 6, 12, 19]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="joint_velocities"):
        discover_keyframes(np.ones(5), np.zeros((4, 7)))
    with pytest.raises(ValueError, match="gripper_open"):
        discover_keyframes(np.ones((5, 1)), np.zeros((5, 7)))
    with pytest.raises(ValueError, match="stopping_delta"):
        discover_keyframes(np.ones(5), np.zeros((5, 7)), stopping_delta=-1)
    with pytest.raises(ValueError, match="start"):
        discover_keyframes(np.ones(5), np.zeros((5, 7)), start="nope")


def test_short_streams():
    assert discover_keyframes(np.ones(0), np.zeros((0, 7))) == []
    assert discover_keyframes(np.ones(1), np.zeros((1, 7))) == []
    assert discover_keyframes(np.ones(2), np.zeros((2, 7))) == [1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=0, max_size=60),
    st.floats(min_value=0.0, max_value=0.3),
    st.booleans(),
)
def test_matches_loop_reference(frames, delta, clamp):
    grip = [1.0 if open_ else 0.0 for open_, _ in frames]
    # velocities around the threshold so both sides of it are exercised
    vel = np.array([[0.05 if still else 0.2] * 7 for _, still in frames]).reshape(len(frames), 7)
    start = "clamp" if clamp else "wrap"
    assert discover_keyframes(np.asarray(grip), vel, delta, start) == loop_reference(grip, vel, delta, clamp)
