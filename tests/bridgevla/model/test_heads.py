"""Heads against slow loop references and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from bridgevla.model.heads import ActionHead, ConvexUpsampleHead, bin_encoding, sample_grid, soft_cross_entropy


def _convex_reference(coarse: torch.Tensor, mask_logits: torch.Tensor, f: int) -> torch.Tensor:
    """Plain loops: fine pixel (i·f+a, j·f+b) = Σ_k softmax_k(0.1·mask[k,a,b,i,j]) · coarse[i+di_k, j+dj_k]
    (zero outside the grid), k running over the 3x3 neighbourhood row-major."""
    n, _, g, _ = coarse.shape
    out = torch.zeros(n, g * f, g * f, dtype=torch.float64)
    m = mask_logits.double().view(n, 9, f, f, g, g)
    c = coarse.double()
    for s in range(n):
        for i in range(g):
            for j in range(g):
                for a in range(f):
                    for b in range(f):
                        w = torch.softmax(0.1 * m[s, :, a, b, i, j], 0)
                        acc = 0.0
                        for k in range(9):
                            ii, jj = i + k // 3 - 1, j + k % 3 - 1
                            if 0 <= ii < g and 0 <= jj < g:
                                acc += w[k] * c[s, 0, ii, jj]
                        out[s, i * f + a, j * f + b] = acc
    return out


def test_convex_upsampling_matches_loop_reference():
    torch.manual_seed(0)
    head = ConvexUpsampleHead(in_dim=8, hidden=6, factor=3).double()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    out = head(x)
    assert out.shape == (2, 12, 12)
    ref = _convex_reference(head.logit(x), head.mask(x), 3)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_upsampled_map_is_a_convex_combination_of_coarse_neighbours():
    """A constant coarse map stays constant (weights sum to 1) away from the zero-padded border."""
    torch.manual_seed(1)
    head = ConvexUpsampleHead(in_dim=4, hidden=4, factor=2)
    with torch.no_grad():
        head.logit[-1].weight.zero_()
        head.logit[-1].bias.fill_(2.5)
    out = head(torch.randn(1, 4, 5, 5))
    torch.testing.assert_close(out[0, 2:-2, 2:-2], torch.full((6, 6), 2.5))


def test_soft_cross_entropy_hand_computed():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # probabilities 1/4, 3/4
    target = torch.tensor([[[0.5, 0.5]]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="match"):
        soft_cross_entropy(logits, target[..., :1])


def test_sample_grid_at_token_centres_returns_the_token():
    """Token (r, c) of a g-grid over an S-image has its centre at pixel ((c + .5)·S/g − .5, (r + .5)·S/g − .5)."""
    g, s = 4, 32
    feats = torch.randn(1, 3, 5, g, g)
    r, c = torch.tensor([0, 2, 3]), torch.tensor([1, 3, 0])
    uv = torch.stack([(c + 0.5) * s / g - 0.5, (r + 0.5) * s / g - 0.5], -1).float()[None]
    out = sample_grid(feats, uv, s)
    for v in range(3):
        torch.testing.assert_close(out[0, v], feats[0, v, :, r[v], c[v]])


def test_bin_encoding_wraps_around():
    e = bin_encoding(torch.tensor([0, 71, 72, 36]), 72, 4)
    torch.testing.assert_close(e[0], e[2])  # bin 72 ≡ bin 0
    assert (e[0] - e[1]).norm() < (e[0] - e[3]).norm()  # −180° and 175° are neighbours, 0° is opposite


def test_action_head_decode_is_teacher_forcing_on_its_own_choices():
    torch.manual_seed(0)
    head = ActionHead(feat_dim=6, num_views=3, hidden=[16, 8], num_bins=12, pe_frequencies=3)
    x = torch.randn(5, 2 * 3 * 6)
    dec = head.decode(x)
    forced = head(x, dec["bins"])
    torch.testing.assert_close(dec["rotation"], forced["rotation"])
    assert torch.equal(dec["bins"], forced["rotation"].argmax(-1))
    assert forced["gripper"].shape == (5, 2) and forced["collision"].shape == (5, 2)
    # The y and z heads really depend on the earlier bins; x does not.
    other = head(x, (dec["bins"] + 3) % 12)["rotation"]
    assert torch.equal(other[:, 0], forced["rotation"][:, 0])
    assert not torch.allclose(other[:, 1:], forced["rotation"][:, 1:])


def test_gather_inputs_layout():
    feats = torch.randn(2, 3, 4, 2, 2)
    uv = torch.zeros(2, 3, 2)  # pixel (0, 0) of a 2-px image = centre of token (0, 0) at S = g
    x = ActionHead.gather_inputs(feats, uv, 2)
    expected = torch.cat([feats.amax((-1, -2)), feats[..., 0, 0]], -1).flatten(1)
    torch.testing.assert_close(x, expected)
