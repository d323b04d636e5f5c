"""The workspace guard: every keypose that reaches an environment is finite and inside the workspace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.protocol import Keypose, KeyposeRejected, Observation, WorkspaceGuard, environment_workspace
from rendering import SceneBounds

BOX = SceneBounds((-0.3, -0.5, 0.6), (0.7, 0.5, 1.6))
Q = [0, 0, 0, 1.0]


def test_inside_passes_unchanged_near_is_clamped_far_is_refused_with_requested_vs_allowed():
    guard = WorkspaceGuard(BOX, tolerance=0.02)
    kp = Keypose([0.2, 0.0, 1.0], Q, True, False)
    out, report = guard.check(kp)
    assert out is kp and not report.clamped
    out, report = guard.check(Keypose([0.71, 0.0, 1.0], Q, False, True))
    assert report.clamped and report.distance == pytest.approx(0.01)
    np.testing.assert_allclose(out.position, [0.7, 0.0, 1.0])
    assert (out.gripper_open, out.ignore_collisions) == (False, True)
    with pytest.raises(KeyposeRejected) as e:
        guard.check(Keypose([0.2, 0.0, 1.9], Q, True, False))  # 30 cm above the box
    msg = str(e.value)
    assert "requested position (0.200, 0.000, 1.900)" in msg and "0.300 m outside" in msg
    assert "(-0.300, -0.500, 0.600)..(0.700, 0.500, 1.600)" in msg
    np.testing.assert_allclose(e.value.requested, [0.2, 0.0, 1.9])


@pytest.mark.parametrize(("position", "quaternion", "match"), [
    ([np.nan, 0, 1], Q, "non-finite"), ([0.2, 0, 1], [np.inf, 0, 0, 1], "non-finite"),
    ([0.2, 0, 1], [0, 0, 0, 0], "zero norm"), ([1e9, 0, 1], Q, "outside the workspace"),
])
def test_non_finite_zero_and_far_keyposes_are_refused(position, quaternion, match):
    with pytest.raises(KeyposeRejected, match=match):
        WorkspaceGuard(BOX).check(Keypose(position, quaternion, True, True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=3), st.floats(0, 0.5))
def test_what_passes_is_always_inside_and_refusal_matches_the_distance(position, tolerance):
    guard = WorkspaceGuard(BOX, tolerance)
    p = np.asarray(position)
    # Independent reference: distance from the box, axis by axis.
    d = np.linalg.norm(np.maximum(0, np.maximum(np.asarray(BOX.lo) - p, p - np.asarray(BOX.hi))))
    try:
        out, report = guard.check(Keypose(p, Q, True, True))
    except KeyposeRejected:
        assert d > tolerance
        return
    assert d <= tolerance and report.distance == pytest.approx(d)
    assert np.all(out.position >= BOX.lo) and np.all(out.position <= BOX.hi)


def test_environment_workspace_is_optional_and_typed():
    class NoBox:
        pass

    class Box:
        def workspace(self):
            return BOX

    class Wrong:
        def workspace(self):
            return [0, 0, 0, 1, 1, 1]

    assert environment_workspace(NoBox()) is None and environment_workspace(Box()) is BOX
    with pytest.raises(ValueError, match="SceneBounds"):
        environment_workspace(Wrong())
    with pytest.raises(ValueError, match="tolerance"):
        WorkspaceGuard(BOX, tolerance=float("nan"))


def test_an_observation_without_cameras_has_an_empty_cloud():
    obs = Observation({}, np.zeros(7), 1.0, np.zeros(7), np.zeros(7), ["x"])
    p, c = obs.point_cloud()
    assert p.shape == (0, 3) and c.shape == (0, 3)
