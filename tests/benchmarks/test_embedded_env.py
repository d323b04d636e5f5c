"""EmbeddedEnv against the environment protocol: episodes, determinism, failures without exceptions, recording."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.embedded import CAMERA_NAMES, EmbeddedConfig, EmbeddedEnv
from benchmarks.embedded.tasks.base import top_down
from benchmarks.protocol import Environment, Keypose, Observation


@pytest.fixture(scope="module")
def env():
    e = EmbeddedEnv()
    yield e
    e.close()


def run_expert(env: EmbeddedEnv, task: str, variation: int, seed: int):
    env.reset(task, variation, seed)
    result = None
    for k in env.expert_keyposes():
        result = env.step(k)
        if result.done:
            break
    return result


def test_implements_the_protocol(env):
    assert isinstance(env, Environment)
    obs = env.reset("lift_block", 1, 0)
    assert isinstance(obs, Observation)
    assert set(obs.cameras) == set(CAMERA_NAMES)
    assert obs.gripper_pose.shape == (7,)
    assert np.linalg.norm(obs.gripper_pose[3:]) == pytest.approx(1.0)
    assert obs.gripper_open == 1.0
    assert obs.joint_positions.shape == (7,) and obs.joint_velocities.shape == (7,)
    assert obs.instructions == env.instructions("lift_block", 1) and len(obs.instructions) >= 3
    assert (obs.task, obs.variation, obs.episode) == ("lift_block", 1, 0)
    points, colours = obs.point_cloud()
    assert points.shape == (4 * 128 * 128, 3) and colours.dtype == np.uint8
    # The reference scene bounds hold the table top in front of the robot.
    inside = np.all((points >= [-0.3, -0.5, 0.6]) & (points <= [0.7, 0.5, 1.6]), axis=1)
    assert inside.mean() > 0.5


def test_same_task_variation_seed_gives_the_same_episode():
    a, b = EmbeddedEnv(), EmbeddedEnv()
    oa, ob = a.reset("stack_blocks", 5, 11), b.reset("stack_blocks", 5, 11)
    for name in CAMERA_NAMES:
        np.testing.assert_array_equal(oa.cameras[name].rgb, ob.cameras[name].rgb)
        np.testing.assert_array_equal(oa.cameras[name].depth, ob.cameras[name].depth)
    ka, kb = a.expert_keyposes(), b.expert_keyposes()
    assert len(ka) == len(kb)
    for x, y in zip(ka, kb):
        np.testing.assert_array_equal(x.to_array(), y.to_array())
    # Executing the same keyposes gives bit-identical states, also after another episode ran in between.
    b.reset("lift_block", 0, 0)
    b.reset("stack_blocks", 5, 11)
    for k in ka[:4]:
        ra, rb = a.step(k), b.step(k)
        np.testing.assert_array_equal(ra.observation.joint_positions, rb.observation.joint_positions)
        np.testing.assert_array_equal(a._sim.data.qpos, b._sim.data.qpos)
    c = EmbeddedEnv()
    c.reset("stack_blocks", 5, 12)
    assert not np.allclose(c.expert_keyposes()[0].position, ka[0].position)
    for e in (a, b, c):
        e.close()


@pytest.mark.parametrize(
    "keypose, reason",
    [
        (Keypose([np.nan, 0.0, 1.0], [0, 1, 0, 0], True, True), "non-finite"),
        (Keypose([0.2, 0.0, 1.0], [0, 0, 0, 0], True, True), "zero norm"),
        # Far corner of the workspace, gripper pointing straight up: no arm pose reaches it.
        (Keypose([0.7, 0.5, 0.62], [1, 0, 0, 0], True, False), "inverse-kinematics"),
        # Down into the table with collision checking on: the target itself collides.
        (Keypose([0.2, 0.0, 0.74], top_down(0.0), True, False), "collision"),
    ],
)
def test_invalid_keypose_ends_the_episode_as_a_failure(env, keypose, reason):
    env.reset("lift_block", 0, 0)
    obs, success, done, info = env.step(keypose)
    assert done and not success
    assert reason in info["error"]
    assert isinstance(obs, Observation)
    # Stepping an ended episode is still no exception.
    _, success, done, info = env.step(keypose)
    assert done and not success and "error" in info


def test_keyposes_outside_the_workspace_are_refused_with_requested_vs_allowed_or_clamped(env):
    """30 cm outside: refused, the error quoting the position asked for (not a clipped one) and the box. 1 cm
    outside: clamped onto the box (within workspace_tolerance) and reported in info."""
    env.reset("lift_block", 0, 0)
    q = top_down(0.0)
    _, success, done, info = env.step(Keypose([0.2, 0.0, 1.9], q, True, True))
    assert done and not success
    assert "requested position (0.200, 0.000, 1.900)" in info["error"]
    assert "(-0.300, -0.500, 0.600)..(0.700, 0.500, 1.600)" in info["error"]
    assert env.workspace().hi == (0.7, 0.5, 1.6)
    env.reset("lift_block", 0, 0)
    _, _, done, info = env.step(Keypose([0.2, 0.51, 1.0], q, True, True))
    assert "error" not in info and not done
    assert info["clamped"]["requested"] == pytest.approx([0.2, 0.51, 1.0])
    assert info["clamped"]["executed"] == pytest.approx([0.2, 0.5, 1.0])


def test_ignore_collisions_lets_the_same_keypose_through(env):
    env.reset("lift_block", 0, 0)
    _, _, done, info = env.step(Keypose([0.2, 0.0, 0.755], top_down(0.0), True, True))
    assert not done and "error" not in info


def test_episode_ends_after_max_keyposes():
    e = EmbeddedEnv(EmbeddedConfig(max_keyposes=3, cameras=("front",)))
    e.reset("lift_block", 0, 0)
    here = Keypose([0.1, 0.0, 1.0], top_down(0.0), True, False)
    there = Keypose([0.2, 0.1, 1.0], top_down(0.0), True, False)
    dones = [e.step(k).done for k in (here, there, here)]
    assert dones == [False, False, True]
    e.close()


def test_recording_frames_images_and_arrival(env):
    env.reset("lift_block", 2, 4)
    plan = env.expert_keyposes()
    env.start_recording(image_every=5)
    for k in plan:
        env.step(k)
    frames = env.stop_recording()
    assert env.stop_recording() == []  # recording is off after stop
    done = np.array([f.misc["keyposes_done"] for f in frames])
    assert done[0] == 0 and done[-1] == len(plan) - 1 and np.all(np.diff(done) >= 0)
    ticks = np.arange(len(frames))
    first_of_step = np.r_[True, np.diff(done[1:]) != 0]
    last_of_step = np.r_[np.diff(done[1:]) != 0, True]
    expect_images = np.r_[True, (ticks[1:] % 5 == 0) | first_of_step | last_of_step]
    has_images = np.array([bool(f.cameras) for f in frames])
    np.testing.assert_array_equal(has_images, expect_images)
    # At the last tick of each step the arm has stopped at its keypose, with the keypose's gripper state.
    ends = np.flatnonzero(np.r_[False, last_of_step])
    for k, i in zip(plan, ends):
        assert np.linalg.norm(frames[i].gripper_pose[:3] - k.position) < 0.003
        assert frames[i].gripper_open == float(k.gripper_open)
        np.testing.assert_array_equal(frames[i].joint_velocities, 0.0)
    # Moving ticks move clearly (well above PerAct's 0.1 rad/s "stopped" threshold).
    moving = np.setdiff1d(np.arange(1, len(frames)), ends)
    assert np.all(np.abs(np.stack([frames[i].joint_velocities for i in moving])).max(axis=1) > 0.2)


def test_keyframe_heuristic_recovers_the_expert_keyposes(env):
    from benchmarks.keyframes import discover_keyframes

    for task, variation, seed in (("push_buttons", 30, 1), ("put_in_drawer", 1, 2), ("drag_stick", 3, 0)):
        env.reset(task, variation, seed)
        plan = env.expert_keyposes()
        env.start_recording()
        executed = []
        for k in plan:  # the episode ends at success, possibly before a trailing retreat keypose
            executed.append(k)
            if env.step(k).done:
                break
        frames, plan = env.stop_recording(), executed
        keys = discover_keyframes(np.array([f.gripper_open for f in frames]),
                                  np.stack([f.joint_velocities for f in frames]))
        assert len(keys) == len(plan), task
        for i, k in zip(keys, plan):
            assert np.linalg.norm(frames[i].gripper_pose[:3] - k.position) < 0.003, task


def test_bad_arguments_name_themselves(env):
    with pytest.raises(ValueError, match="task"):
        env.reset("no_such_task", 0, 0)
    with pytest.raises(ValueError, match="variation"):
        env.reset("open_drawer", 3, 0)
    with pytest.raises(ValueError, match="image_size"):
        EmbeddedConfig(image_size=4)
    with pytest.raises(ValueError, match="cameras"):
        EmbeddedConfig(cameras=("overhead",))
    with pytest.raises(ValueError, match="image_every"):
        env.start_recording(image_every=0)


def test_max_variations_keeps_the_first_ones():
    e = EmbeddedEnv(EmbeddedConfig(max_variations=4, cameras=("front",)))
    assert e.variations("push_buttons") == 4 and e.variations("open_drawer") == 3
    # The first four push_buttons variations are single presses, one per colour.
    assert [e.instructions("push_buttons", v)[0] for v in range(4)] == [
        f"push the {c} button" for c in ("red", "green", "blue", "yellow")]
    with pytest.raises(ValueError, match="variation"):
        e.reset("push_buttons", 4, 0)
    with pytest.raises(ValueError, match="max_variations"):
        EmbeddedConfig(max_variations=0)
    e.close()


def test_config_loads_through_the_config_system(tmp_path):
    from bridgevla.configuration import load_config

    cfg = load_config(EmbeddedConfig, None, ["image_size=64", "cameras=front,wrist"])
    assert cfg.image_size == 64 and cfg.cameras == ("front", "wrist")
    e = EmbeddedEnv(cfg)
    obs = e.reset("push_buttons", 0, 0)
    assert set(obs.cameras) == {"front", "wrist"} and obs.cameras["front"].rgb.shape == (64, 64, 3)
    e.close()


def _block_keyposes(env: EmbeddedEnv, body: str, lift: float):
    """Grasp ``body`` the way lift_block's expert grasps its block, then raise it by ``lift``."""
    from benchmarks.embedded.tasks.base import body_pos, kp

    p = body_pos(env._sim, body)
    q = env.expert_keyposes()[0].quaternion  # top-down; the blocks' yaw is within the grasp's tolerance here
    return [kp(p + [0, 0, 0.12], q, True), kp(p, q, False, ignore_collisions=True), kp(p + [0, 0, lift], q, False)]


