"""Generalisation levels: the splits are what they claim, and nothing of a test level is in the training split."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
from benchmarks.embedded.levels import LEVELS, SPLITS, level_of, level_tasks
from benchmarks.embedded.palette import COLOURS, SEEN_COLOURS, UNSEEN_COLOURS
from benchmarks.embedded.tasks import ALL_TASKS, TASKS, TEST_TASKS, novel


@pytest.fixture(scope="module")
def env():
    e = EmbeddedEnv()
    yield e
    e.close()


def test_levels_and_splits():
    assert LEVELS["L1"] == tuple(TASKS) == SPLITS["train"]
    tests = [t for lv in ("L2", "L3", "L4") for t in LEVELS[lv]]
    assert len(tests) == len(set(tests)) and set(tests) == set(TEST_TASKS)
    assert not set(tests) & set(SPLITS["train"])
    assert level_of("lift_cylinder") == "L2" and level_of("turn_tap_knobs") == "L3" and level_of("lift_block") == "L1"
    with pytest.raises(ValueError, match="in no level"):
        level_of("fly_away")
    assert EmbeddedEnv(EmbeddedConfig(suite="levels")).tasks() == level_tasks()
    assert set(novel.UNSEEN_FOUR) <= set(UNSEEN_COLOURS)


def _object_geoms(sim) -> np.ndarray:
    """Task-object geoms: not robot, not floor or table."""
    return np.flatnonzero(~sim.robot_geom & (sim.model.geom_bodyid != 0))


def _uses_unseen_colour(sim) -> bool:
    rgb = sim.model.geom_rgba[_object_geoms(sim), :3]
    unseen = np.array([COLOURS[c] for c in UNSEEN_COLOURS])
    return bool(np.any(np.all(np.abs(rgb[:, None] - unseen[None]) < 0.02, axis=-1)))


def test_no_unseen_colour_in_any_training_scene_or_instruction(env):
    words = {w for c in UNSEEN_COLOURS for w in (c, "grey")}
    for task in SPLITS["train"]:
        for v in range(env.variations(task)):
            obs = env.reset(task, v, seed=v)
            assert not _uses_unseen_colour(env._sim), (task, v)
            said = {w for text in obs.instructions for w in text.replace(",", " ").split()}
            assert not said & words, (task, v, said & words)
    # ... while every new-colour test task does show and name them.
    for task in LEVELS["L2"]:
        if task.endswith("_new_colours"):
            obs = env.reset(task, 0, 0)
            assert _uses_unseen_colour(env._sim), task
            assert any(c in obs.instructions[0] for c in UNSEEN_COLOURS), task


def _signatures(sim) -> set[tuple]:
    """(geom type, size in 0.1 mm) of every task-object geom: what an asset looks like to the simulator."""
    m = sim.model
    g = _object_geoms(sim)
    return {(int(t), *np.round(s * 1e4).astype(int)) for t, s in zip(m.geom_type[g], m.geom_size[g])}


def test_no_level_2_3_asset_in_any_training_scene(env):
    train = set()
    for task in SPLITS["train"]:
        env.reset(task, 0, 0)
        train |= _signatures(env._sim)
        assert not np.any(env._sim.model.geom_type == mujoco.mjtGeom.mjGEOM_MESH), task  # no prism
    # Every new object of L2 (shapes) and L3 (cabinets, taps) has geometry that no training scene contains.
    for task in ("lift_cylinder", "lift_prism", "slide_cylinder", "stack_cylinders", *LEVELS["L3"]):
        env.reset(task, 0, 0)
        new = _signatures(env._sim) - train
        sim = env._sim
        if task == "lift_prism":
            assert np.any(sim.model.geom_type == mujoco.mjtGeom.mjGEOM_MESH)
        else:
            assert new, task
    # And the training catalogue's classes use the training instances only.
    from benchmarks.embedded.tasks.drawers import TRAIN_CABINET
    from benchmarks.embedded.tasks.tap import TRAIN_TAP
    for cls in TASKS.values():
        assert getattr(cls, "CABINET", TRAIN_CABINET) == TRAIN_CABINET
        assert getattr(cls, "TAP", TRAIN_TAP) == TRAIN_TAP
        assert getattr(cls, "SHAPE", "box") == "box"
        assert set(getattr(cls, "COLOURS", SEEN_COLOURS)) <= set(SEEN_COLOURS)


@pytest.mark.parametrize("task", ["lift_prism", "open_drawer_tall_cabinet", "turn_tap_knobs", "press_then_stack"])
def test_level_experts_succeed(env, task):
    env.reset(task, 1 % env.variations(task), 7)
    r = None
    for k in env.expert_keyposes():
        r = env.step(k)
        if r.done:
            break
    assert r is not None and r.success, (task, r.info if r else None)


@pytest.mark.slow
def test_every_level_task_expert_succeeds_on_every_variation(env):
    for task in TEST_TASKS:
        for v in range(min(env.variations(task), 12)):
            env.reset(task, v, 100 + v)
            for k in env.expert_keyposes():
                r = env.step(k)
                if r.done:
                    break
            assert r.success, (task, v, r.info)


def test_level_tasks_instructions_and_variations():
    assert ALL_TASKS["push_buttons_4"]().num_variations() == 24
    assert ALL_TASKS["push_buttons_4"]().instructions(0)[0] == \
        "push the red button, then the green button, then the blue button, then the yellow button"
    assert ALL_TASKS["stack_blocks_4"]().instructions(0)[0] == "stack four red blocks on the platform"
    assert ALL_TASKS["lift_cylinder"]().instructions(2)[0] == "pick up the blue cylinder and lift it up"
    assert ALL_TASKS["lift_block_new_colours"]().num_variations() == len(UNSEEN_COLOURS)
    assert ALL_TASKS["press_then_stack"]().instructions(0)[0] == \
        "push the red button, then stack two green blocks on the platform"
