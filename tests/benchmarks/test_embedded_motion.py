"""The Panda model, IK, collision-checked planning with detours, and grasps, against hand-computed references."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.embedded import EmbeddedEnv
from benchmarks.embedded.motion import PlanningError, plan, solve_ik
from benchmarks.embedded.robot import BASE_POSITION, HOME_QPOS, JOINT_LOWER, JOINT_UPPER
from benchmarks.embedded.tasks.base import body_pos, matrix_from_quat_xyzw, top_down
from benchmarks.protocol import Keypose


@pytest.fixture(scope="module")
def env():
    e = EmbeddedEnv()
    e.reset("lift_block", 0, 0)
    yield e
    e.close()


def fk(sim, q):
    sim.scratch.qpos[:] = sim.data.qpos
    sim.scratch.qpos[sim.arm_qadr] = q
    mujoco.mj_kinematics(sim.model, sim.scratch)
    return sim.tcp_pose(sim.scratch)


def test_forward_kinematics_matches_published_panda_numbers(env):
    """Franka's DH table: at q = 0 the flange sits at (a4 - a5' + a7, 0, d1 + d3 + d5 - d_flange)
    = (0.088, 0, 0.926) above the base, pointing down; the TCP is 0.1034 m further down."""
    base = np.array(BASE_POSITION)
    p, r = fk(env._sim, np.zeros(7))
    np.testing.assert_allclose(p - base, [0.088, 0.0, 0.926 - 0.1034], atol=1e-6)
    np.testing.assert_allclose(r[:, 2], [0, 0, -1], atol=1e-6)
    # The ready pose: flange at (0.307, 0, 0.590) above the base (the familiar Franka home position).
    p, r = fk(env._sim, HOME_QPOS)
    np.testing.assert_allclose(p - base, [0.3069, 0.0, 0.5903 - 0.1034], atol=5e-4)
    np.testing.assert_allclose(r[:, 2], [0, 0, -1], atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-0.4, 0.4), min_size=7, max_size=7))
def test_ik_recovers_poses_of_random_configurations(env, offsets):
    sim = env._sim
    q_true = np.clip(HOME_QPOS + np.array(offsets), JOINT_LOWER, JOINT_UPPER)
    p, r = fk(sim, q_true)
    q = solve_ik(sim, p, r, HOME_QPOS, 0.001, 0.01, iterations=300)
    assert q is not None
    p2, r2 = fk(sim, q)
    assert np.linalg.norm(p2 - p) < 0.001
    assert np.arccos(np.clip((np.trace(r2.T @ r) - 1) / 2, -1, 1)) < 0.01
    assert np.all(q >= JOINT_LOWER - 1e-9) and np.all(q <= JOINT_UPPER + 1e-9)


def test_blocked_straight_path_takes_a_lifted_detour():
    e = EmbeddedEnv()
    e.reset("lift_block", 0, 0)
    sim = e._sim
    obstacle = body_pos(sim, "block1")
    q = top_down(0.0)
    low = obstacle[2] + 0.01
    start = obstacle + [-0.1, 0.0, low - obstacle[2]]
    goal = obstacle + [0.1, 0.0, low - obstacle[2]]
    e.step(Keypose(start + [0, 0, 0.1], q, True, False))
    e.step(Keypose(start, q, True, False))
    rot = matrix_from_quat_xyzw(q)
    cfg = e.config
    args = (cfg.detour_heights, cfg.workspace_hi[2], cfg.ik_position_tolerance, cfg.ik_rotation_tolerance, False)
    direct = plan(sim, goal, rot, True, *args)
    assert any(sim.in_collision(x) for x in direct)  # the straight line goes through the block
    detour = plan(sim, goal, rot, False, *args)
    assert not any(sim.in_collision(x) for x in detour)
    assert max(fk(sim, x)[0][2] for x in detour) > low + 0.1  # it went over the top
    # Executed, the detour leaves the obstacle where it was.
    _, _, done, info = e.step(Keypose(goal, q, True, False))
    assert not done and "error" not in info
    np.testing.assert_allclose(body_pos(sim, "block1"), obstacle, atol=1e-3)
    e.close()


def test_no_detour_when_every_path_collides():
    e = EmbeddedEnv()
    e.reset("lift_block", 0, 0)
    sim = e._sim
    cfg = e.config
    # Inside the table: the goal itself collides, no detour can help.
    with pytest.raises(PlanningError):
        plan(sim, np.array([0.2, 0.0, 0.7]), matrix_from_quat_xyzw(top_down(0.0)), False, cfg.detour_heights,
             cfg.workspace_hi[2], cfg.ik_position_tolerance, cfg.ik_rotation_tolerance, False)
    e.close()


def test_grasped_block_rides_rigidly_with_the_gripper():
    e = EmbeddedEnv()
    e.reset("lift_block", 3, 1)
    sim = e._sim
    plan_ = e.expert_keyposes()
    e.step(plan_[0])
    e.step(plan_[1])
    assert sim.grasp is not None and sim.grasp.body == sim.body_id("block0")
    offset = body_pos(sim, "block0") - sim.tcp_pose()[0]
    e.start_recording(image_every=1000)
    e.step(Keypose(plan_[1].position + [0.05, -0.05, 0.08], plan_[1].quaternion, False, False))  # not yet "lifted"
    e.stop_recording()
    np.testing.assert_allclose(body_pos(sim, "block0") - sim.tcp_pose()[0], offset, atol=1e-6)
    # Opening drops it: it falls back to the table.
    e.step(Keypose(sim.tcp_pose()[0], plan_[1].quaternion, True, False))
    assert sim.grasp is None and body_pos(sim, "block0")[2] < 0.78
    e.close()


def test_drawer_follows_the_hand_along_its_slide():
    from benchmarks.embedded.tasks.drawers import drawer_opening

    e = EmbeddedEnv()
    e.reset("open_drawer", 1, 4)
    sim = e._sim
    pre, grasp, pull = e.expert_keyposes()
    e.step(pre)
    e.step(grasp)
    assert sim.grasp is not None and sim.grasp.kind == "slide"
    axis = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)[:, 0]
    half = Keypose(grasp.position - 0.07 * axis, grasp.quaternion, False, True)
    e.step(half)
    assert drawer_opening(sim, "middle") == pytest.approx(0.07, abs=0.003)
    assert drawer_opening(sim, "top") == 0.0 and drawer_opening(sim, "bottom") == 0.0
    e.close()


def test_collision_checker_counts_the_held_object():
    """A held block pushed into another block is a collision even though no robot geom touches it."""
    from benchmarks.embedded.motion import ik_any

    e = EmbeddedEnv()
    e.reset("lift_block", 0, 2)
    sim = e._sim
    pre, grasp = e.expert_keyposes()[:2]
    e.step(pre)
    e.step(grasp)
    assert sim.grasp is not None and sim.grasp.kind == "free"
    rot = matrix_from_quat_xyzw(grasp.quaternion)
    other = body_pos(sim, "block1")
    # TCP 3 cm above block1's centre: the held cube (5 cm) overlaps block1 by 2 cm, the fingers stay clear of it.
    q_overlap = ik_any(sim, other + [0, 0, 0.03], rot, sim.arm_q, 0.002, 0.02)
    q_clear = ik_any(sim, other + [0, 0, 0.08], rot, sim.arm_q, 0.002, 0.02)
    assert q_overlap is not None and q_clear is not None
    assert sim.in_collision(q_overlap)
    assert not sim.in_collision(q_clear)
    e.close()
