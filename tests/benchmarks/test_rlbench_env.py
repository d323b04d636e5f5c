"""The RLBench-18 adapter end to end on the fake CoppeliaSim stack (tests/benchmarks/fake_sim, mirroring
buttomnutstoast/RLBench@587a6a0 and stepjam/PyRep@231a1ac)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.protocol import Environment, Keypose, SimulatorError, episode_seed
from benchmarks.rlbench.env import PERACT_TASKS, RLBenchConfig, RLBenchEnv, rlbench_action
from benchmarks.rlbench.harness import HarnessNotInstalled
from benchmarks.rlbench.pickles import RLBenchDemo, RLBenchObservation, dump_rlbench_pickle

TABLE_Z = 0.752  # the fake world's table top
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # xyzw: the gripper pointing down (180° about x)


def demo_recording(seed):
    """What an expert recording of the fake task looks like: from the start pose, moving, to closed at the goal
    (PerAct's keyframes of it: the last tick alone)."""
    xy = first_cube_xy(seed)
    poses = [[0.28, 0.0, 1.47], [0.2, 0.0, 1.2], [xy[0], xy[1], TABLE_Z + 0.08]]
    return [RLBenchObservation(gripper_pose=np.r_[p, DOWN], gripper_open=g, joint_positions=np.zeros(7),
                               joint_velocities=np.full(7, v), ignore_collisions=np.array(1.0), misc={})
            for p, g, v in zip(poses, (1.0, 1.0, 0.0), (0.5, 0.5, 0.0))]


def write_test_set(episodes_dir, seeds, variations=None):
    """Stored test demos as RLBench writes them: a pickled Demo (of low-dim observations) whose random_seed
    rebuilds the scene."""
    for i, s in enumerate(seeds):
        folder = episodes_dir / f"episode{i}"
        folder.mkdir(parents=True)
        dump_rlbench_pickle(RLBenchDemo(demo_recording(s), random_seed=np.random.RandomState(s).get_state()),
                            folder / "low_dim_obs.pkl")
        if variations is not None:
            dump_rlbench_pickle(int(variations[i]), folder / "variation_number.pkl")


def first_cube_xy(seed):
    """Where the fake task puts its cube after RLBench restores this RNG state: its first numpy draw."""
    return np.random.RandomState(seed).uniform([0.1, -0.25], [0.45, 0.25])


def make_env(tmp_path, **overrides):
    cfg = RLBenchConfig(**{"tasks": ["close_jar", "open_drawer"], "image_size": 16, **overrides})
    return RLBenchEnv(cfg)


def goal_of(sim):
    xy = sim.world().cubes[0]["xy"]
    return np.array([xy[0], xy[1], TABLE_Z + 0.08])


def test_missing_pieces_are_named(fake_harness, monkeypatch, tmp_path):
    env = make_env(tmp_path)
    assert isinstance(env, Environment) and env.tasks() == ["close_jar", "open_drawer"]
    assert env.variations("close_jar") == PERACT_TASKS["close_jar"] == 20
    monkeypatch.delenv("COPPELIASIM_ROOT", raising=False)
    with pytest.raises(HarnessNotInstalled, match="CoppeliaSim 4.1.0.*COPPELIASIM_ROOT is not set"):
        env.reset("close_jar", 0, 0)
    monkeypatch.setenv("COPPELIASIM_ROOT", str(tmp_path))
    with pytest.raises(HarnessNotInstalled, match="PyRep"):  # the fakes are not on the path yet
        env.reset("close_jar", 0, 0)
    fake_harness("gembench")  # PyRep is there, but rlbench is GemBench's fork
    with pytest.raises(HarnessNotInstalled, match="buttomnutstoast/RLBench@587a6a0"):
        make_env(tmp_path).reset("close_jar", 0, 0)
    with pytest.raises(ValueError, match="not one of rlbench's tasks"):
        env.reset("stack_blocks", 0, 0)
    with pytest.raises(ValueError, match="RLBench-18"):
        RLBenchConfig(tasks=["pick_fake"])


def test_observation_hand_computed_geometry(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    obs = env.reset("close_jar", 0, 7)
    assert sorted(obs.cameras) == ["front", "left_shoulder", "right_shoulder", "wrist"]
    front = obs.cameras["front"]
    # PyRep: f = -16 / (2 tan 45°) = -8, principal point 8; ours has the focal lengths positive
    np.testing.assert_allclose(front.intrinsics, [[8, 0, 8], [0, 8, 8], [0, 0, 1]])
    assert front.depth.dtype == np.float32 and front.rgb.shape == (16, 16, 3)
    # front camera at (0.2, 0.1, 2.0) looking down (R = diag(1, -1, -1)): the table (z = 0.752) is 1.248 m away
    assert front.depth[5, 11] == pytest.approx(1.248, abs=1e-6)
    # pixel (u=11, v=5): x_c = (11-8)·1.248/(-8) = -0.468, y_c = (5-8)·1.248/(-8) = 0.468, z_c = 1.248
    # world = R x_c + t = (-0.468 + 0.2, -0.468 + 0.1, -1.248 + 2.0)
    np.testing.assert_allclose(front.point_cloud()[0].reshape(16, 16, 3)[5, 11], [-0.268, -0.368, 0.752], atol=1e-5)
    # every camera's points lie on the table top or the cube top (4 cameras, moving wrist included)
    points, colours = obs.point_cloud()
    hit = np.isfinite(points).all(1) & (np.concatenate([f.depth.reshape(-1) for f in obs.cameras.values()]) < 4.4)
    z = points[hit, 2]
    assert hit.sum() > 300
    assert np.all(np.isclose(z, TABLE_Z, atol=1e-4) | np.isclose(z, TABLE_Z + 0.06, atol=1e-4))
    on_cube = np.isclose(points[:, 2], TABLE_Z + 0.06, atol=1e-4) & hit
    assert on_cube.sum() > 0 and np.all(colours[on_cube] == [255, 0, 0])  # variation 0: the red cube
    assert np.all(np.abs(points[on_cube, :2] - sim.world().cubes[0]["xy"]) <= 0.03 + 1e-4)  # on its 6 cm top face
    assert obs.instructions[0] == "touch the red cube" and obs.task == "close_jar"
    np.testing.assert_allclose(obs.gripper_pose, [0.28, 0.0, 1.47, 0.0, 1.0, 0.0, 0.0])
    assert obs.gripper_open == 1.0 and obs.joint_positions.shape == (7,)


def test_stored_test_episodes_rebuild_their_scene(fake_harness, tmp_path):
    sim = fake_harness()
    write_test_set(tmp_path / "test" / "close_jar" / "all_variations" / "episodes", [11, 12, 13], [2, 4, 1])
    env = make_env(tmp_path, test_root=str(tmp_path / "test"))
    for run in (0, 3):
        obs = env.reset("close_jar", 0, episode_seed(run, 1))  # the runner's requested variation is ignored
        np.testing.assert_allclose(sim.world().cubes[0]["xy"], first_cube_xy(12))
        assert obs.variation == 4 and obs.instructions[0] == "touch the cyan cube"  # the demo's variation_number
        assert obs.episode == 1 and obs.misc["run"] == run and obs.misc["source"].endswith("episode1")
    with pytest.raises(ValueError, match="3 stored test episodes"):
        env.reset("close_jar", 0, episode_seed(0, 3))
    with pytest.raises(ValueError, match="0 stored test episodes"):
        env.reset("open_drawer", 0, 0)


def test_expert_keypose_succeeds_and_the_action_is_the_forks_nine_values(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    goal = goal_of(sim)
    obs, success, done, info = env.step(Keypose(goal, 2 * DOWN, gripper_open=False, ignore_collisions=True))
    assert success and done and "error" not in info
    np.testing.assert_allclose(info["action"], [*goal, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # unit quaternion, closed, ignore
    np.testing.assert_allclose(obs.gripper_pose[:3], goal, atol=1e-9)
    assert obs.gripper_open == 0.0
    assert sim.world().planner_calls == [(pytest.approx(goal), True)]


def test_collision_aware_planning_retries_ignoring_collisions(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    goal = goal_of(sim)  # 2 cm above the cube: collision-checked planning refuses it
    _, success, _, _ = env.step(Keypose(goal, DOWN, gripper_open=False, ignore_collisions=False))
    assert success
    assert [c[1] for c in sim.world().planner_calls] == [False, True]  # with collisions, then the retry without


def test_planner_ik_and_invalid_actions_fail_the_episode(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    high = np.array([0.3, 0.0, TABLE_Z + 0.95])  # inside the workspace box, but the arm cannot get there
    obs0 = env._last
    obs, success, done, info = env.step(Keypose(high, DOWN, True, False))
    assert (success, done) == (False, True) and info["error"].startswith("InvalidActionError: A path could not")
    assert obs is obs0  # the last observation stands
    assert [c[1] for c in sim.world().planner_calls] == [False, True]
    import pyrep.errors

    # an IKError escapes the planner as itself; a ConfigurationPathError the fork wraps as an InvalidActionError
    for error, reported in ((pyrep.errors.IKError("no IK solution"), "IKError: no IK solution"),
                            (pyrep.errors.ConfigurationPathError("no path"), "InvalidActionError: A path could not")):
        env.reset("close_jar", 0, 3)
        sim.PLANNER_EXCEPTION = error
        _, success, done, info = env.step(Keypose([0.3, 0.0, 1.2], DOWN, True, True))
        assert (success, done) == (False, True) and info["error"].startswith(reported)
    env.reset("close_jar", 0, 3)
    _, success, done, info = env.step(Keypose([0.3, 0.0, 1.2], [0, 0, 0, 0], True, True))
    assert (success, done) == (False, True) and "InvalidActionError" in info["error"]


def test_target_is_clipped_into_the_workspace(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    _, _, done, info = env.step(Keypose([1.5, -0.9, 1.2], DOWN, True, True))
    assert not done and "error" not in info
    np.testing.assert_allclose(sim.world().planner_calls[-1][0], [0.8 - 1e-7, -0.65 + 1e-7, 1.2])
    np.testing.assert_allclose(rlbench_action(Keypose([1.5, -0.9, 1.2], DOWN, True, False), None)[:3], [1.5, -0.9, 1.2])
    unclipped = make_env(tmp_path, clip_to_workspace=False)
    unclipped.reset("close_jar", 0, 3)
    _, success, done, info = unclipped.step(Keypose([1.5, -0.9, 1.2], DOWN, True, True))
    assert (success, done) == (False, True) and "outside of workspace" in info["error"]


def test_task_failure_condition_ends_the_episode(fake_harness, tmp_path):
    fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    _, success, done, info = env.step(Keypose([0.0, 0.3, TABLE_Z + 0.005], DOWN, True, True))
    assert (success, done) == (False, True) and info["error"] == "task failure condition"


def test_at_most_25_keyposes(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    for i in range(1, 26):
        _, success, done, info = env.step(Keypose([0.0, 0.3 if i % 2 else -0.3, 1.2], DOWN, True, True))
        assert not success and done == (i == 25)
    assert info["step_limit"] and "error" not in info and info["steps"] == 25  # out of keyposes is no error
    calls = len(sim.world().planner_calls)
    _, _, done, info = env.step(Keypose([0.0, 0.3, 1.2], DOWN, True, True))
    assert done and info["error"] == "step limit: 25 keyposes" and len(sim.world().planner_calls) == calls
    short = make_env(tmp_path, max_keyposes=2)
    short.reset("close_jar", 0, 3)
    assert [short.step(Keypose([0.0, 0.3, 1.2], DOWN, True, True)).done for _ in range(2)] == [False, True]


def test_a_simulator_crash_is_void_and_the_next_reset_relaunches(fake_harness, tmp_path):
    sim = fake_harness()
    write_test_set(tmp_path / "test" / "close_jar" / "all_variations" / "episodes", [5, 6])
    env = make_env(tmp_path, test_root=str(tmp_path / "test"))
    env.reset("close_jar", 0, episode_seed(0, 1))
    assert env.launches == 1
    sim.CRASH_AT_STEP = sim.world().steps + 2
    with pytest.raises(SimulatorError, match="simulator failed during step.*simStep"):
        env.step(Keypose([0.3, 0.0, 1.2], DOWN, True, True))
    assert sim.WORLD is None  # shut down
    with pytest.raises(ValueError, match="before reset"):
        env.step(Keypose([0.3, 0.0, 1.2], DOWN, True, True))
    env.reset("close_jar", 0, episode_seed(0, 1))  # the same episode, rebuilt in a fresh simulator
    assert env.launches == 2
    np.testing.assert_allclose(sim.world().cubes[0]["xy"], first_cube_xy(6))
    assert env.step(Keypose(goal_of(sim), DOWN, False, True)).success
    sim.CRASH_AT_STEP = sim.world().steps + 1
    with pytest.raises(SimulatorError, match="during reset"):
        env.reset("close_jar", 0, episode_seed(0, 0))
    env.close()
