import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering import pad_clouds, pixel_index, project, render
from tests.rendering.reference_renderer import reference_render

coord = st.floats(-1.0, 1.0, allow_nan=False, width=32)
point = st.tuples(coord, coord, coord)


def _render_one(pts, size=16, radius=0.0, feats=None):
    p = torch.tensor([pts], dtype=torch.float64)
    f = torch.arange(len(pts), dtype=torch.float64).view(1, -1, 1) if feats is None else feats
    return render(p, f, image_size=size, splat_radius=radius)


@settings(max_examples=60, deadline=None)
@given(point, st.sampled_from([8, 17, 224]))
def test_lone_point_lands_where_project_says(p, size):
    out = _render_one([p], size=size)
    uvd = project(torch.tensor([p], dtype=torch.float64), size)[0]
    pix = pixel_index(uvd[:, :2], size)
    for k in range(3):
        assert out.valid[0, k].sum() == 1
        col, row = pix[k].tolist()
        assert out.valid[0, k, row, col]
        assert out.depth[0, k, row, col] == pytest.approx(uvd[k, 2].item())
        assert torch.allclose(out.xyz[0, k, :, row, col], torch.tensor(p, dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(point, st.floats(0.01, 0.9))
def test_nearer_of_two_points_wins(p, gap):
    x, y, z = p
    z_far = max(-1.0, z - gap)  # in the top view, lower z is farther (depth = 1 - z)
    pts = [(x, y, z_far), (x, y, z)] if z_far < z else [(x, y, z), (x, y, z)]
    out = _render_one(pts, size=32)
    hit = out.index[0, 0][out.valid[0, 0]]
    assert hit.numel() == 1
    assert hit.item() == (1 if z_far < z else 0)  # a tie goes to the lower index


@settings(max_examples=25, deadline=None)
@given(st.lists(point, min_size=1, max_size=25), st.sampled_from([0.0, 0.05, 0.2]), st.sampled_from([7, 12]))
def test_matches_slow_reference_pixel_for_pixel(pts, radius, size):
    out = _render_one(pts, size=size, radius=radius)
    ref = reference_render(pts, None, size, radius)
    for k in range(3):
        got = {
            (r, c): (out.index[0, k, r, c].item(), out.depth[0, k, r, c].item())
            for r, c in out.valid[0, k].nonzero().tolist()
        }
        assert set(got) == set(ref[k]), f"view {k}: coverage differs"
        for key, (i, d) in ref[k].items():
            assert got[key][0] == i, f"view {k} pixel {key}"
            assert got[key][1] == pytest.approx(d)


def test_splat_fills_the_reference_window():
    # One point at a pixel centre, radius 0.012 at 224 px = 1.344 px: the 3x3 window (diagonal 1.414 px is out).
    size = 224
    u = 100.0
    a = (u + 0.5) * 2 / size - 1
    out = _render_one([(a, -a, 0.0)], size=size, radius=0.012)
    assert out.valid[0, 0].sum().item() == 5  # centre + 4 edge neighbours
    out = _render_one([(a, -a, 0.0)], size=size, radius=0.013)  # 1.456 px > sqrt(2): full 3x3
    assert out.valid[0, 0].sum().item() == 9


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(point, min_size=0, max_size=30), min_size=1, max_size=4))
def test_batch_renders_like_each_cloud_alone(clouds):
    tensors = [torch.tensor(c, dtype=torch.float64).reshape(-1, 3) for c in clouds]
    pts, mask = pad_clouds(tensors)
    feats = torch.rand(pts.shape[0], pts.shape[1], 2, dtype=torch.float64)
    batch = render(pts, feats, mask, image_size=20, splat_radius=0.1)
    for i, t in enumerate(tensors):
        n = t.shape[0]
        alone = render(t[None], feats[i : i + 1, :n], image_size=20, splat_radius=0.1)
        assert torch.equal(batch.valid[i], alone.valid[0])
        assert torch.equal(batch.index[i], alone.index[0])
        assert torch.equal(batch.features[i], alone.features[0])
        assert torch.equal(batch.depth[i], alone.depth[0])


def test_bad_points_are_dropped_and_empty_cloud_renders_empty():
    pts = torch.tensor([[[math.nan, 0, 0], [math.inf, 0, 0], [0, 0, 2.0], [0.1, 0.2, 0.3]]])
    out = render(pts, torch.ones(1, 4, 3), image_size=32, splat_radius=0)
    assert out.valid.sum().item() == 3  # only the last point, once per view
    assert (out.index[out.valid] == 3).all()
    assert torch.isfinite(out.features).all() and torch.isfinite(out.depth).all()
    empty = render(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), image_size=16)
    assert not empty.valid.any() and (empty.depth == -1).all() and (empty.features == 0).all()
    masked = render(torch.zeros(1, 5, 3), torch.ones(1, 5, 3), torch.zeros(1, 5, dtype=torch.bool), image_size=16)
    assert not masked.valid.any()


@pytest.mark.parametrize(
    "args, name",
    [
        ((torch.zeros(4, 3), torch.zeros(1, 4, 3)), "points"),
        ((torch.zeros(1, 4, 2), torch.zeros(1, 4, 3)), "points"),
        ((torch.zeros(1, 4, 3, dtype=torch.long), torch.zeros(1, 4, 3)), "points"),
        ((torch.zeros(1, 4, 3), torch.zeros(1, 5, 3)), "features"),
        ((torch.zeros(1, 4, 3), torch.zeros(1, 4, 3, dtype=torch.long)), "features"),
        ((torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), torch.ones(1, 4)), "mask"),
    ],
)
def test_bad_shapes_and_dtypes_name_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        render(*args, image_size=8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_equals_gpu():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 5000, 3, generator=g) * 2 - 1
    feats = torch.rand(2, 5000, 3, generator=g)
    cpu = render(pts, feats, image_size=64)
    gpu = render(pts.cuda(), feats.cuda(), image_size=64)
    assert torch.equal(cpu.index, gpu.index.cpu())  # the same point in every pixel
    assert torch.equal(cpu.features, gpu.features.cpu()) and torch.equal(cpu.depth, gpu.depth.cpu())


def test_gradients_reach_points_and_features():
    # The shown features and cube coordinates are gathers, so they carry gradients back to the cloud; a point that is
    # shown nowhere gets none.
    pts = torch.tensor([[[0.1, 0.2, 0.3], [0.1, 0.2, -0.9], [5.0, 0.0, 0.0]]], requires_grad=True)
    feats = torch.rand(1, 3, 2, requires_grad=True)
    out = render(pts, feats, image_size=16, splat_radius=0)
    (out.features.sum() + out.xyz.sum() + out.depth.sum()).backward()
    # point 0 is nearest in the top view (depth 1 - z) and shown in front/side too; point 1 is hidden behind it in
    # the top view only; point 2 lies outside the cube.
    assert torch.equal(feats.grad[0, :, 0], torch.tensor([3.0, 2.0, 0.0]))
    assert pts.grad[0, 2].abs().sum() == 0 and pts.grad[0, :2].abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_render_never_synchronises():
    pts = torch.rand(2, 5000, 3, device="cuda") * 2 - 1
    feats = torch.rand(2, 5000, 3, device="cuda")
    render(pts, feats, image_size=64)  # warm-up: per-device constants are copied once
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = render(pts, feats, image_size=64)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.valid.is_cuda