def test_diagnose_says_what_a_failed_episode_did_to_the_scene():
    from benchmarks.protocol import environment_diagnosis

    env = EmbeddedEnv()
    try:
        env.reset("lift_block", 0, 3)
        env.step(Keypose(np.array([0.2, 0.0, 1.2]), top_down(0.0), True, False))  # a move in free air
        assert environment_diagnosis(env) == "no object moved"
        env.reset("lift_block", 0, 3)
        for k in _block_keyposes(env, "block1", 0.2):  # a distractor (block0 is the named one)
            env.step(k)
        assert environment_diagnosis(env) == "moved a distractor: holding block1"
        env.reset("lift_block", 0, 3)
        for k in _block_keyposes(env, "block0", 0.05):  # the named block, not high enough (success needs 12 cm)
            result = env.step(k)
        assert not result.success
        assert environment_diagnosis(env) == "moved the task's objects without reaching the goal"
        assert run_expert(env, "lift_block", 0, 3).success  # the same scene, solved: the grasps above were sound
    finally:
        env.close()


def test_diagnose_counts_turns_and_presses_that_positions_do_not_show():
    import mujoco

    from benchmarks.embedded.tasks.base import body_pos
    from benchmarks.protocol import environment_diagnosis

    env = EmbeddedEnv()
    try:
        for yaw, want in ((np.radians(10.0), "no object moved"), (np.radians(30.0), "moved a distractor: block1")):
            env.reset("lift_block", 0, 3)
            sim = env._sim
            pos = body_pos(sim, "block1")
            quat = sim.data.xquat[sim.body_id("block1")]  # wxyz; turn it in place about z, position unchanged
            turn = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, turn, quat)
            sim.set_free_body(sim.body_id("block1"), pos, out)
            mujoco.mj_forward(sim.model, sim.data)
            assert environment_diagnosis(env) == want, yaw
        # push_buttons variation 4 asks for two buttons in order; pressing the first and stopping leaves every cap
        # where it was (the buttons spring back) but is the task's objects acted on, not "nothing moved".
        env.reset("push_buttons", 4, 0)
        plan = env.expert_keyposes()
        assert len(plan) == 4
        for k in plan[:2]:
            result = env.step(k)
        assert not result.success and env._task.acted_on(env._sim)
        assert environment_diagnosis(env) == "moved the task's objects without reaching the goal"
    finally:
        env.close()


