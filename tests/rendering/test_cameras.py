import math

import pytest
import torch

from rendering import depth_to_world, world_to_pixels


def test_depth_to_world_by_hand():
    # 2x3 image, fx = 2, fy = 4, principal point (1, 0.5); camera at (1, 2, 3) looking down world -z
    # (camera x -> world x, camera y -> world -y, camera z -> world -z).
    k = torch.tensor([[2.0, 0, 1.0], [0, 4.0, 0.5], [0, 0, 1]], dtype=torch.float64)
    e = torch.eye(4, dtype=torch.float64)
    e[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    e[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    depth = torch.tensor([[2.0, 0.0, math.nan], [1.0, 4.0, 2.0]], dtype=torch.float64)
    pts = depth_to_world(depth, k, e)
    assert pts.shape == (6, 3)
    # pixel (row 0, col 0), d = 2: camera ((0-1)*2/2, (0-0.5)*2/4, 2) = (-1, -0.25, 2) -> world (0, 2.25, 1)
    assert torch.allclose(pts[0], torch.tensor([0.0, 2.25, 1.0], dtype=torch.float64))
    # pixel (row 1, col 2), d = 2: camera ((2-1)*2/2, (1-0.5)*2/4, 2) = (1, 0.25, 2) -> world (2, 1.75, 1)
    assert torch.allclose(pts[5], torch.tensor([2.0, 1.75, 1.0], dtype=torch.float64))
    assert torch.isnan(pts[1]).all() and torch.isnan(pts[2]).all()  # zero and NaN depth: no return
    batched = depth_to_world(depth.expand(3, 2, 3), k.expand(3, 3, 3), e.expand(3, 4, 4))
    assert torch.equal(batched[2].nan_to_num(-9), pts.nan_to_num(-9))


def test_depth_to_world_bad_shapes():
    with pytest.raises(ValueError, match="intrinsics"):
        depth_to_world(torch.ones(2, 2), torch.eye(4), torch.eye(4))
    with pytest.raises(ValueError, match="depth"):
        depth_to_world(torch.ones(4, dtype=torch.long), torch.eye(3), torch.eye(4))


def test_world_to_pixels_inverts_depth_to_world():
    g = torch.Generator().manual_seed(3)
    h, w = 5, 7
    depth = 0.5 + torch.rand(h, w, generator=g, dtype=torch.float64) * 2
    k = torch.tensor([[30.0, 0, 3.2], [0, 25.0, 2.1], [0, 0, 1]], dtype=torch.float64)
    # a rotated camera: rotation about (1, 2, 3) by 0.7 rad (Rodrigues), somewhere above the table
    axis = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    axis = axis / axis.norm()
    kx = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    e = torch.eye(4, dtype=torch.float64)
    e[:3, :3] = torch.eye(3, dtype=torch.float64) + math.sin(0.7) * kx + (1 - math.cos(0.7)) * kx @ kx
    e[:3, 3] = torch.tensor([0.3, -0.2, 1.5])
    uvd = world_to_pixels(depth_to_world(depth, k, e), k, e)
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    want = torch.stack([u, v, depth], -1).reshape(-1, 3)
    assert torch.allclose(uvd, want, atol=1e-9)


def test_world_to_pixels_by_hand_and_bad_shapes():
    # the hand-computed camera of test_depth_to_world_by_hand: world (2, 1.75, 1) is pixel (col 2, row 1) at depth 2
    k = torch.tensor([[2.0, 0, 1.0], [0, 4.0, 0.5], [0, 0, 1]], dtype=torch.float64)
    e = torch.eye(4, dtype=torch.float64)
    e[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    e[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    got = world_to_pixels(torch.tensor([[2.0, 1.75, 1.0], [1.0, 2.0, 4.0]], dtype=torch.float64), k, e)
    assert torch.allclose(got[0], torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64))
    assert got[1, 2] < 0  # above the camera, which looks down: behind it
    with pytest.raises(ValueError, match="points"):
        world_to_pixels(torch.ones(3), k, e)
    with pytest.raises(ValueError, match="extrinsics"):
        world_to_pixels(torch.ones(2, 3), k, torch.eye(3))
