import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering import (
    REFERENCE_BOUNDS,
    SceneBounds,
    crop_to_bounds,
    cube_to_world,
    in_image,
    lift,
    pad_clouds,
    pixel_index,
    project,
    unzoom,
    world_to_cube,
    zoom,
)

coord = st.floats(-1.0, 1.0, allow_nan=False)
point = st.tuples(coord, coord, coord)


def test_reference_bounds_map_to_the_cube_corners():
    # Hand-computed: centre (0.2, 0, 1.1), largest side 1 m -> scale 2.
    lo = torch.tensor([[-0.3, -0.5, 0.6]], dtype=torch.float64)
    hi = torch.tensor([[0.7, 0.5, 1.6]], dtype=torch.float64)
    assert torch.allclose(world_to_cube(lo), torch.tensor([[-1.0, -1.0, -1.0]], dtype=torch.float64))
    assert torch.allclose(world_to_cube(hi), torch.ones(1, 3, dtype=torch.float64))
    assert REFERENCE_BOUNDS.scale == pytest.approx(2.0)
    b = SceneBounds((0, 0, 0), (2, 1, 1))  # non-cubic: longest side 2 -> scale 1, centre (1, .5, .5)
    assert torch.allclose(world_to_cube(torch.tensor([2.0, 1.0, 1.0]), b), torch.tensor([1.0, 0.5, 0.5]))


@settings(max_examples=50, deadline=None)
@given(point)
def test_world_cube_roundtrip(p):
    x = torch.tensor(p, dtype=torch.float64)
    assert torch.allclose(world_to_cube(cube_to_world(x)), x, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(point, min_size=2, max_size=2), st.lists(st.floats(0.1, 10.0), min_size=2, max_size=2))
def test_zoom_unzoom_identity_batched(centres, factors):
    pts = torch.rand(2, 7, 3, dtype=torch.float64) * 2 - 1
    c = torch.tensor(centres, dtype=torch.float64)
    f = torch.tensor(factors, dtype=torch.float64)
    z = zoom(pts, c, f)
    assert torch.allclose(z[1], (pts[1] - c[1]) * f[1])  # by hand for one element
    assert torch.allclose(unzoom(z, c, f), pts, atol=1e-9)


def test_zoom_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        zoom(torch.zeros(2, 3), torch.zeros(3), -1.0)
    with pytest.raises(ValueError, match="center"):
        zoom(torch.zeros(2, 4, 3), torch.zeros(3, 3), 2.0)
    with pytest.raises(ValueError, match="points"):
        world_to_cube(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="bounds"):
        SceneBounds((0, 0, 0), (1, -1, 1))


def test_crop_drops_nan_inf_and_outside():
    pts = torch.tensor([[0.2, 0.0, 1.0], [math.nan, 0, 1], [0, math.inf, 1], [0.71, 0, 1], [0.7, 0.5, 1.6],
                        [0, 0, -math.inf], [0.2, 0.0, math.nan]])
    assert crop_to_bounds(pts).tolist() == [True, False, False, False, True, False, False]
    assert crop_to_bounds(pts.expand(2, 7, 3)).tolist() == [crop_to_bounds(pts).tolist()] * 2


def test_pad_clouds():
    pts, mask = pad_clouds([torch.ones(2, 3), torch.zeros(0, 3), torch.ones(4, 3)])
    assert pts.shape == (3, 4, 3) and mask.sum(1).tolist() == [2, 0, 4]
    with pytest.raises(ValueError, match="clouds"):
        pad_clouds([torch.ones(2, 3), torch.ones(2, 4)])


def test_projection_by_hand():
    # Cube point (0.5, -0.25, 0.75) at 8 px: 4 px per cube unit, pixel centres at integers.
    uvd = project(torch.tensor([0.5, -0.25, 0.75]), 8)
    # top: a = x = .5 -> u = 1.5*4 - .5 = 5.5; b = y = -.25 -> v = 1.25*4 - .5 = 4.5; depth = 1 - z = .25
    # front: a = y -> u = .75*4 - .5 = 2.5; b = z -> v = .25*4 - .5 = .5; depth = 1 - x = .5
    # side: a = -x -> u = .5*4 - .5 = 1.5; b = z -> v = .5; depth = 1 - y = 1.25
    expect = torch.tensor([[5.5, 4.5, 0.25], [2.5, 0.5, 0.5], [1.5, 0.5, 1.25]])
    assert torch.allclose(uvd, expect)
    assert pixel_index(torch.tensor([5.5, 4.49]), 8).tolist() == [6, 4]
    assert pixel_index(torch.tensor([7.5, -0.5]), 8).tolist() == [7, 0]  # far edges clamp into the image


@settings(max_examples=100, deadline=None)
@given(point, st.sampled_from([16, 224, 97]))
def test_lift_inverts_project(p, size):
    x = torch.tensor(p, dtype=torch.float64)
    uvd = project(x, size)
    assert in_image(uvd, size).all()
    back = lift(uvd, size)
    assert torch.allclose(back, x.expand(3, 3), atol=1e-9)
    assert torch.allclose(project(back, size)[torch.arange(3), torch.arange(3)], uvd, atol=1e-9)


def test_project_and_lift_reject_bad_shapes():
    with pytest.raises(ValueError, match="points"):
        project(torch.zeros(3, 2), 8)
    with pytest.raises(ValueError, match="uvd"):
        lift(torch.zeros(2, 3), 8)
    with pytest.raises(ValueError, match="image_size"):
        project(torch.zeros(3), 0)