def _push_keyposes(env: EmbeddedEnv, to: np.ndarray, fraction: float = 1.0):
    """Push slide_block's block along the straight line towards ``to`` (x, y), like its expert, stopping after
    ``fraction`` of the way (1.0: the block's centre ends on ``to``)."""
    from benchmarks.embedded.palette import BLOCK_HALF
    from benchmarks.embedded.scene import TABLE_TOP
    from benchmarks.embedded.tasks.base import body_pos, kp

    block = body_pos(env._sim, "block")[:2]
    u = (to - block) / np.linalg.norm(to - block)
    q = top_down(np.arctan2(u[1], u[0]) + np.pi / 2)
    end = block + fraction * (to - block) - (BLOCK_HALF + 0.011) * u
    z = TABLE_TOP + 0.02
    start = block - 0.075 * u
    return [kp([*start, z + 0.1], q, False), kp([*start, z], q, False), kp([*end, z], q, False, True)]


def test_diagnose_tells_the_wrong_place_from_a_near_miss():
    import re

    import mujoco

    from benchmarks.embedded.tasks.base import body_pos
    from benchmarks.protocol import environment_diagnosis
    from bridgevla.evaluation.failures import failure_category

    def category(diagnosis):
        return failure_category({"agent": "a", "task": "slide_block", "success": False, "diagnosis": diagnosis})

    env = EmbeddedEnv()
    try:
        # Variation 0 asks for target0; push the block all the way onto target2 instead.
        env.reset("slide_block", 0, 4)
        wrong, goal = (body_pos(env._sim, f"target{i}")[:2] for i in (2, 0))
        for k in _push_keyposes(env, wrong):
            result = env.step(k)
        assert not result.success
        block = body_pos(env._sim, "block")[:2]
        assert np.linalg.norm(block - wrong) < 0.02  # the push worked: the block is on the wrong pad
        text = environment_diagnosis(env)
        found = re.fullmatch(r"moved the task's objects to the wrong place: block nearest target2, the goal is "
                             r"target0 \(([\d.]+) cm away\)", text)
        assert found, text
        assert float(found[1]) == pytest.approx(100 * np.linalg.norm(block - goal), abs=0.051)
        assert category(text) == "right object, wrong place (nearer another of the task's places)"

        # The right direction, stopped 40 % of the way: a near miss with the distance left.
        env.reset("slide_block", 0, 4)
        for k in _push_keyposes(env, goal, fraction=0.4):
            result = env.step(k)
        assert not result.success
        block = body_pos(env._sim, "block")[:2]
        text = environment_diagnosis(env)
        found = re.fullmatch(r"moved the task's objects without reaching the goal: block ([\d.]+) cm from target0, "
                             r"15.0 cm at the start", text)  # setup puts the targets 15 cm from the block
        assert found, text
        assert float(found[1]) == pytest.approx(100 * np.linalg.norm(block - goal), abs=0.051)
        assert 5.0 < float(found[1]) < 12.0  # pushed ~6 of the 15 cm
        assert category(text) == "right object, goal not reached (place, order or precision)"

        # Knocked off the layout (as a policy that loses the block does): further from every pad than at the start.
        env.reset("slide_block", 0, 4)
        sim = env._sim
        centre = body_pos(sim, "block")
        away = centre + [-0.2, 0.2, 0.0]  # between two pads' directions, 28 cm out
        sim.set_free_body(sim.body_id("block"), away, np.array([1.0, 0.0, 0.0, 0.0]))
        mujoco.mj_forward(sim.model, sim.data)
        text = environment_diagnosis(env)
        want = 100 * np.linalg.norm(away[:2] - goal)
        assert text == (f"moved the task's objects away from the goal: block {want:.1f} cm from target0, 15.0 cm at "
                        "the start"), text
        assert category(text) == "right object, knocked away (further from the goal than at the start)"
    finally:
        env.close()


@pytest.mark.parametrize("task", ["slide_block", "ring_on_peg", "lid_on_jar", "drag_stick"])
def test_placement_names_the_place_the_instruction_names(task):
    """``Task.placement``'s goal is the body with the instruction's colour, for every variation."""
    from benchmarks.embedded.palette import rgba

    env = EmbeddedEnv()
    try:
        for variation in range(env.variations(task)):
            env.reset(task, variation, 7)
            t, sim = env._task, env._sim
            obj, goal, places = t.placement()
            assert goal in places and obj not in places
            colour = t.COLOURS[variation]
            assert colour in env.instructions(task, variation)[0]
            # a place carries the colour on some of its geoms (a peg's foot stays grey)
            named = [p for p in places if any(np.allclose(g, rgba(colour))
                                              for g in sim.model.geom_rgba[sim.model.geom_bodyid == sim.body_id(p)])]
            assert named == [goal], (variation, named)
    finally:
        env.close()
