"""Training straight from RLBench / COLOSSEUM / GemBench demo folders: the dataset reads them in place and gives
the samples our own format gives for the same demos; a tiny policy trains on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.dataset import episode_dir, save_episode
from benchmarks.rlbench.demo_io import VARIATION_NUMBER, export_rlbench_episode, rlbench_episode_dir
from bridgevla.configuration import ConfigError, from_dict
from bridgevla.data.dataset import DataConfig, KeyframeDataset
from tests.benchmarks.test_rlbench_demo_io import record

BOUNDS = [-1.0, -1.0, -0.1, 1.0, 1.0, 1.0]  # the fake recorder's table scene


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    """The same 4 recorded demos (2 tasks) in our format and in RLBench's layout."""
    root = tmp_path_factory.mktemp("demos")
    for task in ("pick_fake", "reach_fake"):
        for i in range(2):
            ep = record(task=task, seed=10 * i + len(task), image_every=1)
            save_episode(ep, episode_dir(root / "ours", task, i))
            export_rlbench_episode(ep, rlbench_episode_dir(root / "rlbench", task, i))
    return root


def test_rlbench_layout_gives_the_same_samples_as_our_format(both_formats):
    cams = ["front", "overhead", "wrist"]  # the policy's camera list fixes the order the clouds are joined in
    ours = KeyframeDataset(DataConfig(root=str(both_formats / "ours")), BOUNDS, seed=3, cameras=cams)
    theirs = KeyframeDataset(DataConfig(root=str(both_formats / "rlbench")), BOUNDS, seed=3, cameras=cams)  # auto
    assert theirs.tasks == ours.tasks == ["pick_fake", "reach_fake"]
    assert [[(r.start, r.target) for r in refs] for refs in theirs.by_task] == \
        [[(r.start, r.target) for r in refs] for refs in ours.by_task]
    assert len(theirs) == len(ours) == 20  # 4 demos x (3 keyframe starts + 2 augmentation starts)
    for key in [(0, 0), (5, 1), (11, 3)]:  # the same (step, slot) keys draw the same sample from either
        a, b = ours[key], theirs[key]
        assert a["instruction"] == b["instruction"] and a["task"] == b["task"]
        for name in ("target_position", "target_quaternion"):
            np.testing.assert_allclose(a[name], b[name], atol=1e-6)
        assert (a["target_gripper_open"], a["target_ignore_collisions"]) == \
            (b["target_gripper_open"], b["target_ignore_collisions"])
        # depth is stored as mm PNG (ours) vs 24-bit fraction (RLBench): clouds agree to under a millimetre
        assert a["points"].shape == b["points"].shape and np.abs(a["points"] - b["points"]).max() < 1e-3
        np.testing.assert_allclose(a["colors"], b["colors"])
    forced = KeyframeDataset(DataConfig(root=str(both_formats / "rlbench"), format="rlbench",
                                        episodes_per_task=1, tasks=["reach_fake"]), BOUNDS)
    assert forced.tasks == ["reach_fake"] and len(forced.episodes) == 1
    with pytest.raises(ValueError, match="no RLBench-layout episodes"):
        KeyframeDataset(DataConfig(root=str(both_formats / "ours"), format="rlbench"), BOUNDS)


def test_gembench_layout_at_half_resolution_with_its_keyframe_rule(both_formats, tmp_path):
    for v in (0, 2):
        folder = export_rlbench_episode(record(task="pick_fake", seed=v, image_every=1),
                                        tmp_path / "seed0" / "pick_fake" / f"variation{v}" / "episodes" / "episode0")
        (folder / VARIATION_NUMBER).unlink()
    full = KeyframeDataset(DataConfig(root=str(tmp_path / "seed0"), keyframe_start="clamp"), BOUNDS)
    half = KeyframeDataset(DataConfig(root=str(tmp_path / "seed0"), image_size=12, keyframe_start="clamp"), BOUNDS)
    assert [e.variation for e in half.episodes] == [0, 2]
    ref = half.by_task[0][0]
    assert half.episodes[0].frame(ref.start).cameras["front"].rgb.shape == (12, 12, 3)
    assert 0 < len(half.cloud(ref)[0]) < len(full.cloud(ref)[0])
    with pytest.raises(ValueError, match="image_size 10"):
        KeyframeDataset(DataConfig(root=str(tmp_path / "seed0"), image_size=10), BOUNDS).cloud(ref)
    with pytest.raises(ConfigError, match="data.image_size"):
        from_dict(DataConfig, {"image_size": -1}, prefix="data.")
    with pytest.raises(ConfigError, match="format"):
        from_dict(DataConfig, {"format": "lerobot"}, prefix="data.")


@pytest.mark.slow
def test_a_tiny_policy_trains_directly_on_rlbench_demo_folders(both_formats, tmp_path):
    from bridgevla.training.job import load_job_config, run_training

    cfg = load_job_config(None, [
        "model.preset=tiny", "train.batch_size=2", "train.steps=2", "train.progress=false", "train.tensorboard=false",
        "train.log_every=1", "model.max_points=300", f"data.root={both_formats / 'rlbench'}",
        f"train.out_dir={tmp_path}", "model.bounds=[-1,-1,-0.1,1,1,1]"])
    run_training(cfg)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["samples_per_task"]) == {"pick_fake", "reach_fake"}
    assert (tmp_path / "policy" / "model.safetensors").is_file()
