"""The on-disk episode format: exact round trip of low-dim data, depth within quantisation, lazy images, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.dataset import (
    Episode,
    decode_depth_mm,
    encode_depth_mm,
    episode_dir,
    is_complete,
    list_episodes,
    load_episode,
    save_episode,
)
from benchmarks.keyframes import discover_keyframes

from .fake_demo_env import BOX_HEIGHT, FakeDemoEnv


def record(task: str = "pick_fake", seed: int = 3, variation: int = 1, image_every: int = 10) -> Episode:
    env = FakeDemoEnv(image_size=24)
    env.reset(task, variation, seed)
    plan = env.expert_keyposes()
    env.start_recording(image_every=image_every)
    result = None
    for kp in plan:
        result = env.step(kp)
    frames = env.stop_recording()
    return Episode.from_observations(
        frames, task=task, variation=variation, seed=seed, index=7, keyposes=plan, success=result.success
    )


def test_depth_encoding_hand_values():
    depth = np.array([[1.2344, 1.2346, np.nan], [-1.0, 70.0, 0.0004]], dtype=np.float32)
    assert encode_depth_mm(depth).tolist() == [[1234, 1235, 0], [0, 0, 0]]
    assert encode_depth_mm(depth).dtype == np.uint16
    np.testing.assert_allclose(decode_depth_mm(np.array([1234, 0], dtype=np.uint16)), [1.234, 0.0], rtol=0, atol=1e-7)


def test_round_trip_is_exact_for_low_dim_and_within_quantisation_for_clouds(tmp_path):
    ep = record()
    path = save_episode(ep, episode_dir(tmp_path, ep.task, ep.index))
    assert path == tmp_path / "pick_fake" / "episode_00007"
    back = load_episode(path)
    assert (back.task, back.variation, back.seed, back.index, back.success) == ("pick_fake", 1, 3, 7, True)
    assert back.instructions == ep.instructions
    for name in ("gripper_pose", "gripper_open", "joint_positions", "joint_velocities"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ep, name))
    assert back.keyframes == ep.keyframes == [8, 17, 25]  # arrival stop, gripper close, last frame (hand-counted)
    assert back.image_frames == ep.image_frames == [0, 8, 10, 17, 20, 25]
    assert [k.to_array().tolist() for k in back.keyposes] == [k.to_array().tolist() for k in ep.keyposes]
    assert back.camera_names == ["front", "overhead", "wrist"]
    for tick in ep.image_frames:
        a, b = ep.frame(tick), back.frame(tick)
        for cam in a.cameras:
            np.testing.assert_array_equal(b.cameras[cam].rgb, a.cameras[cam].rgb)
            np.testing.assert_array_equal(b.cameras[cam].extrinsics, a.cameras[cam].extrinsics)
        pa, _ = a.point_cloud()
        pb, _ = b.point_cloud()
        assert np.array_equal(np.isnan(pa), np.isnan(pb))
        ok = ~np.isnan(pa[:, 0])
        assert ok.sum() > 100
        assert np.abs(pa[ok] - pb[ok]).max() <= 1e-3


def test_loaded_points_lie_on_the_known_scene(tmp_path):
    """Independent check of the whole chain: every stored pixel lands on the table (z=0) or the box top."""
    ep = load_episode(save_episode(record(task="reach_fake"), tmp_path / "ep"))
    pts, colors = ep.frame(0).point_cloud()
    pts = pts[~np.isnan(pts[:, 0])]
    z = pts[:, 2]
    on_known = (np.abs(z) <= 2e-3) | (np.abs(z - BOX_HEIGHT) <= 2e-3)
    assert on_known.all()
    # the box top is seen by several cameras and their points coincide in extent (box is 10 cm wide)
    top = pts[np.abs(z - BOX_HEIGHT) <= 2e-3]
    assert 0.07 < np.ptp(top[:, 0]) <= 0.1 + 2e-3


def test_frames_without_images_have_no_cameras_and_keep_low_dim(tmp_path):
    ep = load_episode(save_episode(record(), tmp_path / "ep"))
    assert not ep.has_images(3) and ep.has_images(8)
    obs = ep.frame(3)
    assert obs.cameras == {}
    np.testing.assert_array_equal(obs.gripper_pose, ep.gripper_pose[3])
    assert obs.task == "pick_fake" and obs.episode == 7 and obs.instructions == ep.instructions
    with pytest.raises(ValueError, match="cameras"):
        obs.point_cloud(["front"])


def test_keyframes_of_the_stream_match_the_stored_ones(tmp_path):
    ep = load_episode(save_episode(record(), tmp_path / "ep"))
    assert discover_keyframes(ep.gripper_open, ep.joint_velocities) == ep.keyframes == ep.rediscover_keyframes()
    # the fake expert's keyposes are reached exactly at the keyframes
    reached = ep.gripper_pose[ep.keyframes, :3]
    np.testing.assert_allclose(reached, np.stack([k.position for k in ep.keyposes]), atol=1e-12)


def test_save_refuses_to_overwrite_and_listing_skips_incomplete(tmp_path):
    ep = record()
    save_episode(ep, episode_dir(tmp_path, "pick_fake", 0))
    with pytest.raises(ValueError, match="path"):
        save_episode(ep, episode_dir(tmp_path, "pick_fake", 0))
    save_episode(ep, episode_dir(tmp_path, "pick_fake", 0), overwrite=True)
    broken = episode_dir(tmp_path, "pick_fake", 1)
    broken.mkdir()  # e.g. a crash that left a half-copied folder behind
    (tmp_path / "pick_fake" / ".tmp-episode_00002-123").mkdir()
    assert not is_complete(broken)
    assert list_episodes(tmp_path) == [episode_dir(tmp_path, "pick_fake", 0)]
    assert list_episodes(tmp_path, tasks=["other"]) == []
    with pytest.raises(ValueError, match="complete"):
        load_episode(broken)


def test_unknown_version_is_refused(tmp_path):
    path = save_episode(record(), tmp_path / "ep")
    meta = json.loads((path / "episode.json").read_text())
    meta["version"] = 99
    (path / "episode.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="version"):
        load_episode(path)


def test_bad_episode_fields_name_the_argument():
    ep = record()
    kwargs = dict(
        task="t",
        variation=0,
        seed=0,
        index=0,
        instructions=["x"],
        gripper_pose=ep.gripper_pose,
        gripper_open=ep.gripper_open,
        joint_positions=ep.joint_positions,
        joint_velocities=ep.joint_velocities,
        image_frames=[],
        camera_names=[],
        keyframes=[],
        keyposes=[],
    )
    Episode(**kwargs)
    for key, bad in [
        ("gripper_pose", ep.gripper_pose[:, :6]),
        ("joint_velocities", ep.joint_velocities[:-1]),
        ("image_frames", [5, 3]),
        ("keyframes", [len(ep) + 1]),
        ("instructions", []),
    ]:
        with pytest.raises(ValueError, match=key):
            Episode(**{**kwargs, key: bad})


def test_training_targets_follow_the_keyframes():
    ep = record()  # keyframes [8, 17, 25], images [0, 8, 10, 17, 20, 25]
    assert ep.aligned
    assert ep.sample_ticks(10) == [0, 8, 10, 17, 20]
    assert [ep.next_keyframe(t) for t in (0, 8, 9, 17, 24, 25)] == [8, 17, 17, 25, 25, None]
    assert ep.target_keypose(10) is ep.keyposes[1] and ep.target_keypose(25) is None
    ep.keyposes = ep.keyposes[:2]
    with pytest.raises(ValueError, match="keyposes"):
        ep.target_keypose(0)


def test_low_dim_only_episode_round_trips(tmp_path):
    ep = record()
    bare = Episode(
        task="t", variation=0, seed=1, index=2, instructions=["x"], gripper_pose=ep.gripper_pose,
        gripper_open=ep.gripper_open, joint_positions=ep.joint_positions, joint_velocities=ep.joint_velocities,
        image_frames=[], camera_names=[], keyframes=ep.keyframes, keyposes=ep.keyposes,
        extra_lowdim={"keypose_index": np.arange(len(ep)) // 9},
    )
    back = load_episode(save_episode(bare, tmp_path / "bare"))
    assert back.camera_names == [] and back.image_frames == [] and back.frame(8).cameras == {}
    np.testing.assert_array_equal(back.extra_lowdim["keypose_index"], np.arange(len(ep)) // 9)
    assert back.keyframes == [8, 17, 25]
