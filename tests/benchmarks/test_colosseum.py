"""The COLOSSEUM adapter end to end on the fake stack (tests/benchmarks/fake_sim/colosseum mirrors
robot-colosseum@098a910 on the PerAct RLBench fork)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.colosseum.env import FACTORS, PUBLISHED_FACTORS, ColosseumConfig, ColosseumEnv, split_cell
from benchmarks.protocol import Keypose, episode_seed
from benchmarks.rlbench.harness import HarnessNotInstalled

from .test_rlbench_env import DOWN, first_cube_xy, goal_of, write_test_set


def make_env(**overrides):
    return ColosseumEnv(ColosseumConfig(**{"tasks": ["close_box", "open_drawer"], "image_size": 16, **overrides}))


def table_pixel(obs):
    """The front camera's pixel (v=5, u=11) sees the table (hand-computed in test_rlbench_env)."""
    return obs.cameras["front"].rgb[5, 11]


def test_factor_names_and_cells(fake_harness, tmp_path):
    assert [FACTORS[i] for i in PUBLISHED_FACTORS] == [
        "All", "MO_Color", "RO_Color", "MO_Texture", "RO_Texture", "MO_Size", "RO_Size", "Light_Color",
        "Table_Color", "Table_Texture", "Distractor", "Background_Texture", "RLBench", "Camera_Pose"]
    assert FACTORS[0] == "No_Perturbation" and FACTORS[17] == "Mass" and len(FACTORS) == 18
    assert split_cell("close_laptop_lid_13") == ("close_laptop_lid", 13)
    with pytest.raises(ValueError, match="factor"):
        split_cell("close_box_18")
    with pytest.raises(HarnessNotInstalled, match="COLOSSEUM"):
        make_env().tasks()  # colosseum is not importable without the fakes
    fake_harness()
    env = make_env()
    # the task JSONs disable rows whose object does not exist (open_drawer: 3, 4, 5, 7; close_box: 3, 5, 7)
    assert env.tasks() == [f"close_box_{i}" for i in (1, 2, 4, 6, 8, 9, 10, 11, 12, 13, 14)] + [
        f"open_drawer_{i}" for i in (1, 2, 6, 8, 9, 10, 11, 12, 13, 14)]
    write_test_set(tmp_path / "test" / "close_box" / "close_box_9" / "variation0" / "episodes", [40, 41])
    with_data = make_env(test_root=str(tmp_path / "test"))
    assert with_data.tasks() == ["close_box_9"]  # cells without stored episodes are skipped, as published
    with pytest.raises(ValueError, match="COLOSSEUM tasks"):
        ColosseumConfig(tasks=["close_jar"])
    with pytest.raises(ValueError, match="factor indices"):
        ColosseumConfig(factors=[18])


def draws(n, lo=0.25, hi=1.0):
    """COLOSSEUM's table_color factor: default_rng(42) (the YAML's env.seed), one uniform RGB per episode."""
    rng = np.random.default_rng(42)
    return [rng.uniform([lo] * 3, [hi] * 3) for _ in range(n)]


def test_table_color_factor_gives_episode_i_the_ith_draw_whatever_the_order(fake_harness, tmp_path):
    sim = fake_harness()
    write_test_set(tmp_path / "test" / "close_box" / "close_box_9" / "variation0" / "episodes", [40, 41, 42, 43],
                   variations=[3, 3, 3, 3])
    env = make_env(test_root=str(tmp_path / "test"))
    expected = [(c * 255).astype(np.uint8) for c in draws(4)]
    seen = {}
    for episode in (2, 0, 3, 1, 2):  # out of order and repeated: the adapter rewinds and replays
        obs = env.reset("close_box_9", 0, episode_seed(0, episode))
        seen[episode] = table_pixel(obs)
        np.testing.assert_array_equal(seen[episode], expected[episode])
        np.testing.assert_allclose(sim.world().cubes[0]["xy"], first_cube_xy(40 + episode))
        assert obs.variation == 0  # the published evaluation always runs RLBench variation 0 ...
    assert env.launches == 1
    by_demo = make_env(test_root=str(tmp_path / "test"), variation_from_demo=True)
    assert by_demo.reset("close_box_9", 0, episode_seed(0, 1)).variation == 3  # ... unless asked otherwise
    unperturbed = make_env(factors=[2])  # MO_Color: the fake does not draw colours for it; the table stays put
    np.testing.assert_array_equal(table_pixel(unperturbed.reset("close_box_2", 0, 0)),
                                  (np.array([0.6, 0.45, 0.3]) * 255).astype(np.uint8))


def test_camera_pose_factor_moves_the_cameras_in_the_extrinsics(fake_harness):
    fake_harness()
    env = make_env()
    base = env.reset("close_box_2", 0, episode_seed(0, 0)).cameras
    moved = env.reset("close_box_14", 0, episode_seed(0, 0)).cameras  # another cell: a relaunched simulator
    assert env.launches == 2
    offset = np.random.default_rng(42).uniform([-0.1] * 3, [0.1] * 3)
    np.testing.assert_allclose(moved["front"].extrinsics[:3, 3] - base["front"].extrinsics[:3, 3], offset)
    np.testing.assert_allclose(moved["front"].extrinsics[:3, :3], base["front"].extrinsics[:3, :3])
    np.testing.assert_allclose(moved["wrist"].extrinsics, base["wrist"].extrinsics)  # the wrist is not a target


def test_colosseum_steps_like_rlbench(fake_harness):
    sim = fake_harness()
    env = make_env()
    env.reset("open_drawer_11", 0, 3)
    goal = goal_of(sim)
    _, success, done, info = env.step(Keypose([1.5, 0.0, 1.2], DOWN, True, True))
    assert not done and sim.world().planner_calls[-1][0][0] == pytest.approx(0.8 - 1e-7)  # clipped
    _, success, done, info = env.step(Keypose(goal, DOWN, False, False))
    assert success and done and len(info["action"]) == 9
    assert [c[1] for c in sim.world().planner_calls[-2:]] == [False, True]
