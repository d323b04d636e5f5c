import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rendering import (
    box_centre_targets,
    box_grounding,
    fuse_heatmaps,
    gaussian_targets,
    grid_centers,
    heatmap_scores,
    project,
    soft_fuse_heatmaps,
)
from rendering.heatmaps import fusion_score_planes

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


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(12, 12), (12, 7), (10, 16)]))
def test_heatmap_scores_at_grid_centres_equal_the_separable_fusion_planes(seed, sizes):
    """The per-point score against the fusion's own separable planes (interpolation matrices, no grid_sample): the
    mean of T[x, y], F[y, z], S[x, z] at every grid cell, and its argmax is fuse_heatmaps' point."""
    s, res = sizes
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(2, 3, s, s, generator=g, dtype=torch.float64) ** 8
    h = h / h.sum(dim=(2, 3), keepdim=True)
    c = grid_centers(res, torch.float64)
    cells = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    got = heatmap_scores(h, cells.expand(2, -1, -1)).view(2, res, res, res)
    want = torch.zeros(2, res, res, res, dtype=torch.float64)
    for plane, ib, ia in fusion_score_planes(h, res):  # plane[b, grid along axis ib, grid along axis ia]
        p = plane if ib < ia else plane.transpose(1, 2)  # [b, lower axis, higher axis]
        want += p.unsqueeze(1 + (3 - ia - ib))  # broadcast along the axis this view does not see
    assert torch.allclose(got, want / 3, atol=1e-12)
    best = cells[got.view(2, -1).argmax(1)]
    assert torch.allclose(best, fuse_heatmaps(h, res))


