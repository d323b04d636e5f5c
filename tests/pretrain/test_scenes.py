"""Synthetic pre-training scenes: determinism, geometry of objects and targets, prompts, and bad configs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pretrain.scenes import COLOUR_WORDS, NOUNS, PHRASES, RELATION_PHRASES, SceneConfig, generate_scenes
from rendering import project, render

SMALL = dict(table_points=300, points_per_object=200)


def _scenes(seed: int, b: int = 8, **kw) -> object:
    return generate_scenes(SceneConfig(**{**SMALL, **kw}), b, torch.Generator().manual_seed(seed))


def _object_points(sb, i: int, j: int) -> torch.Tensor:
    n, t = SceneConfig(**SMALL).points_per_object, SceneConfig(**SMALL).table_points
    return sb.points[i, t + j * n: t + (j + 1) * n]


def test_same_generator_seed_same_scenes_and_another_seed_differs():
    a, b, c = _scenes(3), _scenes(3), _scenes(4)
    assert torch.equal(a.points, b.points) and torch.equal(a.colors, b.colors) and a.instructions == b.instructions
    assert not torch.equal(a.points, c.points)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_objects_sit_on_the_table_apart_with_the_target_on_the_named_ones_top(seed):
    sb = _scenes(seed)
    t = SceneConfig(**SMALL).table_points
    for i in range(len(sb)):
        table_z = sb.points[i, 0, 2]
        assert torch.allclose(sb.points[i, :t, 2], table_z.expand(t))
        radii, centres = [], []
        for j in range(int(sb.present[i].sum())):
            pts = _object_points(sb, i, j)
            top = sb.centres[i, j]
            # Every point is below the top face and above the table; the top centre is the highest height.
            assert pts[:, 2].max() == pytest.approx(float(top[2]), abs=1e-5)
            assert pts[:, 2].min() >= table_z - 1e-5
            radii.append(float((pts[:, :2] - top[:2]).norm(dim=-1).max()))
            centres.append(top[:2])
        centres_t = torch.stack(centres)
        dist = (centres_t[:, None] - centres_t[None]).norm(dim=-1)
        need = torch.tensor(radii)[:, None] + torch.tensor(radii)[None]
        off = ~torch.eye(len(radii), dtype=torch.bool)
        assert bool((dist[off] > need[off]).all()), "objects overlap"
        assert torch.equal(sb.target[i], sb.centres[i, sb.target_index[i]])
        assert bool(sb.present[i, sb.target_index[i]])
        # Absent object slots are masked out; present ones are not.
        n = SceneConfig(**SMALL).points_per_object
        obj_mask = sb.mask[i, t:].view(-1, n)
        assert torch.equal(obj_mask.all(-1), sb.present[i]) and torch.equal(obj_mask.any(-1), sb.present[i])


def test_prompt_names_the_target_colour_with_a_known_noun_and_phrase_and_colours_are_distinct():
    sb = _scenes(0, b=64)
    nouns = {n for ns in NOUNS.values() for n in ns}
    for i, text in enumerate(sb.instructions):
        names = sb.colour_names[i][: int(sb.present[i].sum())]
        assert len(set(names)) == len(names)
        colour = sb.colour_names[i][int(sb.target_index[i])]
        assert f"{colour} " in text and text.split()[-1] in nouns
        assert any(text == p.format(f"{colour} {text.split()[-1]}") for p in PHRASES)
        assert text.count(" ") >= 1 and all(c not in text for c in set(names) - {colour})


def test_the_rendered_pixel_under_the_target_belongs_to_the_named_object():
    # Render object ids instead of colours: the top view at the target's projection must show the target object,
    # the pixel check that the heatmap targets and the clouds agree, through the renderer rather than our geometry.
    sb = _scenes(1, b=16)
    t, n = SceneConfig(**SMALL).table_points, SceneConfig(**SMALL).points_per_object
    k = sb.present.shape[1]
    ids = torch.cat([torch.zeros(t), torch.arange(1, k + 1).repeat_interleave(n).float()])
    feats = ids[None, :, None].expand(len(sb), -1, 3).contiguous() / 10
    r = render(sb.points, feats, sb.mask, 64, 0.03)
    uv = project(sb.target, 64)[:, 0, :2].round().long().clamp(0, 63)
    seen = r.features[torch.arange(len(sb)), 0, 0, uv[:, 1], uv[:, 0]] * 10
    assert torch.allclose(seen, sb.target_index.float() + 1, atol=1e-4)


def test_colours_follow_the_palette_up_to_shading():
    sb = _scenes(2, b=4, colours=["red", "blue", "green", "yellow", "white"])
    t, n = SceneConfig(**SMALL).table_points, SceneConfig(**SMALL).points_per_object
    for i in range(len(sb)):
        j = int(sb.target_index[i])
        cols = sb.colors[i, t + j * n: t + (j + 1) * n]
        ref = torch.tensor(COLOUR_WORDS[sb.colour_names[i][j]])
        # Shade (0.35-1.0) times brightness (0.75-1.1) plus noise: the colour's direction is kept.
        assert torch.nn.functional.cosine_similarity(cols.mean(0), ref, dim=0) > 0.97


@pytest.mark.parametrize("kw, match", [
    (dict(objects=(0, 3)), "scenes.objects"),
    (dict(objects=(4, 3)), "scenes.objects"),
    (dict(colours=["red", "mauve"]), "mauve"),
    (dict(colours=["red", "blue"], objects=(2, 3)), "distinct colours"),
    (dict(half_size=(0.05, 0.3)), "half_size"),
    (dict(table_height=(0.2, -0.2)), "table_height"),
    (dict(table_points=0), "table_points"),
    (dict(layout_span=1.5), "layout_span"),
    (dict(relational=1.5), "relational"),
    (dict(relation_distance=0.0), "relation_distance"),
])
def test_bad_scene_config_values_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        SceneConfig(**kw)


def test_plain_scenes_answer_with_the_named_objects_centre_and_are_unchanged_by_the_relational_option():
    plain = _scenes(5, b=16)
    assert torch.equal(plain.answers, plain.centres) and torch.equal(plain.answer_index, plain.target_index)
    # relational=1 changes targets and prompts, never the objects: the relation draws come after everything else.
    rel = _scenes(5, b=16, relational=1.0)
    assert torch.equal(rel.points, plain.points) and torch.equal(rel.target_index, plain.target_index)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_relational_targets_lie_beyond_the_named_object_away_from_the_other(seed):
    cfg = SceneConfig(**SMALL, relational=1.0, relation_distance=2.5)
    sb = generate_scenes(cfg, 16, torch.Generator().manual_seed(seed))
    for i in range(len(sb)):
        count, named, other = int(sb.present[i].sum()), int(sb.target_index[i]), int(sb.answer_index[i])
        if count < 2:  # a lone object has no relation: a plain prompt
            assert other == named and torch.equal(sb.target[i], sb.centres[i, named])
            continue
        assert other != named and other < count and torch.equal(sb.target[i], sb.answers[i, other])
        a, o = sb.centres[i, named], sb.centres[i, other]
        # The footprint half-size h from the object's own points: their farthest distance from the centre in the table
        # plane is h (a cylinder's radius) up to h*sqrt(2) (a square box's corner).
        reach = float((_object_points(sb, i, named)[:, :2] - a[:2]).norm(dim=-1).max())
        beyond = sb.target[i, :2] - a[:2]
        if sb.target[i, :2].abs().max() < 0.98:  # not clamped at the cube's side
            # 2.5 half-sizes from the centre, on the line from the other object through the named one.
            assert 2.5 * reach / 2 ** 0.5 - 1e-4 <= float(beyond.norm()) <= 2.5 * reach + 1e-4
            cos = torch.dot(beyond, a[:2] - o[:2]) / (beyond.norm() * (a[:2] - o[:2]).norm())
            assert float(cos) == pytest.approx(1.0, abs=1e-4)
        assert float(sb.target[i, 2]) == pytest.approx(float(a[2]))  # at the named object's top height
        assert bool((sb.target[i].abs() <= 1).all())
        # The prompt names the named object first, then the other, with their colours and kinds' nouns.
        text = sb.instructions[i]
        first, second = sb.colour_names[i][named], sb.colour_names[i][other]
        assert any(text.startswith(p.split("{}")[0]) for p in RELATION_PHRASES)
        assert text.index(f"{first} ") < text.index(f"{second} ")
        # Every other answer is the far side from that object; the named object's own answer is its centre.
        assert torch.equal(sb.answers[i, named], a)
        for j in range(count):
            if j != named and sb.answers[i, j, :2].abs().max() < 0.98:
                d = sb.answers[i, j, :2] - a[:2]
                assert float(torch.dot(d, a[:2] - sb.centres[i, j, :2])) > 0


def test_relational_share_follows_the_config():
    sb = generate_scenes(SceneConfig(**SMALL, relational=0.5, objects=(2, 5)), 400, torch.Generator().manual_seed(0))
    share = float((sb.answer_index != sb.target_index).float().mean())
    assert 0.42 < share < 0.58
