"""``CoppeliaEnv.diagnose``: what a failed RLBench / COLOSSEUM / GemBench episode did to the task's objects, on the fake
CoppeliaSim stack (tests/benchmarks/fake_sim: the fake task's one object is the ``Shape`` "cube" in its tree), and how
failure analysis files it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.protocol import DIAGNOSIS_MOVE, DIAGNOSIS_TURN, Keypose, SimulatorError, environment_diagnosis
from bridgevla.evaluation.failures import failure_category
from bridgevla.evaluation.runner import EpisodeSpec, run_episode

from .test_colosseum import make_env as make_colosseum
from .test_gembench import make_env as make_gembench
from .test_rlbench_env import DOWN, TABLE_Z, goal_of, make_env

MOVED = "objects moved, goal not reached (right or wrong object unknown)"
NOTHING = "nothing moved (missed every object)"
HOVER = Keypose([0.3, 0.0, 1.2], DOWN, True, True)  # far above the cube: touches nothing


def cube(sim):
    return sim.world().objects["cube"]


def category(diagnosis):
    return failure_category({"agent": "a", "task": "t", "success": False, "error": None, "diagnosis": diagnosis})


def z_turn(degrees):
    half = math.radians(degrees) / 2
    return [0.0, 0.0, math.sin(half), math.cos(half)]


def test_a_pushed_cube_is_named_and_an_untouched_scene_is_not(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    assert env.step(HOVER).done is False
    assert environment_diagnosis(env) == "no object moved"
    assert category(env.diagnose()) == NOTHING
    start = cube(sim).get_position()
    cube(sim).set_position(start + [0.8 * DIAGNOSIS_MOVE, 0.0, 0.0])  # nudged less than 2 cm: not moved
    assert env.diagnose() == "no object moved"
    cube(sim).set_position(start + [0.0, 1.2 * DIAGNOSIS_MOVE, 0.0])  # pushed 2.4 cm
    np.testing.assert_allclose(sim.world().cubes[0]["xy"], start[:2] + [0.0, 0.024])  # what the cameras see moved
    assert env.diagnose() == "moved objects without reaching the goal: cube"
    assert category(env.diagnose()) == MOVED
    env.reset("close_jar", 0, 3)  # a new episode compares against its own start
    assert env.diagnose() == "no object moved"


def test_a_turn_in_place_counts_from_15_degrees(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    position = cube(sim).get_position()
    cube(sim).set_quaternion(z_turn(DIAGNOSIS_TURN - 3))
    assert env.diagnose() == "no object moved"
    cube(sim).set_quaternion(z_turn(DIAGNOSIS_TURN + 5))
    np.testing.assert_allclose(cube(sim).get_position(), position)  # turned, not moved
    assert env.diagnose() == "moved objects without reaching the goal: cube"


def test_a_grasped_cube_is_held_and_followed_out_of_the_tasks_tree(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    env.reset("close_jar", 0, 3)
    near = goal_of(sim) + [0.025, 0.0, 0.0]  # 2.5 cm beside the goal: the gripper grasps, the task is not done
    _, success, done, _ = env.step(Keypose(near, DOWN, gripper_open=False, ignore_collisions=True))
    assert (success, done) == (False, False)
    assert env.diagnose() == "moved objects without reaching the goal: cube (holding cube)"  # held, not yet lifted
    _, success, done, _ = env.step(Keypose(near + [0.0, 0.0, 0.2], DOWN, gripper_open=False, ignore_collisions=True))
    assert (success, done) == (False, False)
    assert sim.world().cubes[0]["top"] == pytest.approx(TABLE_Z + 0.26)  # carried up 20 cm
    # grasped, the cube hangs from the gripper, no longer in the task's tree: the poses kept at reset still see it
    assert env._task_env._task.get_base().get_objects_in_tree() == []
    assert env.diagnose() == "moved objects without reaching the goal: cube (holding cube)"
    assert category(env.diagnose()) == MOVED


def test_no_diagnosis_without_an_episode_or_a_simulator(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    assert env.diagnose() is None  # before any reset
    env.reset("close_jar", 0, 3)
    sim.CRASH_AT_STEP = sim.world().steps + 2
    with pytest.raises(SimulatorError):
        env.step(HOVER)
    assert env.diagnose() is None  # crashed and shut down
    env.reset("close_jar", 0, 3)
    assert env.diagnose() == "no object moved"
    sim.WORLD = None  # CoppeliaSim gone under the harness's feet: reading a pose raises
    assert env.diagnose() is None


def test_colosseum_and_gembench_diagnose_like_rlbench(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_colosseum()
    env.reset(env.tasks()[0], 0, 1)
    cube(sim).set_position(cube(sim).get_position() + [0.05, 0.0, 0.0])
    assert env.diagnose() == "moved objects without reaching the goal: cube"
    env.close()
    sim = fake_harness("gembench")
    env = make_gembench(tmp_path)
    env.reset("push_button+0", 0, 5)
    env.step(HOVER)
    assert env.diagnose() == "no object moved"
    cube(sim).set_position(cube(sim).get_position() + [0.0, -0.05, 0.0])
    assert env.diagnose() == "moved objects without reaching the goal: cube"


class Script:
    """An agent that plays fixed keyposes."""

    name = "script"

    def __init__(self, keyposes):
        self.keyposes = keyposes

    def reset(self, env, observation, seed):
        self.todo = list(self.keyposes(env))

    def act(self, observation):
        return self.todo.pop(0)


def test_the_runner_records_the_diagnosis_and_failure_analysis_files_it(fake_harness, tmp_path):
    sim = fake_harness()
    env = make_env(tmp_path)
    spec = EpisodeSpec("script", "close_jar", 0, 0, 0, 3)

    def pick_and_lift(env):  # picks the cube up beside the goal and keeps it: out of keyposes, no error
        near = goal_of(sim) + [0.025, 0.0, 0.0]
        return [Keypose(near, DOWN, False, True), Keypose(near + [0.0, 0.0, 0.2], DOWN, False, True)]

    record = run_episode(env, Script(pick_and_lift), spec, max_keyposes=2)
    assert (record["success"], record["error"], record["keyposes"]) == (False, None, 2)
    assert record["diagnosis"] == "moved objects without reaching the goal: cube (holding cube)"
    assert failure_category(record) == MOVED
    record = run_episode(env, Script(lambda env: [HOVER, HOVER]), spec, max_keyposes=2)
    assert (record["error"], record["diagnosis"]) == (None, "no object moved")
    assert failure_category(record) == NOTHING
    record = run_episode(env, Script(lambda env: [Keypose(goal_of(sim), DOWN, False, True)]), spec, max_keyposes=2)
    assert record["success"] and "diagnosis" not in record  # successes get none
