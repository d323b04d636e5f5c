"""RLBench import/export: round trip, depth and camera conventions, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks.dataset import Episode, load_episode, save_episode
from benchmarks.protocol import CameraFrame
from benchmarks.rlbench.demo_io import (
    REPEATED_FLAG,
    camera_from_rlbench,
    camera_to_rlbench,
    decode_depth_rgb24,
    encode_depth_rgb24,
    export_dataset,
    export_rlbench_episode,
    import_dataset,
    import_rlbench_episode,
    rlbench_episode_dir,
)
from benchmarks.rlbench.pickles import ForbiddenPickleError, load_rlbench_pickle

from .fake_demo_env import FakeDemoEnv


def record(task: str = "pick_fake", seed: int = 5, variation: int = 2, image_every: int = 10) -> Episode:
    env = FakeDemoEnv(image_size=24)
    env.reset(task, variation, seed)
    plan = env.expert_keyposes()
    env.start_recording(image_every=image_every)
    for kp in plan:
        env.step(kp)
    return Episode.from_observations(
        env.stop_recording(), task=task, variation=variation, seed=seed, index=0, keyposes=plan, success=True
    )


def test_depth_rgb24_hand_values():
    d = np.array([[0.5, np.nan, 0.0, 1.0]])
    enc = encode_depth_rgb24(d, near=0.0, far=1.0)
    # 0.5 * (2^24 - 1) = 8388607.5 -> 8388608 = 0x800000; no return -> saturated; a real return at far stays below
    assert enc[0].tolist() == [[128, 0, 0], [255, 255, 255], [255, 255, 255], [255, 255, 254]]
    dec = decode_depth_rgb24(enc, near=0.0, far=1.0)
    assert dec[0, 1] == 0 and dec[0, 2] == 0
    np.testing.assert_allclose(dec[0, [0, 3]], [0.5, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="far"):
        encode_depth_rgb24(d, near=1.0, far=1.0)


def rlbench_formula_cloud(depth, k, e):
    """REFERENCE §2, one pixel at a time: x_c = (u - cx) d / fx, y_c = (v - cy) d / fy, z_c = d; X = R x_c + t."""
    out = []
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            d = depth[v, u]
            xc = np.array([(u - k[0, 2]) * d / k[0, 0], (v - k[1, 2]) * d / k[1, 1], d])
            out.append(e[:3, :3] @ xc + e[:3, 3])
    return np.array(out)


def test_negative_focal_conversion_gives_the_same_world_points():
    rng = np.random.default_rng(0)
    k_rl = np.array([[-30.0, 0, 7.5], [0, -28.0, 6.0], [0, 0, 1]])
    angle = 0.7
    e_rl = np.eye(4)
    e_rl[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    e_rl[:3, 3] = [0.3, -0.2, 1.4]
    depth = rng.uniform(0.5, 2.0, size=(6, 5)).astype(np.float32)
    expected = rlbench_formula_cloud(depth.astype(np.float64), k_rl, e_rl)
    k, e = camera_from_rlbench(k_rl, e_rl)
    assert k[0, 0] > 0 and k[1, 1] > 0
    pts, _ = CameraFrame(np.zeros((6, 5, 3), np.uint8), depth, k, e).point_cloud()
    np.testing.assert_allclose(pts, expected, atol=1e-5)
    k2, e2 = camera_to_rlbench(k, e)
    np.testing.assert_allclose(k2, k_rl)
    np.testing.assert_allclose(e2, e_rl)


def test_round_trip_through_rlbench_layout(tmp_path):
    ours = load_episode(save_episode(record(), tmp_path / "ours" / "pick_fake" / "episode_00000"))
    folder = export_rlbench_episode(ours, rlbench_episode_dir(tmp_path / "rlb", "pick_fake", 0))
    # one image per tick, as RLBench's loaders expect
    assert len(list((folder / "front_rgb").iterdir())) == len(ours)
    back = import_rlbench_episode(folder)
    assert back.task == "pick_fake" and back.variation == 2 and back.instructions == ours.instructions
    assert back.camera_names == ["overhead", "wrist", "front"]
    assert back.image_frames == ours.image_frames  # repeated fill-in images are not real frames
    assert back.keyframes == ours.keyframes == [8, 17, 25]
    assert [k.ignore_collisions for k in back.keyposes] == [k.ignore_collisions for k in ours.keyposes]
    assert [k.gripper_open for k in back.keyposes] == [k.gripper_open for k in ours.keyposes]
    np.testing.assert_allclose(np.stack([k.position for k in back.keyposes]),
                               np.stack([k.position for k in ours.keyposes]), atol=1e-9)
    for name in ("gripper_pose", "gripper_open", "joint_positions", "joint_velocities"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ours, name))
    for tick in ours.image_frames:
        pa, ca = ours.frame(tick).point_cloud(["front", "overhead", "wrist"])
        pb, cb = back.frame(tick).point_cloud(["front", "overhead", "wrist"])
        assert np.array_equal(np.isnan(pa), np.isnan(pb))
        ok = ~np.isnan(pa[:, 0])
        assert ok.sum() > 100
        assert np.abs(pa[ok] - pb[ok]).max() <= 1e-3
        np.testing.assert_array_equal(ca, cb)
    # and back into our own format, unchanged
    again = load_episode(save_episode(back, tmp_path / "again"))
    assert again.keyframes == ours.keyframes and again.image_frames == ours.image_frames
    demo = load_rlbench_pickle(folder / "low_dim_obs.pkl")
    flags = [o.misc[REPEATED_FLAG] for o in demo.observations]
    assert [i for i, f in enumerate(flags) if not f] == ours.image_frames


def test_dataset_level_export_and_import(tmp_path):
    for i, task in enumerate(["pick_fake", "reach_fake"]):
        ep = record(task=task, seed=i)
        save_episode(ep, tmp_path / "ours" / task / "episode_00003")
    exported = export_dataset(tmp_path / "ours", tmp_path / "rlb")
    assert exported == [rlbench_episode_dir(tmp_path / "rlb", t, 0) for t in ("pick_fake", "reach_fake")]
    assert export_dataset(tmp_path / "ours", tmp_path / "rlb") == exported  # resumes: nothing rewritten
    imported = import_dataset(tmp_path / "rlb", tmp_path / "back")
    assert [p.relative_to(tmp_path / "back").as_posix() for p in imported] == [
        "pick_fake/episode_00000",
        "reach_fake/episode_00000",
    ]
    assert load_episode(imported[1]).keyframes == load_episode(tmp_path / "ours/reach_fake/episode_00003").keyframes


FAKE_RLBENCH = {
    "rlbench/__init__.py": "",
    "rlbench/backend/__init__.py": "",
    "rlbench/demo.py": textwrap.dedent(
        """
        class Demo(object):
            def __init__(self, observations, random_seed=None, num_reset_attempts=None):
                self._observations = observations
                self.random_seed = random_seed
                self.num_reset_attempts = num_reset_attempts
        """
    ),
    "rlbench/backend/observation.py": textwrap.dedent(
        """
        class Observation(object):
            def __init__(self, **kw):
                self.__dict__.update(kw)
        """
    ),
}


def run_with_fake_rlbench(tmp_path, code: str) -> str:
    """Run ``code`` in a fresh interpreter where ``rlbench`` is a minimal package with RLBench's class names."""
    for rel, text in FAKE_RLBENCH.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "pkg")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_pickles_written_by_rlbench_classes(tmp_path, protocol):
    out = tmp_path / "low_dim_obs.pkl"
    run_with_fake_rlbench(
        tmp_path,
        textwrap.dedent(
            f"""
            import pickle, numpy as np
            from rlbench.demo import Demo
            from rlbench.backend.observation import Observation
            obs = [Observation(gripper_pose=np.arange(7.0) + i, gripper_open=1.0, joint_positions=np.zeros(7),
                               joint_velocities=np.full(7, 0.5), ignore_collisions=np.array(1.0),
                               misc={{"front_camera_near": np.float64(0.01)}}, front_rgb=None) for i in range(3)]
            np.random.seed(3)
            with open({str(out)!r}, "wb") as f:
                pickle.dump(Demo(obs, random_seed=np.random.get_state()), f, protocol={protocol})
            """
        ),
    )
    demo = load_rlbench_pickle(out)
    assert len(demo.observations) == 3
    np.testing.assert_array_equal(demo.observations[2].gripper_pose, np.arange(7.0) + 2)
    assert demo.observations[0].misc["front_camera_near"] == 0.01
    assert demo.random_seed[0] == "MT19937" and demo.random_seed[1].shape == (624,)


