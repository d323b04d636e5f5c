"""Generation on the real MuJoCo EmbeddedEnv: the PerAct heuristic recovers the scripted expert's keyposes, and a
real episode survives our format and the RLBench round trip."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")
embedded = pytest.importorskip("benchmarks.embedded")

from benchmarks.dataset import load_episode, save_episode  # noqa: E402
from benchmarks.generate import record_episode  # noqa: E402
from benchmarks.rlbench.demo_io import export_rlbench_episode, import_rlbench_episode  # noqa: E402

TASKS = sorted(embedded.TASKS)


@pytest.fixture(scope="module")
def env():
    e = embedded.EmbeddedEnv(embedded.EmbeddedConfig(image_size=64))
    yield e
    e.close()


def check_keyframes_recover_expert(env, task: str, seed: int) -> None:
    ep, result = record_episode(env, task, seed, image_every=10)
    assert result.success, f"{task} seed {seed}: {result.error}"
    lo, hi = np.asarray(env.config.workspace_lo), np.asarray(env.config.workspace_hi)
    assert len(ep.keyframes) == len(ep.keyposes), f"{task} seed {seed}: {ep.keyframes} vs {len(ep.keyposes)} keyposes"
    reached = ep.gripper_pose[ep.keyframes, :3]
    commanded = np.clip(np.stack([k.position for k in ep.keyposes]), lo, hi)
    err = np.linalg.norm(reached - commanded, axis=1)
    assert err.max() < 0.01, f"{task} seed {seed}: keyframe positions off the expert's by {err}"
    assert ep.gripper_open[ep.keyframes].tolist() == [float(k.gripper_open) for k in ep.keyposes]
    assert all(ep.has_images(k) for k in ep.keyframes), f"{task} seed {seed}: a keyframe has no images"


@pytest.mark.parametrize("task", TASKS)
def test_keyframes_recover_the_expert_keyposes(env, task):
    check_keyframes_recover_expert(env, task, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_keyframes_recover_the_expert_keyposes_many_seeds(env, task):
    for seed in range(1, 11):
        check_keyframes_recover_expert(env, task, seed)


def check_round_trip(env, tmp_path, task: str) -> None:
    ep, result = record_episode(env, task, 1, image_every=10)
    assert result.success
    ours = load_episode(save_episode(ep, tmp_path / "ours"))
    back = import_rlbench_episode(export_rlbench_episode(ours, tmp_path / "rlb" / "episode0"))
    assert back.keyframes == ours.keyframes == ep.keyframes
    assert back.image_frames == ours.image_frames
    for tick in ours.keyframes:
        p0, _ = ep.frame(tick).point_cloud(ours.camera_names)  # the simulator's own float depth
        p1, _ = ours.frame(tick).point_cloud(ours.camera_names)
        p2, _ = back.frame(tick).point_cloud(ours.camera_names)
        ok = ~np.isnan(p1[:, 0])
        assert ok.sum() > 1000
        assert np.array_equal(np.isnan(p1), np.isnan(p2))
        # the scene within the reference bounds (not the far background) is within the 1 mm budget
        near = ok & np.all((p1 > [-0.3, -0.5, 0.6]) & (p1 < [0.7, 0.5, 1.6]), axis=1)
        assert near.sum() > 1000
        assert np.abs(p1[near] - p2[near]).max() <= 1e-3
        assert np.abs(p0[near] - p1[near]).max() <= 1e-3


def test_real_episode_round_trips_through_our_format_and_rlbench(env, tmp_path):
    check_round_trip(env, tmp_path, TASKS[0])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS[1:])
def test_real_episode_round_trips_every_task(env, tmp_path, task):
    check_round_trip(env, tmp_path, task)


@pytest.mark.slow
def test_spawned_workers_reproduce_the_in_process_demos(tmp_path):
    """Same (task, variation, seed) in another process gives the byte-identical low-dim stream and images."""
    from bridgevla.scripts.generate import main

    common = ["--tasks", TASKS[0], "--episodes", "2", "env_config.image_size=32"]
    assert main([*common, "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    for i in range(2):
        a, b = (tmp_path / d / TASKS[0] / f"episode_{i:05d}" for d in ("a", "b"))
        assert (a / "lowdim.npz").read_bytes() == (b / "lowdim.npz").read_bytes()
        assert (a / "front_rgb" / "0.png").read_bytes() == (b / "front_rgb" / "0.png").read_bytes()
