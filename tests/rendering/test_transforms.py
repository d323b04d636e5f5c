"""rendering.transforms against hand-computed values, scipy and rigid-motion properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from rendering.transforms import rotate_quaternions, transform_points, yaw_matrix


def test_yaw_of_90_degrees_turns_x_into_y():
    r = yaw_matrix(torch.tensor([math.pi / 2], dtype=torch.float64))
    out = transform_points(torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64), r,
                           torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64))
    assert torch.allclose(out, torch.tensor([[0.1, 1.2, 0.8]], dtype=torch.float64), atol=1e-12)


def test_pivot_is_a_fixed_point_of_the_rotation():
    r = yaw_matrix(torch.tensor([0.7, -1.1], dtype=torch.float64))
    pivot = torch.tensor([[0.3, -0.2, 1.0], [0.0, 0.5, 0.7]], dtype=torch.float64)
    pts = torch.stack([pivot, pivot + torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64)], dim=1)
    out = transform_points(pts, r, torch.zeros(2, 3, dtype=torch.float64), pivot)
    assert torch.allclose(out, pts, atol=1e-12)  # the pivot and a point above it (on the yaw axis) stay put


@settings(max_examples=30, deadline=None)
@given(st.floats(-math.pi, math.pi), st.lists(st.floats(-1, 1), min_size=3, max_size=3),
       st.integers(0, 2**31 - 1))
def test_matches_a_per_point_loop_and_scipy(angle, t, seed):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(1, 5, 3, generator=g, dtype=torch.float64)
    pivot = torch.rand(1, 3, generator=g, dtype=torch.float64)
    trans = torch.tensor([t], dtype=torch.float64)
    r = yaw_matrix(torch.tensor([angle], dtype=torch.float64))
    rs = Rotation.from_euler("z", angle)
    assert np.allclose(r[0].numpy(), rs.as_matrix(), atol=1e-12)
    out = transform_points(pts, r, trans, pivot)
    for n in range(5):  # slow reference, one point at a time
        ref = rs.apply((pts[0, n] - pivot[0]).numpy()) + pivot[0].numpy() + trans[0].numpy()
        assert np.allclose(out[0, n].numpy(), ref, atol=1e-12)
    q = torch.from_numpy(Rotation.random(random_state=seed).as_quat()[None])
    got = rotate_quaternions(q, r)[0].numpy()
    want = (rs * Rotation.from_quat(q[0].numpy())).as_quat()
    assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 1e-9
    assert got[3] >= 0


def test_bad_shapes_name_the_argument():
    r = yaw_matrix(torch.zeros(2))
    with pytest.raises(ValueError, match="points"):
        transform_points(torch.zeros(2, 4), r, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="rotation"):
        transform_points(torch.zeros(2, 5, 3), r[:1], torch.zeros(2, 3))
    with pytest.raises(ValueError, match="pivot"):
        transform_points(torch.zeros(2, 5, 3), r, torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="quaternion"):
        rotate_quaternions(torch.zeros(2, 3), r)
    with pytest.raises(ValueError, match="angle"):
        yaw_matrix(torch.zeros(2, dtype=torch.long))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 2]))
def test_mirrored_orientation_is_the_reflection_conjugate(seed, axis):
    """``mirror_quaternions`` against the matrix definition M·R·M (scipy for the quaternion ↔ matrix maps)."""
    from rendering.transforms import mirror_quaternions

    r = Rotation.random(8, random_state=seed)
    m = np.eye(3)
    m[axis, axis] = -1.0
    want = m @ r.as_matrix() @ m
    got = mirror_quaternions(torch.from_numpy(r.as_quat()), axis).numpy()  # scipy's as_quat is xyzw too
    assert np.allclose(Rotation.from_quat(got).as_matrix(), want, atol=1e-12)
    assert np.allclose(np.linalg.det(want), 1.0)  # a rotation, unlike M·R alone
    assert np.array_equal(got[:, 3], r.as_quat()[:, 3])  # w (and its sign) kept


def test_mirrored_points_in_a_plane():
    from rendering.transforms import mirror_points

    p = torch.tensor([[0.3, 0.1, 1.0], [0.0, -0.4, 0.8]], dtype=torch.float64)
    out = mirror_points(p, 1, 0.05)
    assert torch.equal(out, torch.tensor([[0.3, 0.0, 1.0], [0.0, 0.5, 0.8]], dtype=torch.float64))
    assert torch.allclose(mirror_points(out, 1, 0.05), p, atol=1e-15) and torch.equal(p[0, 1], torch.tensor(0.1,
                                                                                                         dtype=p.dtype))
    with pytest.raises(ValueError, match="axis"):
        mirror_points(p, 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1]))
def test_mirrored_gripper_against_a_per_sample_reference(seed, axis):
    """``mirror_gripper_quaternions`` against a slow per-sample reference built from scipy's matrices: M·R·M_x or
    M·R·M_y, chosen by the documented rule (top-down: M_x unless the fingers lie along the mirror's normal; otherwise
    the finger direction nearer the original's)."""
    from rendering.transforms import mirror_gripper_quaternions

    rng = np.random.default_rng(seed)
    r = Rotation.random(12, random_state=seed).as_matrix()
    down = Rotation.from_euler("x", 180, degrees=True).as_matrix()  # approach (local z) straight down
    for i in range(4):  # top-down grasps at random yaws, one of them with the fingers along the normal
        yaw = 90.0 * (axis == 0) if i == 0 else rng.uniform(-180, 180)
        r[i] = Rotation.from_euler("z", yaw, degrees=True).as_matrix() @ down
    m = np.eye(3)
    m[axis, axis] = -1.0
    want = []
    for rot in r:
        fingers, approach = rot[:, 1], rot[:, 2]
        if abs(approach[2]) >= np.cos(np.radians(15.0)):
            use_x = abs(fingers[axis]) < np.cos(np.radians(0.1))
        else:
            use_x = fingers @ (m @ fingers) > 0
        want.append(m @ rot @ np.diag([-1.0, 1.0, 1.0] if use_x else [1.0, -1.0, 1.0]))
    got = mirror_gripper_quaternions(torch.from_numpy(Rotation.from_matrix(r).as_quat()), axis).numpy()
    assert np.allclose(Rotation.from_quat(got).as_matrix(), np.array(want), atol=1e-9)
    assert np.allclose(np.linalg.det(np.array(want)), 1.0)
