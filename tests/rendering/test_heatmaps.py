import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering import fuse_heatmaps, gaussian_targets, grid_centers, project, soft_fuse_heatmaps

coord = st.floats(-0.99, 0.99, allow_nan=False)
point = st.tuples(coord, coord, coord)


def slow_fuse(heatmaps, res):
    """Brute force over every grid cell with torch's grid_sample (bilinear, zeros outside): independent of the
    separable implementation."""
    g = grid_centers(res, torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # (R^3, 3) in (x, y, z) order
    s = heatmaps.shape[-1]
    uvd = project(grid, s)  # (R^3, V, 3)
    score = torch.zeros(grid.shape[0], dtype=torch.float64)
    for k in range(3):
        # grid_sample's normalised coords with align_corners=False: -1 is the left edge of pixel 0.
        nx = (uvd[:, k, 0] + 0.5) / s * 2 - 1
        ny = (uvd[:, k, 1] + 0.5) / s * 2 - 1
        samp = torch.nn.functional.grid_sample(
            heatmaps[:, k : k + 1], torch.stack([nx, ny], -1).view(1, 1, -1, 2), align_corners=False,
            padding_mode="zeros",
        )
        score += samp.view(-1)
    return grid[score.argmax()], score.max() / 3


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(12, 12), (12, 7), (10, 16)]))
def test_fusion_matches_brute_force_grid_sample(seed, sizes):
    s, res = sizes
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(1, 3, s, s, generator=g, dtype=torch.float64) ** 8
    h = h / h.sum(dim=(2, 3), keepdim=True)
    got = fuse_heatmaps(h, grid_res=res, max_chunk_elements=50)  # tiny chunks exercise the slab loop
    want, _ = slow_fuse(h, res)
    assert torch.allclose(got[0], want)


@settings(max_examples=30, deadline=None)
@given(point, st.sampled_from([(32, 32), (64, 64), (224, 224), (64, 40)]))
def test_gaussian_targets_fused_recover_the_point_within_one_cell(p, sizes):
    s, res = sizes
    x = torch.tensor([p], dtype=torch.float64)
    h = gaussian_targets(x, s, sigma=1.5)
    assert torch.allclose(h.sum(dim=(2, 3)), torch.ones(1, 3, dtype=torch.float64))
    got = fuse_heatmaps(h, grid_res=res)
    cell = 2.0 / res
    assert (got - x).abs().max().item() <= cell + 1e-9
    # The soft-argmax is exact for a symmetric Gaussian, i.e. unless the image border clips it.
    if x.abs().max().item() <= 1 - (3 * 1.5 + 1) * 2 / s:
        # (up to the small asymmetry of the discrete 3-sigma cut-off: under 0.01 px).
        assert (soft_fuse_heatmaps(h) - x).abs().max().item() < 0.01 * 2 / s


def test_gaussian_target_values_by_hand():
    # Point at the centre of pixel (row 3, col 4) of the top view at 8 px: x = (4.5)/4 - 1, y = 1 - 3.5/4.
    x = torch.tensor([[4.5 / 4 - 1, 1 - 3.5 / 4, 0.0]], dtype=torch.float64)
    h = gaussian_targets(x, 8, sigma=1.0, cutoff=1.0)[0, 0]
    # Within 1 sigma: the centre and its 4 neighbours, weights 1 and e^-0.5.
    nz = h.nonzero().tolist()
    assert sorted(nz) == [[2, 4], [3, 3], [3, 4], [3, 5], [4, 4]]
    e = math.exp(-0.5)
    assert h[3, 4].item() == pytest.approx(1 / (1 + 4 * e))
    assert h[2, 4].item() == pytest.approx(e / (1 + 4 * e))


def test_soft_fuse_is_differentiable():
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    out = soft_fuse_heatmaps(logits.flatten(2).softmax(-1).view(2, 3, 16, 16))
    out.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_bad_heatmaps_raise():
    with pytest.raises(ValueError, match="heatmaps"):
        fuse_heatmaps(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="points"):
        gaussian_targets(torch.zeros(3), 8)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_targets(torch.zeros(1, 3), 8, sigma=0)


def test_fusion_ties_go_to_the_lowest_grid_index():
    h = torch.full((2, 3, 16, 16), 1 / 256.0, dtype=torch.float64)
    got = fuse_heatmaps(h, grid_res=16, max_chunk_elements=64)
    first = -1 + 1 / 16
    assert torch.allclose(got, torch.full((2, 3), first, dtype=torch.float64))


def test_non_finite_heatmaps_are_refused_by_name():
    h = torch.full((1, 3, 8, 8), 1.0 / 64)
    h[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        fuse_heatmaps(h, 8)
