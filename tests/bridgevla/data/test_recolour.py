"""Colour-permutation augmentation: which points are recognised, how they are re-rendered, and that the cloud and
the instruction are permuted together (bridgevla/data/recolour.py)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.embedded.palette import COLOURS, FLOOR_RGB, METAL_RGB, SEEN_COLOURS, TABLE_RGB, WOOD_RGB
from bridgevla.data.augment import AugmentConfig, augment_batch
from bridgevla.data.batch import PolicyBatch
from bridgevla.data.recolour import RecolourConfig, colour_classes, recolour_batch, reshade
from rendering import SceneBounds

PALETTE = list(SEEN_COLOURS)
ALBEDO = torch.tensor([COLOURS[c] for c in PALETTE])


def lit(albedo, k: float, white: float = 0.0) -> torch.Tensor:
    """A point of this albedo under shading k plus a white offset, as a camera clips it."""
    return (torch.as_tensor(albedo) * k + white).clamp(0, 1)


def test_every_palette_colour_is_recognised_under_shading_and_overexposure() -> None:
    shades = [0.5, 0.8, 1.0, 1.3, 1.6]
    pts = torch.stack([lit(ALBEDO[i], k, w) for i in range(len(PALETTE)) for k in shades for w in (0.0, 0.03)])
    want = torch.arange(len(PALETTE)).repeat_interleave(len(shades) * 2)
    got = colour_classes(pts, ALBEDO, min_saturation=0.66, max_residual=0.05)
    assert torch.equal(got, want), [(PALETTE[int(w)], int(g)) for w, g in zip(want, got) if w != g]


def test_overexposed_orange_is_orange_not_yellow() -> None:
    # Measured on the demo's clouds: a lit orange top face renders (1, .72, .08), hue 42°, nearer yellow's 53°.
    got = colour_classes(torch.tensor([[1.0, 0.72, 0.08]]), ALBEDO, 0.66, 0.05)
    assert PALETTE[int(got[0])] == "orange"


@pytest.mark.parametrize("rgb", [TABLE_RGB, WOOD_RGB, FLOOR_RGB, METAL_RGB, (0.94, 0.8, 0.59), (1.0, 1.0, 1.0)])
def test_scene_colours_are_left_alone(rgb) -> None:
    pts = torch.stack([lit(rgb, k) for k in (0.6, 1.0, 1.3)])
    assert (colour_classes(pts, ALBEDO, 0.66, 0.05) == -1).all()


def test_reshade_keeps_shading() -> None:
    red, green = torch.tensor(COLOURS["red"]), torch.tensor(COLOURS["green"])
    for k in (0.5, 0.9):
        out = reshade(lit(red, k, 0.02), red, green)
        assert torch.allclose(out, lit(green, k, 0.02), atol=1e-5)
    assert torch.allclose(reshade(lit(red, 0.7), red, red), lit(red, 0.7), atol=1e-6)


def _batch(colours: list[str], instruction: str, n_grey: int = 5) -> PolicyBatch:
    """One sample: 4 points of each named colour (shaded differently) and some table points."""
    rows = [lit(COLOURS[c], k) for c in colours for k in (0.6, 0.8, 1.0, 1.2)] + [lit(TABLE_RGB, 1.0)] * n_grey
    cols = torch.stack(rows)[None]
    n = cols.shape[1]
    return PolicyBatch(points=torch.rand(1, n, 3) * 0.1 + 0.3, colors=cols, mask=torch.ones(1, n, dtype=torch.bool),
                       instructions=[instruction], target_position=torch.full((1, 3), 0.35),
                       target_quaternion=torch.tensor([[0.0, 0.0, 0.0, 1.0]]))


def test_cloud_and_instruction_are_permuted_together() -> None:
    cfg = RecolourConfig(probability=1.0, colours=PALETTE)
    b = _batch(["red", "green", "blue", "yellow"], "Red then slide the block to the green target, not redder")
    seen = set()
    for seed in range(20):
        out = recolour_batch(b, cfg, torch.Generator().manual_seed(seed))
        cls = colour_classes(out.colors[0], ALBEDO, 0.66, 0.05)
        names = [PALETTE[int(c)] for c in cls[:16:4]]  # the colour each original object now has
        assert (cls[:16].view(4, 4) == cls[:16:4, None]).all(), "an object's points got different colours"
        assert len(set(names)) == 4, "two objects got the same colour"
        first, second = names[0], names[1]
        assert out.instructions[0] == (f"{first.capitalize()} then slide the block to the {second} target, "
                                       "not redder"), out.instructions[0]
        assert torch.equal(out.colors[0, 16:], b.colors[0, 16:]), "table points must not change"
        assert torch.equal(out.points, b.points)
        seen.add(first)
    assert len(seen) >= 5, f"red became only {seen} in 20 draws"


def test_probability_zero_and_disabled_augment_leave_the_batch() -> None:
    b = _batch(["red", "blue"], "lift the red block")
    assert recolour_batch(b, RecolourConfig(), torch.Generator().manual_seed(0)) is b
    cfg = AugmentConfig(enabled=False, recolour=RecolourConfig(probability=1.0, colours=PALETTE))
    out = augment_batch(b, SceneBounds.from_list([0, 0, 0, 1, 1, 1]), cfg, torch.Generator().manual_seed(0))
    assert out.instructions == b.instructions and torch.equal(out.colors, b.colors)


def test_probability_is_the_share_of_samples_recoloured() -> None:
    one = _batch(["red"], "lift the red block")
    b = PolicyBatch(points=one.points.expand(400, -1, -1), colors=one.colors.expand(400, -1, -1),
                    mask=one.mask.expand(400, -1), instructions=one.instructions * 400)
    out = recolour_batch(b, RecolourConfig(probability=0.5, colours=PALETTE), torch.Generator().manual_seed(1))
    changed = sum(t != "lift the red block" for t in out.instructions)
    # Recoloured samples keep red with probability 1/8: expect 400 * 0.5 * 7/8 = 175 changed (sd ≈ 9.7).
    assert 140 < changed < 210
    changed_colour = (out.colors[:, 0] != b.colors[:, 0]).any(-1)
    assert torch.equal(changed_colour, torch.tensor([t != "lift the red block" for t in out.instructions]))


def test_same_generator_same_result() -> None:
    cfg = RecolourConfig(probability=1.0, colours=PALETTE)
    b = _batch(["red", "green"], "the red one")
    a1 = recolour_batch(b, cfg, torch.Generator().manual_seed(7))
    a2 = recolour_batch(b, cfg, torch.Generator().manual_seed(7))
    assert a1.instructions == a2.instructions and torch.equal(a1.colors, a2.colors)


@pytest.mark.parametrize("kwargs, message", [
    (dict(probability=0.5, colours=["red"]), "at least two"),
    (dict(probability=0.5, colours=["red", "red"]), "twice"),
    (dict(probability=0.5, colours=["red", "chartreuse"]), "no RGB for 'chartreuse'"),
    (dict(probability=0.5, colours=["red", "maroon"]), "apart"),
    (dict(probability=1.5, colours=PALETTE), "probability"),
    (dict(probability=0.5, colours=["red", "x"], rgb={"x": [0.1, 2.0, 0.1]}), "rgb.x"),
])
def test_bad_config_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RecolourConfig(**kwargs)


def test_custom_rgb_names_a_new_colour() -> None:
    lime = [0.5, 1.0, 0.0]
    cfg = RecolourConfig(probability=1.0, colours=["red", "lime"], rgb={"lime": lime})
    b = _batch(["red"], "the red cube")
    seen = set()
    for seed in range(12):
        out = recolour_batch(b, cfg, torch.Generator().manual_seed(seed))
        seen.add(out.instructions[0])
        got = colour_classes(out.colors[0, :4], torch.tensor([list(COLOURS["red"]), lime]), 0.66, 0.05)
        assert (got == (1 if out.instructions[0] == "the lime cube" else 0)).all(), (out.instructions[0], got)
    assert seen == {"the red cube", "the lime cube"}


def test_job_config_loads_recolour_and_names_a_bad_key() -> None:
    from bridgevla.configuration import ConfigError, load_config
    from bridgevla.training.job import TrainJobConfig

    cfg = load_config(TrainJobConfig, None, ["augment.recolour.probability=0.5", "augment.recolour.colours=[red, lime]",
                                             "augment.recolour.rgb={lime: [0.5, 1.0, 0.0]}"])
    assert cfg.augment.recolour.albedos() == [list(COLOURS["red"]), [0.5, 1.0, 0.0]]
    with pytest.raises(ConfigError, match="recolour"):
        load_config(TrainJobConfig, None, ["augment.recolour.probability=0.5", "augment.recolour.colours=[red]"])


def test_memory_markers_colours_are_refused_in_the_permutation() -> None:
    from bridgevla.model.config import BridgeVLAConfig
    from bridgevla.training.job import TrainJobConfig

    every = AugmentConfig(recolour=RecolourConfig(probability=0.5, colours=PALETTE))
    with pytest.raises(ValueError, match=r"\['cyan', 'magenta'\] would recolour the memory markers"):
        TrainJobConfig(model=BridgeVLAConfig(preset="tiny", memory_keyposes=3), augment=every)
    four = AugmentConfig(recolour=RecolourConfig(probability=0.5, colours=["red", "green", "blue", "yellow"]))
    TrainJobConfig(model=BridgeVLAConfig(preset="tiny", memory_keyposes=3), augment=four)
    TrainJobConfig(model=BridgeVLAConfig(preset="tiny"), augment=every)  # no markers, no clash


def test_batched_recolour_matches_a_per_point_reference() -> None:
    """The vectorised path (only saturated points of recoloured samples are classified) against a plain loop that
    classifies every point of every sample, with the same draws."""
    cfg = RecolourConfig(probability=0.6, colours=PALETTE)
    gen = torch.Generator().manual_seed(5)
    pal = torch.stack([lit(ALBEDO[i % 8], 0.5 + 0.1 * (i % 7), 0.02 * (i % 3)) for i in range(120)])
    colors = torch.cat([torch.rand(4, 80, 3, generator=gen), pal.view(1, 120, 3).expand(4, -1, -1)], 1)
    b = PolicyBatch(points=torch.zeros(4, 200, 3), colors=colors, mask=torch.ones(4, 200, dtype=torch.bool),
                    instructions=["the red one"] * 4)
    out = recolour_batch(b, cfg, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)  # the same draws, in the same order
    applied = torch.rand(4, generator=g) < cfg.probability
    perm = torch.argsort(torch.rand(4, 8, generator=g), dim=-1)
    assert 0 < int(applied.sum()) < 4
    for s in range(4):
        for n in range(200):
            y = colors[s, n]
            k = int(colour_classes(y[None], ALBEDO, cfg.min_saturation, cfg.max_residual)[0])
            if not applied[s] or k < 0 or int(perm[s, k]) == k:
                want = y
            else:
                want = reshade(y, ALBEDO[k], ALBEDO[int(perm[s, k])])
            assert torch.allclose(out.colors[s, n], want, atol=1e-6), (s, n)
