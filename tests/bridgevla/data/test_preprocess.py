"""prepare_cloud (the one preprocessing) and collate/PolicyBatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bridgevla.data.batch import PolicyBatch, collate
from bridgevla.data.preprocess import observation_cloud, prepare_cloud, subsample_cloud
from rendering import SceneBounds
from tests.bridgevla.model_helpers import overhead_observation

BOUNDS = [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6]


def test_hand_made_cloud():
    points = np.array([
        [0.0, 0.0, 1.0],  # inside
        [np.nan, 0.0, 1.0],  # NaN
        [0.0, np.inf, 1.0],  # inf
        [0.7, 0.5, 1.6],  # on the max corner: inside (inclusive)
        [0.71, 0.0, 1.0],  # outside in x
        [0.0, 0.0, 0.59],  # outside in z
    ], np.float32)
    colors = np.arange(18, dtype=np.uint8).reshape(6, 3) * 10
    p, c = prepare_cloud(points, colors, BOUNDS)
    assert isinstance(p, np.ndarray) and p.dtype == np.float32 and c.dtype == np.float32
    np.testing.assert_array_equal(p, points[[0, 3]])
    np.testing.assert_allclose(c, colors[[0, 3]] / 255.0)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 40), st.just(3)),
              elements=st.one_of(st.floats(-2, 2, width=32), st.just(np.nan), st.just(np.inf))))
def test_matches_a_loop_reference_and_is_idempotent(points):
    colors = np.full(points.shape, 200, np.uint8)
    p, c = prepare_cloud(points, colors, SceneBounds.from_list(BOUNDS))
    lo, hi = np.array(BOUNDS[:3]), np.array(BOUNDS[3:])
    keep = [i for i in range(len(points)) if np.isfinite(points[i]).all() and (lo <= points[i]).all()
            and (points[i] <= hi).all()]
    np.testing.assert_array_equal(p, points[keep])
    p2, c2 = prepare_cloud(p, c, BOUNDS)
    np.testing.assert_array_equal(p2, p)
    np.testing.assert_array_equal(c2, c)


def test_torch_in_torch_out():
    p, c = prepare_cloud(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.5, 0.0]]), BOUNDS)
    assert isinstance(p, torch.Tensor) and isinstance(c, torch.Tensor) and c.tolist() == [[1.0, 0.5, 0.0]]


def test_bad_input_names_the_argument():
    pts = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="points"):
        prepare_cloud(np.zeros((2, 2)), np.zeros((2, 2), np.uint8), BOUNDS)
    with pytest.raises(ValueError, match="colors"):
        prepare_cloud(pts, np.zeros((3, 3), np.uint8), BOUNDS)
    with pytest.raises(ValueError, match="colors"):
        prepare_cloud(pts, np.full((2, 3), 255.0), BOUNDS)  # float colours in 0..255
    with pytest.raises(ValueError, match="bounds"):
        prepare_cloud(pts, np.zeros((2, 3), np.uint8), [0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="numpy arrays or both torch"):
        prepare_cloud(pts, torch.zeros(2, 3), BOUNDS)


def test_observation_cloud_drops_pixels_without_depth():
    obs = overhead_observation(size=16)
    p, c = observation_cloud(obs, BOUNDS)
    assert len(p) == 16 * 16 - 6 and np.allclose(p[:, 2], 0.9)


def test_collate_pads_and_masks():
    samples = [
        {"points": np.ones((3, 3), np.float32), "colors": np.full((3, 3), 255, np.uint8), "instruction": "a",
         "target_position": [0, 0, 1], "target_quaternion": [0, 0, 0, 1], "target_gripper_open": True,
         "target_ignore_collisions": 0.0, "task": "ignored"},
        {"points": torch.zeros(1, 3), "colors": torch.full((1, 3), 0.5), "instruction": "b",
         "target_position": np.array([0.1, 0, 1]), "target_quaternion": np.array([0, 0, 1, 0.0]),
         "target_gripper_open": 0.0, "target_ignore_collisions": 1.0},
    ]
    b = collate(samples)
    assert b.points.shape == (2, 3, 3) and b.mask.tolist() == [[True] * 3, [True, False, False]]
    assert b.colors[0].eq(1.0).all() and b.colors[1, 0].eq(0.5).all() and b.colors[1, 1:].eq(0).all()
    assert b.target_gripper_open.tolist() == [1.0, 0.0] and b.target_quaternion.shape == (2, 4)
    assert b.instructions == ["a", "b"] and b.has_targets and len(b) == 2
    moved = b.to("cpu")
    assert isinstance(moved, PolicyBatch) and torch.equal(moved.points, b.points)


def test_collate_errors():
    with pytest.raises(ValueError, match="empty"):
        collate([])
    with pytest.raises(ValueError, match="instruction"):
        collate([{"points": np.zeros((1, 3)), "colors": np.zeros((1, 3))}])
    with pytest.raises(ValueError, match="every sample or none"):
        collate([{"points": np.zeros((1, 3)), "colors": np.zeros((1, 3)), "instruction": "x",
                  "target_position": [0, 0, 0]}])
    with pytest.raises(ValueError, match="target_quaternion"):
        PolicyBatch(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), ["x"],
                    target_quaternion=torch.zeros(1, 3))


def test_subsample_cloud_keeps_order_and_pairs():
    pts = np.arange(30, dtype=np.float32).reshape(10, 3)
    cols = pts / 100
    p, c = subsample_cloud(pts, cols, 4, np.random.default_rng(0))
    assert p.shape == (4, 3) and np.array_equal(c, p / 100)  # colours stay with their points
    assert np.all(np.diff(p[:, 0]) > 0)  # original order kept
    same, _ = subsample_cloud(pts, cols, 0, np.random.default_rng(0))
    assert same is pts and subsample_cloud(pts, cols, 10, np.random.default_rng(0))[0] is pts
    with pytest.raises(ValueError, match="max_points"):
        subsample_cloud(pts, cols, -1, np.random.default_rng(0))
