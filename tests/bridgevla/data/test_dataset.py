"""Keyframe dataset: sample layout, targets, task-uniform sampling, determinism across workers, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.dataset import Episode, episode_dir, save_episode
from benchmarks.protocol import CameraFrame, Keypose
from bridgevla.configuration import ConfigError, from_dict
from bridgevla.data.dataset import DataConfig, KeyframeBatches, KeyframeDataset, sample_refs
from bridgevla.data.preprocess import observation_cloud

BOUNDS = [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6]


def _camera(tick: int, size: int = 16) -> CameraFrame:
    """A camera 1 m above a plane at z = 0.8, looking down; colour encodes the tick so frames are distinguishable."""
    rgb = np.full((size, size, 3), tick * 10 % 256, dtype=np.uint8)
    rgb[..., 1] = np.arange(size, dtype=np.uint8)[None] * 8
    depth = np.full((size, size), 1.0, dtype=np.float32)
    depth[0, 0] = 0.0  # one pixel without a return
    k = np.array([[20.0, 0, size / 2], [0, 20.0, size / 2], [0, 0, 1]])
    ext = np.eye(4)
    ext[:3, :3] = np.diag([1.0, -1.0, -1.0])  # optical axis pointing down (-z)
    ext[:3, 3] = [0.2, 0.0, 1.8]
    return CameraFrame(rgb, depth, k, ext)


def make_episode(task: str, index: int, keyframes: list[int], image_frames: list[int], length: int,
                 instructions: list[str] | None = None) -> Episode:
    t = length
    keyposes = [Keypose([0.1 * j, 0.05 * index, 1.0 + 0.01 * j], [0, 0, np.sin(0.1 * j), np.cos(0.1 * j)],
                        j % 2 == 0, j == 1) for j in range(len(keyframes))]
    return Episode(task=task, variation=0, seed=index, index=index, instructions=instructions or [f"do {task}"],
                   gripper_pose=np.tile([0, 0, 1.2, 0, 0, 0, 1.0], (t, 1)), gripper_open=np.ones(t),
                   joint_positions=np.zeros((t, 7)), joint_velocities=np.zeros((t, 7)), image_frames=image_frames,
                   camera_names=["front"], keyframes=keyframes, keyposes=keyposes,
                   loader=lambda tick: {"front": _camera(tick)})


def write_dataset(root, spec: dict[str, int]) -> None:
    """``spec``: task -> number of episodes; episodes have keyframes 5, 12, 20 and images every 5 ticks + 12."""
    for task, n in spec.items():
        for i in range(n):
            ep = make_episode(task, i, [5, 12, 20], [0, 5, 10, 12, 15, 20], 21, [f"{task} a", f"{task} b"])
            save_episode(ep, episode_dir(root, task, i))


def test_start_frames_and_targets_match_a_loop_reference():
    ep = make_episode("t", 0, [5, 12, 20], [0, 5, 10, 12, 15, 20], 21)
    for every in (0, 3, 5, 10):
        got = [(r.start, r.target) for r in sample_refs(ep, 0, every)]
        want = []
        for s in range(21):  # the obviously correct version
            is_start = s == 0 or s in (5, 12) or (every > 0 and s % every == 0 and s < 20)
            if is_start and ep.has_images(s):
                nxt = [j for j, k in enumerate(ep.keyframes) if k > s]
                if nxt:
                    want.append((s, nxt[0]))
        assert got == want, every
    assert [(r.start, r.target) for r in sample_refs(ep, 0, 10)] == [(0, 0), (5, 1), (10, 1), (12, 2)]


def test_samples_carry_the_cloud_of_their_start_frame_and_the_next_keypose(tmp_path):
    write_dataset(tmp_path, {"reach": 2})
    ds = KeyframeDataset(DataConfig(root=str(tmp_path), augmentation_every=10), BOUNDS, seed=0)
    assert len(ds) == 2 * 4
    ref = ds.by_task[0][2]  # episode 0, start 10 -> keyframe 12 (index 1)
    s = ds.sample(ref, np.random.default_rng(0))
    pts, cols = observation_cloud(ds.episodes[0].frame(10), BOUNDS)
    assert np.array_equal(s["points"], pts) and np.array_equal(s["colors"], cols)
    assert pts.shape == (16 * 16 - 1, 3) and np.allclose(pts[:, 2], 0.8, atol=1e-3)  # depth 1 m below z = 1.8
    assert np.allclose(s["target_position"], [0.1, 0.0, 1.01])
    assert s["target_gripper_open"] == 0.0 and s["target_ignore_collisions"] == 1.0
    assert s["instruction"] in ("reach a", "reach b")


def test_task_uniform_sampling_and_determinism(tmp_path):
    write_dataset(tmp_path / "d", {"big": 3, "small": 1})
    ds = KeyframeDataset(DataConfig(root=str(tmp_path / "d")), BOUNDS, seed=3, max_points=50)
    assert ds.samples_per_task() == {"big": 12, "small": 4}
    tasks = [ds[(k, j)]["task"] for k in range(250) for j in range(4)]
    frac = tasks.count("small") / len(tasks)
    assert abs(frac - 0.5) < 0.05  # 1000 fair coins: 5 sigma is 0.08; sample-uniform would give 0.25
    a, b = ds[(7, 1)], ds[(7, 1)]
    assert a["points"].shape == (50, 3)
    assert all(np.array_equal(a[k], b[k]) for k in ("points", "colors", "target_position"))
    other = KeyframeDataset(DataConfig(root=str(tmp_path / "d")), BOUNDS, seed=4, max_points=50)
    assert any(not np.array_equal(ds[(k, 0)]["points"], other[(k, 0)]["points"]) for k in range(5))


def test_loader_batches_are_the_same_with_workers_and_after_a_restart(tmp_path):
    write_dataset(tmp_path, {"a": 1, "b": 1})
    ds = KeyframeDataset(DataConfig(root=str(tmp_path)), BOUNDS, seed=0, max_points=40)
    it0 = KeyframeBatches(ds, batch_size=3, num_workers=0).iterate(0)
    serial = [next(it0) for _ in range(4)]
    it2 = KeyframeBatches(ds, batch_size=3, num_workers=2).iterate(2)
    parallel = [next(it2) for _ in range(2)]
    for x, y in zip(serial[2:], parallel):
        assert torch.equal(x.points, y.points) and torch.equal(x.target_position, y.target_position)
        assert x.instructions == y.instructions
    assert serial[0].points.shape == (3, 40, 3) and serial[0].mask.all()
    rank1 = next(KeyframeBatches(ds, batch_size=3, rank=1).iterate(0))
    assert not torch.equal(rank1.points, serial[0].points)  # ranks draw different slots


def test_missing_dataset_and_tasks_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="data.root.*generate"):
        KeyframeDataset(DataConfig(root=str(tmp_path / "nope")), BOUNDS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="data.root.*no task folders"):
        KeyframeDataset(DataConfig(root=str(tmp_path / "empty")), BOUNDS)
    write_dataset(tmp_path / "d", {"a": 1})
    with pytest.raises(ValueError, match="data.tasks.*'zzz'"):
        KeyframeDataset(DataConfig(root=str(tmp_path / "d"), tasks=["a", "zzz"]), BOUNDS)


@pytest.mark.parametrize(("data", "key"), [({"augmentation_every": -1}, "data.augmentation_every"),
                                           ({"root": ""}, "data.root"),
                                           ({"instruction": "all"}, "instruction")])
def test_bad_data_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(DataConfig, data)


def test_episodes_without_one_keypose_per_keyframe_use_the_recorded_pose_and_stream_flag():
    from bridgevla.data.dataset import _target_keypose

    ep = make_episode("t", 0, [5, 12, 20], [0, 5, 10, 12, 15, 20], 21)
    ep.keyposes = ep.keyposes[:1]
    ep.gripper_pose[12] = [0.3, 0.2, 1.1, 0, 0, 1, 0]
    ep.gripper_open[12] = 0.0
    ep.extra_lowdim["rlbench.ignore_collisions"] = (np.arange(21) == 12).astype(float)[:, None]
    pos, quat, grip, ignore = _target_keypose(ep, 1)
    assert np.allclose(pos, [0.3, 0.2, 1.1]) and np.allclose(quat, [0, 0, 1, 0]) and grip == 0.0 and ignore == 1.0
    assert _target_keypose(ep, 2)[3] == 0.0


def test_clouds_come_from_the_policys_cameras(tmp_path):
    """The camera list is the policy's (BridgeVLAConfig.cameras), passed in: naming the episode's only camera gives
    the same clouds as 'all cameras'; a camera the episode lacks is an error that names it."""
    write_dataset(tmp_path, {"reach": 1})
    ref = KeyframeDataset(DataConfig(root=str(tmp_path)), BOUNDS).by_task[0][0]
    every = KeyframeDataset(DataConfig(root=str(tmp_path)), BOUNDS)
    front = KeyframeDataset(DataConfig(root=str(tmp_path)), BOUNDS, cameras=["front"])
    assert all(np.array_equal(a, b) for a, b in zip(every.cloud(ref), front.cloud(ref)))
    with pytest.raises(ValueError, match="wrist"):
        KeyframeDataset(DataConfig(root=str(tmp_path)), BOUNDS, cameras=["wrist"]).cloud(ref)


def test_memory_markers_mark_the_keyposes_executed_before_the_target(tmp_path):
    from bridgevla.data.preprocess import MemoryMarkers

    write_dataset(tmp_path, {"reach": 1})
    memory = MemoryMarkers(keyposes=1, radius=0.02, points=8)
    ds = KeyframeDataset(DataConfig(root=str(tmp_path), augmentation_every=10), BOUNDS, seed=0, memory=memory)
    plain = KeyframeDataset(DataConfig(root=str(tmp_path), augmentation_every=10), BOUNDS, seed=0)
    # refs: (0 -> kf 0), (5 -> kf 1), (10 -> kf 1), (12 -> kf 2); keyposes j are at (0.1 j, 0, 1 + 0.01 j)
    for ref, before in zip(ds.by_task[0], (0, 1, 1, 2)):
        s, p = ds.sample(ref, np.random.default_rng(0)), plain.sample(ref, np.random.default_rng(0))
        n = len(p["points"])
        assert np.array_equal(s["points"][:n], p["points"])  # the scene is untouched, markers come after it
        extra = s["points"][n:]
        assert len(extra) == 8 * min(before, 1)
        if before:  # only the newest keypose (keyposes=1): the one right before the target
            centre = np.array([0.1 * (before - 1), 0.0, 1.0 + 0.01 * (before - 1)])
            assert np.allclose(np.linalg.norm(extra - centre, axis=1), 0.02, atol=1e-5)
            open_ = (before - 1) % 2 == 0  # make_episode: gripper open on even keyposes
            assert np.allclose(s["colors"][n:], [0.0, 1.0, 1.0] if open_ else [1.0, 0.0, 1.0])
