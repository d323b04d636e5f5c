"""GemBench: the retrying mover against hand-scripted arms, and the adapter end to end on the fake stack
(tests/benchmarks/fake_sim with FAKE_RLBENCH_FORK=gembench, mirroring rjgpinel/RLBench@ebdc339)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.gembench.env import GemBenchConfig, GemBenchEnv, gembench_action
from benchmarks.gembench.levels import LEVEL_OF, LEVELS, split_taskvar
from benchmarks.gembench.mover import RetryingMover
from benchmarks.protocol import Keypose, episode_seed
from benchmarks.rlbench.harness import HarnessNotInstalled

from .test_rlbench_env import DOWN, TABLE_Z, first_cube_xy, goal_of, write_test_set


class ScriptedArm:
    """Each step lands at target + the next scripted x offset; reward 1 when told to."""

    def __init__(self, offsets, succeed_at=None):
        self.offsets, self.calls, self.succeed_at = list(offsets), [], succeed_at

    def __call__(self, action):
        self.calls.append(np.array(action))
        offset = self.offsets.pop(0) if self.offsets else 0.0
        pose = np.concatenate([action[:3] + [offset, 0.0, 0.0], action[3:7]])
        reward = 1.0 if self.succeed_at == len(self.calls) else 0.0
        return SimpleNamespace(gripper_pose=pose), reward, False


START = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0])


def test_mover_retries_until_within_5_cm_keeping_the_gripper_state():
    arm = ScriptedArm([0.08, 0.06, 0.04])  # 8 cm, 6 cm: too far; 4 cm < 5 cm: arrived
    mover = RetryingMover(arm)
    mover.reset(START, 1.0)
    _, reward, _, info = mover(np.array([0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
    assert (info["tries"], info["reached"], info["gripper_step"]) == (3, True, False)
    assert info["distance"] == pytest.approx(0.04)
    assert all(np.array_equal(c, [0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]) for c in arm.calls)


def test_mover_closes_the_gripper_only_after_arriving_within_2_cm():
    arm = ScriptedArm([0.04, 0.03, 0.01])  # 4 cm would do for a plain move, not for a grasp: 2 cm needed
    mover = RetryingMover(arm)
    mover.reset(START, 1.0)
    target = np.array([0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # closes the gripper
    _, _, _, info = mover(target)
    assert (info["tries"], info["reached"], info["gripper_step"]) == (3, True, True)
    assert [c[7] for c in arm.calls] == [1.0, 1.0, 1.0, 0.0]  # moves keep it open, then one step closes it
    arm2 = ScriptedArm([0.0])
    mover2 = RetryingMover(arm2)
    mover2.reset(START, 1.0)
    mover2(target)
    _, _, _, info = mover2(np.array([0.3, 0.1, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))  # stays closed: 5 cm, no extra step
    assert (info["tries"], info["gripper_step"]) == (1, False) and [c[7] for c in arm2.calls] == [1.0, 0.0, 0.0]


def test_mover_gives_up_after_max_tries_and_stops_on_success():
    arm = ScriptedArm([0.1] * 20)
    mover = RetryingMover(arm, max_tries=10)
    mover.reset(START, 1.0)
    _, _, _, info = mover(np.array([0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    assert (info["tries"], info["reached"], info["gripper_step"]) == (10, False, False)  # never closed mid-air
    assert len(arm.calls) == 10
    _, _, _, info = mover(np.array([0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]))  # the last target was "closed"
    assert info["gripper_step"] is False and arm.calls[-1][7] == 0.0  # previous state = the unreached target's
    winner = ScriptedArm([0.1] * 20, succeed_at=2)
    mover = RetryingMover(winner)
    mover.reset(START, 1.0)
    _, reward, _, info = mover(np.array([0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    assert reward == 1.0 and info["tries"] == 2 and not info["gripper_step"]
    with pytest.raises(ValueError, match="reset"):
        RetryingMover(winner)(np.zeros(8))
    with pytest.raises(ValueError, match="tolerances"):
        RetryingMover(winner, tolerance=0.01, gripper_change_tolerance=0.02)


def test_levels_are_the_published_lists():
    assert [len(LEVELS[k]) for k in ("L1", "L2", "L3", "L4")] == [31, 28, 21, 12]
    assert len({t.split("+")[0] for t in LEVELS["L1"]}) == 16 and len(LEVEL_OF) == 92  # disjoint
    assert split_taskvar("close_jar_peract+15") == ("close_jar_peract", 15)
    with pytest.raises(ValueError, match="taskvar"):
        split_taskvar("push_button")
    env = GemBenchEnv(GemBenchConfig(levels=["L4", "L2"]))
    assert env.tasks()[:2] == ["push_buttons4+1", "push_buttons4+2"] and len(env.tasks()) == 40
    assert env.variations("push_buttons4+1") == 1
    assert GemBenchEnv(GemBenchConfig(tasks=["push_button+0", "lamp_on+0"], levels=["L2"])).tasks() == ["lamp_on+0"]
    with pytest.raises(ValueError, match="taskvars"):
        GemBenchConfig(tasks=["push_button+1"])
    assert GemBenchConfig().image_size == 256
    action = gembench_action(Keypose([1, 2, 3], [0, 0, 0, 2], False, False))
    np.testing.assert_allclose(action, [1, 2, 3, 0, 0, 0, 1, 0])


def make_env(tmp_path, **overrides):
    return GemBenchEnv(GemBenchConfig(**{"tasks": ["push_button+0", "lamp_on+0"], "image_size": 16, **overrides}))


def test_stored_episodes_per_seed_and_the_fork_check(fake_harness, tmp_path):
    sim = fake_harness("gembench")
    root = tmp_path / "microsteps"
    write_test_set(root / "seed300" / "push_button" / "variation0" / "episodes", [21, 22, 23])
    write_test_set(root / "seed400" / "push_button" / "variation0" / "episodes", [31, 32])
    env = make_env(tmp_path, test_root=str(root))
    env.reset("push_button+0", 0, episode_seed(300, 2))
    np.testing.assert_allclose(sim.world().cubes[0]["xy"], first_cube_xy(23))
    obs = env.reset("push_button+0", 0, episode_seed(400, 1))
    np.testing.assert_allclose(sim.world().cubes[0]["xy"], first_cube_xy(32))
    assert obs.variation == 0 and obs.misc["run"] == 400
    with pytest.raises(ValueError, match="seeds 200 300 400 500 600 and seed_offset 0"):
        env.reset("push_button+0", 0, episode_seed(200, 0))
    with pytest.raises(ValueError, match="2 stored episodes"):
        env.reset("push_button+0", 0, episode_seed(400, 2))
    fake_harness("peract")
    with pytest.raises(HarnessNotInstalled, match="rjgpinel/RLBench@ebdc339"):
        make_env(tmp_path).reset("push_button+0", 0, 0)


def test_eight_values_no_collision_checking_and_the_mover(fake_harness, tmp_path):
    sim = fake_harness("gembench")
    env = make_env(tmp_path)
    env.reset("push_button+0", 0, 5)
    goal = goal_of(sim)
    sim.LANDING_OFFSETS = [[0.08, 0, 0], [0.03, 0, 0]]  # lands 8 cm off, then 3 cm: 2 tries for a plain move
    _, success, done, info = env.step(Keypose(goal + [0, 0, 0.1], DOWN, gripper_open=True, ignore_collisions=False))
    assert (success, done, info["tries"], info["reached"]) == (False, False, 2, True)
    assert len(info["action"]) == 8
    assert all(ignore for _, ignore in sim.world().planner_calls)  # collision checking is off in GemBench
    sim.LANDING_OFFSETS = [[0.03, 0, 0], [0.01, 0, 0]]  # closing needs 2 cm: 2 tries, then the gripper step
    _, success, done, info = env.step(Keypose(goal, DOWN, gripper_open=False, ignore_collisions=False))
    assert success and done and info["tries"] == 2 and info["gripper_step"]


def test_failure_flag_does_not_end_a_gembench_episode_but_the_step_cap_does(fake_harness, tmp_path):
    fake_harness("gembench")
    env = make_env(tmp_path, max_keyposes=3)
    env.reset("push_button+0", 0, 5)
    low = Keypose([0.0, 0.3, TABLE_Z + 0.005], DOWN, True, True)
    assert [env.step(low).done for _ in range(3)] == [False, False, True]
    assert env.step(low).info["error"] == "step limit: 3 keyposes"  # asked for a 4th
    env.reset("push_button+0", 0, 5)
    _, success, done, info = env.step(Keypose([0.3, 0.0, TABLE_Z + 0.95], DOWN, True, True))  # unreachable
    assert (success, done) == (False, True) and info["error"].startswith("InvalidActionError")


def test_instruction_is_a_seeded_random_phrasing(fake_harness, tmp_path):
    fake_harness("gembench")
    env = make_env(tmp_path)
    phrasings = {"touch the red cube", "reach the red cube", "go to the red block"}
    shown = [env.reset("push_button+0", 0, s).instructions for s in range(12)]
    assert all(set(i) == phrasings and len(i) == 3 for i in shown)
    assert len({i[0] for i in shown}) > 1  # not always the first
    assert env.reset("push_button+0", 0, 4).instructions == shown[4]  # same seed, same phrasing
    first = make_env(tmp_path, instruction="first")
    assert first.reset("push_button+0", 0, 4).instructions[0] == "touch the red cube"
