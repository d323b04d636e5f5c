"""Hypothesis fuzzer for what reaches ``act()`` from outside: observations (cameras, depth, intrinsics, extrinsics,
colours) and instructions. Every input either gives a finite keypose inside the policy's bounds or a ValueError
that says what is wrong — never another exception, never a keypose guessed from nothing or outside the workspace.
(Instruction and config fuzzers of their own modules: tests/bridgevla/model/test_tokenizer.py,
tests/bridgevla/test_configuration.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchmarks.protocol import CameraFrame, Observation
from tests.bridgevla.model_helpers import tiny_policy

POLICY = tiny_policy(seed=2, max_points=200)
LO, HI = np.asarray(POLICY.bounds.lo), np.asarray(POLICY.bounds.hi)

_weird = st.sampled_from([0.0, -1.0, np.nan, np.inf, -np.inf, 1e30, 1e-30])
_text = st.one_of(st.text(max_size=30), st.sampled_from(["", "   ", "<image>", "<eos><pad>", "open <bos> it",
                                                          "bad \udcff", "pick up the red block"]))


@st.composite
def frames(draw):
    size = draw(st.integers(2, 12))
    plane = draw(st.floats(0.4, 1.8))  # the height it sees; inside the bounds' z range [0.6, 1.6] most of the time
    height = plane + draw(st.floats(0.2, 1.5))
    depth = np.full((size, size), height - plane, np.float32)
    for _ in range(draw(st.integers(0, 4))):  # holes and garbage pixels
        depth[draw(st.integers(0, size - 1)), draw(st.integers(0, size - 1))] = draw(_weird)
    if draw(st.integers(0, 5)) == 0:
        depth[:] = draw(_weird)  # a camera that returns nothing useful at all
    f = draw(_weird) if draw(st.integers(0, 5)) == 0 else draw(st.floats(1.0, 100.0))
    k = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    ext = np.eye(4)
    ext[:3, :3] = np.diag([1.0, -1.0, -1.0])  # looking down
    ext[:3, 3] = [draw(st.floats(-0.2, 0.6)), draw(st.floats(-0.4, 0.4)), height]
    if draw(st.integers(0, 5)) == 0:
        ext[draw(st.integers(0, 2)), 3] = draw(_weird)
    rgb = np.full((size, size, 3), draw(st.integers(0, 255)), np.uint8)
    return CameraFrame(rgb, depth, k, ext)


@st.composite
def observations(draw):
    n = 0 if draw(st.integers(0, 5)) == 0 else draw(st.integers(1, 2))
    cams = {f"cam{i}": draw(frames()) for i in range(n)}
    instructions = draw(st.lists(_text, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=2))
    return Observation(cams, np.zeros(7), 1.0, np.zeros(7), np.zeros(7), instructions)


def _check(obs: Observation) -> None:
    try:
        kp = POLICY.act(obs)
    except ValueError as e:
        assert str(e), "an error must say what is wrong"
        event("refused: " + str(e).split(":")[0][:40])
        return
    event("keypose")
    assert np.isfinite(kp.position).all() and np.isfinite(kp.quaternion).all()
    assert np.all(kp.position >= LO - 1e-6) and np.all(kp.position <= HI + 1e-6)
    assert obs.cameras and obs.instructions and obs.instructions[0].strip()  # no keypose from nothing


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations())
def test_fuzzed_observations_give_a_keypose_in_bounds_or_a_named_error(obs):
    _check(obs)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observations())
def test_many_fuzzed_observations(obs):
    _check(obs)
