"""Keypose markers: where the points are and what colour they carry, checked by hand."""

from __future__ import annotations

import pytest
import torch

from rendering import keypose_markers, sphere_points


def test_sphere_points_lie_on_the_unit_sphere_and_cover_it():
    p = sphere_points(200)
    assert torch.allclose(p.norm(dim=-1), torch.ones(200), atol=1e-6)
    assert p.mean(0).abs().max() < 0.02  # spread evenly: the centroid is (almost) the centre
    assert (p[:, 2] > 0).sum() == 100  # half above the equator
    with pytest.raises(ValueError, match="n"):
        sphere_points(0)


def test_markers_sit_on_spheres_around_each_keypose_with_state_and_recency_colours():
    pos = torch.tensor([[0.1, 0.2, 0.9], [0.3, -0.1, 1.0], [0.0, 0.0, 1.2]])
    grip = torch.tensor([1.0, 0.0, 1.0])
    pts, cols = keypose_markers(pos, grip, radius=0.02, points_per_marker=10)
    assert pts.shape == (30, 3) and cols.shape == (30, 3)
    dist = (pts.view(3, 10, 3) - pos[:, None]).norm(dim=-1)
    assert torch.allclose(dist, torch.full((3, 10), 0.02), atol=1e-6)
    c = cols.view(3, 10, 3)
    assert torch.allclose(c[0], torch.tensor([0.0, 0.5, 0.5]).expand(10, 3))  # oldest, open: half-bright cyan
    assert torch.allclose(c[1], torch.tensor([0.75, 0.0, 0.75]).expand(10, 3))  # middle, closed: magenta
    assert torch.allclose(c[2], torch.tensor([0.0, 1.0, 1.0]).expand(10, 3))  # newest, open: full cyan
    one, one_c = keypose_markers(pos[:1], grip[:1], 0.02, 4)
    assert torch.allclose(one_c, torch.tensor([0.0, 1.0, 1.0]).expand(4, 3))  # a lone marker is the newest
    with pytest.raises(ValueError, match="gripper_open"):
        keypose_markers(pos, grip[:2], 0.02, 4)
    with pytest.raises(ValueError, match="radius"):
        keypose_markers(pos, grip, 0.0, 4)
