"""Reading RLBench / COLOSSEUM / GemBench demo folders for training, without a conversion step."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.rlbench.demo_io import (
    VARIATION_DESCRIPTIONS,
    VARIATION_NUMBER,
    export_rlbench_episode,
    import_rlbench_episode,
    subsample_camera,
)
from benchmarks.rlbench.demos import find_demo_folders, is_demo_root, open_demo_episodes
from benchmarks.rlbench.pickles import dump_rlbench_pickle

from .test_rlbench_demo_io import record


def write_layouts(root):
    """One root holding the three harnesses' trees (REFERENCE §2-§4)."""
    ep = record(image_every=1)  # 26 ticks, images on all of them, 24 px
    # RLBench / PerAct and COLOSSEUM's training data: all_variations, the variation inside the episode
    for n in (0, 2, 10):
        export_rlbench_episode(ep, root / "close_jar" / "all_variations" / "episodes" / f"episode{n}")
    # GemBench: one folder per variation, no variation_number.pkl
    for v, n in ((3, 1), (0, 0)):
        out = export_rlbench_episode(ep, root / "push_button" / f"variation{v}" / "episodes" / f"episode{n}")
        (out / VARIATION_NUMBER).unlink()
    # COLOSSEUM per-factor set: the descriptions sit in variation0/, not in the episode
    out = export_rlbench_episode(ep, root / "close_box_11" / "variation0" / "episodes" / "episode0")
    (out / VARIATION_DESCRIPTIONS).unlink()
    dump_rlbench_pickle(["close the box", "shut the box"], out.parent.parent / VARIATION_DESCRIPTIONS)
    # COLOSSEUM factor 13 (RLBench variations): no variation folder at all
    export_rlbench_episode(ep, root / "close_box_13" / "episodes" / "episode4")
    # noise that is not an episode
    (root / "close_jar" / "all_variations" / "episodes" / "episode7").mkdir()  # no pickle: incomplete
    (root / "notes").mkdir()
    return ep


def test_finds_every_layout_sorted_naturally(tmp_path):
    write_layouts(tmp_path)
    found = find_demo_folders(tmp_path)
    assert list(found) == ["close_box_11", "close_box_13", "close_jar", "push_button"]
    assert [f.episode for f in found["close_jar"]] == [0, 2, 10]  # episode10 after episode2, not before
    assert [(f.variation, f.episode) for f in found["push_button"]] == [(0, 0), (3, 1)]
    assert [f.variation for f in found["close_box_13"]] == [None]
    assert list(find_demo_folders(tmp_path, ["push_button", "close_jar"])) == ["push_button", "close_jar"]
    with pytest.raises(ValueError, match="open_drawer"):
        find_demo_folders(tmp_path, ["open_drawer"])
    assert is_demo_root(tmp_path) and not is_demo_root(tmp_path / "notes")


def test_opens_episodes_with_variation_and_instructions_from_each_layout(tmp_path):
    ep = write_layouts(tmp_path)
    opened = open_demo_episodes(tmp_path)
    jar = opened["close_jar"]
    assert [e.variation for e in jar] == [2, 2, 2]  # variation_number.pkl (the recorded demo's variation 2)
    assert jar[0].instructions == ep.instructions
    assert [e.variation for e in opened["push_button"]] == [0, 3]  # from the folder name
    assert opened["close_box_11"][0].instructions == ["close the box", "shut the box"]
    assert opened["close_box_11"][0].task == "close_box_11"
    assert opened["close_box_13"][0].index == 4
    assert [len(v) for v in open_demo_episodes(tmp_path, episodes_per_task=1).values()] == [1, 1, 1, 1]
    for e in jar:
        assert e.keyframes == ep.keyframes
        np.testing.assert_array_equal(e.frame(8).cameras["front"].rgb, ep.frame(8).cameras["front"].rgb)


def test_image_size_keeps_colour_and_geometry_of_the_same_source_pixels(tmp_path):
    ep = record(image_every=1)
    folder = export_rlbench_episode(ep, tmp_path / "t" / "all_variations" / "episodes" / "episode0")
    full = import_rlbench_episode(folder).frame(8).cameras["front"]
    half = import_rlbench_episode(folder, image_size=12).frame(8).cameras["front"]
    assert half.rgb.shape == (12, 12, 3) and half.depth.shape == (12, 12)
    # pixel (v', u') of the 12-px image is source pixel (2v' + 1, 2u' + 1) of the 24-px one, colour and point alike
    np.testing.assert_array_equal(half.rgb, full.rgb[1::2, 1::2])
    pts_full = full.point_cloud()[0].reshape(24, 24, 3)[1::2, 1::2].reshape(-1, 3)
    pts_half = half.point_cloud()[0]
    ok = ~np.isnan(pts_full[:, 0])
    assert ok.sum() > 50 and np.array_equal(ok, ~np.isnan(pts_half[:, 0]))
    np.testing.assert_allclose(pts_half[ok], pts_full[ok], atol=1e-5)
    # hand-computed intrinsics for factor 2, offset 1: f/2 and (c - 1)/2
    k = np.array([[30.0, 0, 12.0], [0, 30.0, 12.0], [0, 0, 1]])
    _, _, k2 = subsample_camera(np.zeros((24, 24, 3), np.uint8), np.zeros((24, 24), np.float32), k, 12)
    np.testing.assert_allclose(k2, [[15.0, 0, 5.5], [0, 15.0, 5.5], [0, 0, 1]])
    with pytest.raises(ValueError, match="image_size 10"):
        subsample_camera(np.zeros((24, 24, 3), np.uint8), np.zeros((24, 24), np.float32), k, 10)
    with pytest.raises(ValueError, match="image_size"):
        import_rlbench_episode(folder, image_size=0)


def test_gembench_keyframes_use_the_clamped_start(tmp_path):
    ep = record(image_every=1)  # 26 ticks
    # Hand-made stream: open until tick 23, closed on 24-25; the arm moves everywhere except at tick 1.
    ep.gripper_open = np.r_[np.ones(24), np.zeros(2)]
    ep.joint_velocities = np.ones_like(ep.joint_velocities)
    ep.joint_velocities[1] = 0.0
    folder = export_rlbench_episode(ep, tmp_path / "push_button" / "variation0" / "episodes" / "episode0")
    # PerAct wraps frame 1's "frame -1" to the last (closed) frame: no stop at 1; keys {24, 25} -> drop 24.
    assert import_rlbench_episode(folder).keyframes == [25]
    # GemBench clamps it to frame 0 (open): tick 1 is a stop; keys {1, 24, 25} -> drop 24.
    assert import_rlbench_episode(folder, keyframe_start="clamp").keyframes == [1, 25]
    assert open_demo_episodes(tmp_path, keyframe_start="clamp")["push_button"][0].keyframes == [1, 25]
