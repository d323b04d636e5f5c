import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering import (
    bins_to_quaternion,
    euler_to_quaternion,
    normalize_quaternion,
    quaternion_angle,
    quaternion_to_bins,
    quaternion_to_euler,
    quaternion_to_matrix,
)


def test_known_rotations_by_hand():
    s = math.sqrt(0.5)
    # 90 degrees about z: xyzw = (0, 0, sin45, cos45); Euler (0, 0, 90); bins (36, 36, 54).
    q = torch.tensor([0.0, 0.0, s, s], dtype=torch.float64)
    assert torch.allclose(quaternion_to_euler(q), torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64), atol=1e-9)
    assert quaternion_to_bins(q).tolist() == [36, 36, 54]
    m = quaternion_to_matrix(q)
    assert torch.allclose(m @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0],
                                                                                         dtype=torch.float64))
    # The identity is bin 36 on every axis; -q is the same rotation.
    assert quaternion_to_bins(torch.tensor([0.0, 0, 0, -1.0])).tolist() == [36, 36, 36]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 71), st.integers(19, 53), st.integers(0, 71))
def test_bins_roundtrip_exactly_on_bin_centres(a, b, c):
    # beta bins 19..53 are the canonical range |beta| < 90 degrees.
    bins = torch.tensor([a, b, c])
    q = bins_to_quaternion(bins)
    assert q[3] >= 0
    assert quaternion_to_bins(q).tolist() == [a, b, c]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(lambda v: sum(x * x for x in v) > 1e-3)
)
def test_euler_roundtrip_and_sign_fix(v):
    q = normalize_quaternion(torch.tensor(v, dtype=torch.float64))
    assert q[3] >= 0
    back = euler_to_quaternion(quaternion_to_euler(q))
    assert quaternion_angle(back, q).item() < 1e-5
    # binning moves each Euler angle by at most half a bin (2.5 deg); composing three such rotations moves the
    # result by at most their sum (triangle inequality of the geodesic distance).
    approx = bins_to_quaternion(quaternion_to_bins(q))
    assert quaternion_angle(approx, q).item() <= 7.5 + 1e-6


def test_bad_quaternions_raise():
    with pytest.raises(ValueError, match="quaternion"):
        normalize_quaternion(torch.zeros(4))
    with pytest.raises(ValueError, match="quaternion"):
        quaternion_to_bins(torch.zeros(3))
    with pytest.raises(ValueError, match="bins"):
        bins_to_quaternion(torch.tensor([72, 0, 0]))


def test_rotation_6d_by_hand():
    from rendering import matrix_to_rotation_6d, rotation_6d_to_matrix

    # Columns (2, 0, 0) and (1, 3, 0): Gram-Schmidt gives x and y, their cross product z -> the identity.
    m = rotation_6d_to_matrix(torch.tensor([2.0, 0, 0, 1.0, 3.0, 0]))
    assert torch.allclose(m, torch.eye(3))
    # 90 degrees about z: first column (0, 1, 0), second (-1, 0, 0).
    rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert torch.equal(matrix_to_rotation_6d(rz), torch.tensor([0.0, 1, 0, -1, 0, 0]))
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(rz)), rz)
    with pytest.raises(ValueError, match="rotation_6d"):
        rotation_6d_to_matrix(torch.zeros(5))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=6, max_size=6))
def test_rotation_6d_is_a_proper_rotation_and_round_trips(v):
    from rendering import matrix_to_quaternion, matrix_to_rotation_6d, rotation_6d_to_matrix

    x = torch.tensor(v, dtype=torch.float64)
    a, b = x[:3], x[3:]
    if a.norm() < 1e-2 or torch.linalg.cross(a / a.norm(), b).norm() < 1e-2:
        return  # (near-)parallel halves define no plane; the network never needs them
    m = rotation_6d_to_matrix(x)
    assert torch.allclose(m.T @ m, torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert abs(torch.linalg.det(m).item() - 1) < 1e-9
    assert torch.allclose(m[:, 0], a / a.norm())  # the first half keeps its direction
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(m)), m, atol=1e-9)
    q = matrix_to_quaternion(m)
    assert torch.allclose(quaternion_to_matrix(q), m, atol=1e-9)