def test_exported_pickle_loads_with_rlbench_classes(tmp_path):
    ours = record()
    folder = export_rlbench_episode(ours, tmp_path / "episode0")
    stdout = run_with_fake_rlbench(
        tmp_path,
        textwrap.dedent(
            f"""
            import pickle
            demo = pickle.load(open({str(folder / "low_dim_obs.pkl")!r}, "rb"))
            o = demo._observations[8]
            print(type(demo).__module__, type(o).__module__, type(o).__name__, len(demo._observations),
                  o.gripper_pose.shape, o.misc["front_camera_intrinsics"][0, 0] < 0, o.front_rgb)
            """
        ),
    )
    assert stdout.split() == ["rlbench.demo", "rlbench.backend.observation", "Observation", str(len(ours)),
                              "(7,)", "True", "None"]


class _Evil:
    def __init__(self, target: str, command: str) -> None:
        self.target, self.command = target, command

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize(
    "payload",
    [
        "os_system",
        "eval",
        "other_rlbench_class",
        "numpy_load",
    ],
)
def test_malicious_pickles_are_refused_before_anything_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "low_dim_obs.pkl"
    if payload == "os_system":
        data = pickle.dumps(_Evil(str(marker), ""), protocol=3)
    elif payload == "eval":
        data = b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR."
    elif payload == "other_rlbench_class":
        data = b"crlbench.backend.task\nTask\n)\x81."
    else:
        data = b"cnumpy\nload\n(V" + str(path).encode() + b"\ntR."
    path.write_bytes(data)
    with pytest.raises(ForbiddenPickleError, match="refusing") as info:
        load_rlbench_pickle(path)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()
    if payload == "os_system":
        assert "system" in str(info.value)