def test_heatmap_scores_by_hand():
    s = 4
    h = torch.zeros(1, 3, s, s, dtype=torch.float64)
    h[0, :, 1, 2] = 1.0  # every view: all mass on row 1, column 2
    # top view: u = (x + 1) * 2 - 0.5, v = (1 - y) * 2 - 0.5; column 2, row 1 -> x = 0.25, y = 0.25
    # front view: (u, v) from (y, z): y = 0.25, z = 0.25; side view: u from -x: x = -0.25, z = 0.25
    pts = torch.tensor([[[0.25, 0.25, 0.25], [-0.25, 0.25, 0.25], [0.25, 0.25, -0.75], [3.0, 3.0, 3.0],
                         [0.5, 0.25, 0.25]]], dtype=torch.float64)
    got = heatmap_scores(h, pts)[0]
    # (0.25, 0.25, 0.25): top and front hit their peak, side projects to column 1 -> 2/3
    # (-0.25, 0.25, 0.25): front and side hit, top lands on column 1 -> 2/3
    # (0.25, 0.25, -0.75): only top (z is not seen by it) -> 1/3; outside the cube: 0
    # (0.5, 0.25, 0.25): top at u = 2.5 (half of the peak), front at its peak, side at u = -0.5 - ... outside the peak
    assert torch.allclose(got[:4], torch.tensor([2 / 3, 2 / 3, 1 / 3, 0.0], dtype=torch.float64))
    assert torch.isclose(got[4], torch.tensor((0.5 + 1.0) / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="points"):
        heatmap_scores(h, pts[0])


# --------------------------------------------------------------------------- 2D grounding targets and scores
def _box_at_pixel(u, v, s, half=0.1):
    """A normalised box whose centre is the centre of pixel (u, v) of an s-pixel image."""
    cx, cy = (u + 0.5) / s, (v + 0.5) / s
    return [cx - half, cy - half, cx + half, cy + half]


def test_box_centre_target_of_one_box_by_hand():
    # sigma 1, cutoff 1.5: the support is the 3x3 block around the centre pixel (d^2 in {0, 1, 2} <= 2.25).
    boxes = torch.tensor([[_box_at_pixel(2, 1, 5)]], dtype=torch.float64)
    h = box_centre_targets(boxes, torch.ones(1, 1, dtype=torch.bool), 5, sigma=1.0, cutoff=1.5)[0]
    e1, e2 = math.exp(-0.5), math.exp(-1.0)
    z = 1 + 4 * e1 + 4 * e2
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[0:3, 1:4] = torch.tensor([[e2, e1, e2], [e1, 1, e1], [e2, e1, e2]]) / z  # rows v 0..2, cols u 1..3
    assert torch.allclose(h, expected, atol=1e-12)


def test_two_overlapping_boxes_are_averaged_where_supports_meet_then_renormalised_by_hand():
    # Boxes centred on pixels (1, 1) and (3, 3) of a 5 px image: their 3x3 supports share pixel (2, 2) only, which is
    # diagonal to both centres (weight e^-1 in each). Before the final normalisation every pixel holds the mean of
    # the per-box maps covering it: 1/z at each centre, e^-1/z at the shared pixel; the total is (2z - e^-1)/z.
    boxes = torch.tensor([[_box_at_pixel(1, 1, 5), _box_at_pixel(3, 3, 5), [0.0, 0.0, 0.0, 0.0]]],
                         dtype=torch.float64)
    valid = torch.tensor([[True, True, False]])  # the third box is padding and must not count
    h = box_centre_targets(boxes, valid, 5, sigma=1.0, cutoff=1.5)[0]
    e1, e2 = math.exp(-0.5), math.exp(-1.0)
    z = 1 + 4 * e1 + 4 * e2
    total = 2 * z - e2
    assert h[1, 1].item() == pytest.approx(1 / total)
    assert h[3, 3].item() == pytest.approx(1 / total)
    assert h[2, 2].item() == pytest.approx(e2 / total)
    assert h[1, 2].item() == pytest.approx(e1 / total)  # covered by the first box only
    assert h[0, 4].item() == 0.0 and h[4, 0].item() == 0.0
    assert h.sum().item() == pytest.approx(1.0)


def _slow_box_targets(boxes, valid, s, sigma, cutoff):
    """Loop reference: per pixel, per box."""
    out = torch.zeros(boxes.shape[0], s, s, dtype=torch.float64)
    for b in range(boxes.shape[0]):
        maps = []
        for k in range(boxes.shape[1]):
            if not valid[b, k]:
                continue
            x1, y1, x2, y2 = boxes[b, k].tolist()
            cu = min(max((x1 + x2) / 2 * s - 0.5, -0.5), s - 0.5)
            cv = min(max((y1 + y2) / 2 * s - 0.5, -0.5), s - 0.5)
            m = torch.zeros(s, s, dtype=torch.float64)
            for v in range(s):
                for u in range(s):
                    d2 = (u - cu) ** 2 + (v - cv) ** 2
                    if d2 <= (cutoff * sigma) ** 2:
                        m[v, u] = math.exp(-d2 / (2 * sigma**2))
            maps.append(m / m.sum())
        stack = torch.stack(maps)
        merged = stack.sum(0) / (stack > 0).sum(0).clamp_min(1)
        out[b] = merged / merged.sum()
    return out


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_box_centre_targets_match_a_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(3, 4, 2, generator=g, dtype=torch.float64) * 1.1 - 0.05  # some centres just outside the image
    boxes = torch.cat([lo, lo + torch.rand(3, 4, 2, generator=g, dtype=torch.float64) * 0.3], -1)
    valid = torch.rand(3, 4, generator=g) < 0.6
    valid[:, 0] = True
    got = box_centre_targets(boxes, valid, 12, sigma=1.5, cutoff=2.0)
    assert torch.allclose(got, _slow_box_targets(boxes, valid, 12, 1.5, 2.0), atol=1e-12)


def test_box_centre_targets_refuse_bad_input():
    boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.3]]])
    with pytest.raises(ValueError, match="at least one valid box"):
        box_centre_targets(boxes, torch.zeros(1, 1, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="valid must be"):
        box_centre_targets(boxes, torch.ones(1, 2, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="sigma \\* cutoff"):
        box_centre_targets(boxes, torch.ones(1, 1, dtype=torch.bool), 8, sigma=0.3, cutoff=2.0)
    with pytest.raises(ValueError, match="finite"):
        box_centre_targets(torch.full((1, 1, 4), math.nan), torch.ones(1, 1, dtype=torch.bool), 8)


def test_box_grounding_by_hand():
    s = 10
    logits = torch.zeros(3, s, s)
    logits[0, 2, 3] = 5.0  # peak at (u 3, v 2): centre (0.35, 0.25)
    logits[1, 9, 9] = 5.0  # peak at (9, 9): centre (0.95, 0.95)
    logits[2, 5, 0] = 5.0  # peak at (0, 5): centre (0.05, 0.55)
    boxes = torch.tensor([
        [[0.3, 0.2, 0.5, 0.4], [0.0, 0.0, 0.1, 0.1]],  # the peak is inside the first box; its centre (3.5, 2.5) px
        [[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]],  # outside both; nearest centre (7, 7) px
        [[0.05, 0.55, 0.2, 0.6], [0.0, 0.0, 1.0, 1.0]],  # on the first box's corner (inside); the second is padding
    ])
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    out = box_grounding(logits, boxes, valid)
    assert out["peak"].tolist() == [[3, 2], [9, 9], [0, 5]]
    assert out["inside"].tolist() == [True, False, True]
    assert out["distance_px"][0].item() == pytest.approx(math.hypot(0.5, 0.5))
    assert out["distance_px"][1].item() == pytest.approx(math.hypot(2.0, 2.0))
    assert out["distance_px"][2].item() == pytest.approx(math.hypot(0.75, 0.25))  # centre (0.75, 5.25) px


def test_box_targets_peak_scores_inside_its_box():
    # The two functions agree: the peak of a one-box target map is inside that box, at distance < 1 px of its centre.
    g = torch.Generator().manual_seed(0)
    lo = torch.rand(16, 1, 2, generator=g) * 0.7
    boxes = torch.cat([lo, lo + 0.05 + torch.rand(16, 1, 2, generator=g) * 0.25], -1)
    valid = torch.ones(16, 1, dtype=torch.bool)
    out = box_grounding(box_centre_targets(boxes, valid, 32), boxes, valid)
    assert bool(out["inside"].all()) and float(out["distance_px"].max()) <= math.sqrt(0.5) + 1e-6