def test_import_refuses_a_folder_with_a_malicious_pickle(tmp_path):
    folder = export_rlbench_episode(record(), tmp_path / "t" / "all_variations" / "episodes" / "episode0")
    (folder / "variation_descriptions.pkl").write_bytes(pickle.dumps(_Evil(str(tmp_path / "x"), ""), protocol=2))
    with pytest.raises(ForbiddenPickleError):
        import_rlbench_episode(folder)
    assert not (tmp_path / "x").exists()


def test_import_can_keep_only_the_images_training_needs(tmp_path):
    ours = record(image_every=1)  # 26 ticks, all with images, keyframes [8, 17, 25]
    folder = export_rlbench_episode(ours, tmp_path / "t" / "variation2" / "episodes" / "episode4")
    full = import_rlbench_episode(folder)
    assert full.image_frames == list(range(26))
    (folder / "variation_number.pkl").unlink()  # the variation then comes from the folder name
    thin = import_rlbench_episode(folder, image_every=5)
    assert (thin.task, thin.variation, thin.index) == ("t", 2, 4)
    assert thin.image_frames == [0, 5, 8, 10, 15, 17, 20, 25]
    with pytest.raises(ValueError, match="image_every"):
        import_rlbench_episode(folder, image_every=0)


def test_corrupt_pickle_is_a_value_error_naming_the_path(tmp_path):
    path = tmp_path / "variation_number.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=3)[:-4])
    with pytest.raises(ValueError, match="variation_number.pkl"):
        load_rlbench_pickle(path)
    with pytest.raises(ValueError, match="path"):
        load_rlbench_pickle(tmp_path / "missing.pkl")
