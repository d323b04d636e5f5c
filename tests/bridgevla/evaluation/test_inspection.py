"""bridgevla inspect: recordings of evaluation and dataset episodes, read back through rerun's own reader and checked
against what the environment received, the expert plan and independently computed clouds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.dataset import save_episode
from benchmarks.generate import record_episode
from bridgevla.data.preprocess import observation_cloud
from bridgevla.evaluation.inspection import (
    CollectingSink,
    InspectConfig,
    InspectingPolicyAgent,
    find_episode_folder,
    inspect_dataset_episode,
    inspect_rollout,
    keypose_errors,
)
from bridgevla.evaluation.runner import EpisodeSpec
from rendering import project, world_to_cube
from tests.benchmarks.fake_demo_env import GRIPPER_TICKS, TICKS_PER_MOVE, FakeDemoEnv
from tests.bridgevla.evaluation.rrd import column, image, read_rrd
from tests.bridgevla.model_helpers import tiny_policy

pytest.importorskip("rerun")
from bridgevla.evaluation.rerun_log import RerunEpisodeLog  # noqa: E402

BOUNDS = [-0.6, -0.6, -0.1, 0.6, 0.6, 1.1]  # around FakeDemoEnv's table (z = 0) and box


class SteppedEnv(FakeDemoEnv):
    """FakeDemoEnv that remembers every keypose it was asked to execute."""

    def __init__(self, options: dict | None = None) -> None:
        super().__init__(image_size=20)
        self.stepped = []

    def step(self, keypose):
        self.stepped.append(keypose)
        return super().step(keypose)


@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    p = tiny_policy(seed=3, bounds=BOUNDS)
    p.eval()
    return p


@pytest.fixture(scope="module")
def rollout(policy, tmp_path_factory):
    env = SteppedEnv()
    spec = EpisodeSpec("policy", "pick_fake", 1, 0, 1, 4242)
    path = tmp_path_factory.mktemp("inspect") / "episode.rrd"
    log = RerunEpisodeLog(path)
    record = inspect_rollout(env, InspectingPolicyAgent(policy), spec, 5, log, policy.config.bounds)
    log.close()
    fresh = FakeDemoEnv(image_size=20)
    first_obs = fresh.reset("pick_fake", 1, 4242)
    return {"env": env, "record": record, "rrd": read_rrd(path), "plan": fresh.expert_keyposes(),
            "first_obs": first_obs}


def test_rollout_recording_has_the_documented_entities_and_one_timeline_step_per_keypose(rollout):
    rrd, record = rollout["rrd"], rollout["record"]
    assert record["keyposes"] == 3 and record["success"]  # FakeDemoEnv ends after three keyposes
    for entity in ["/world/cloud", "/world/score/stage1", "/world/score/stage2", "/world/stage1", "/world/zoom",
                   "/world/predicted", "/world/reference", "/world/gripper", "/world/trajectory", "/status",
                   "/world/cameras/front", "/world/cameras/overhead", "/world/cameras/wrist",
                   "/errors/position_cm", "/errors/rotation_deg", "/errors/stage1_cm", "/errors/gripper_agrees",
                   *(f"/views/stage{k}/{v}/{part}" for k in (1, 2) for v in ("top", "front", "side")
                     for part in ("image", "heatmap", "point"))]:
        assert entity in rrd, entity
    # keyposes 0, 1, 2 and the end state 3: the timeline has keyposes + 1 steps
    assert sorted(column(rrd["/world/cloud"], "Points3D:positions")) == [0, 1, 2, 3]
    assert sorted(column(rrd["/world/predicted"], "Transform3D:translation")) == [0, 1, 2]
    assert column(rrd["/world/predicted"], "Clear:is_recursive") == {3: [True]}  # no stale prediction at the end
    assert sorted(column(rrd["/views/stage1/top/image"], "Image:buffer")) == [0, 1, 2]
    instruction = column(rrd["/instruction"], "TextDocument:text")[None][0]
    assert "pick_fake" in instruction and "do pick_fake number 1" in instruction


def test_rollout_keyposes_are_the_ones_executed_and_the_expert_plan(rollout):
    rrd, env, plan = rollout["rrd"], rollout["env"], rollout["plan"]
    pred = column(rrd["/world/predicted"], "Transform3D:translation")
    quat = column(rrd["/world/predicted"], "Transform3D:quaternion")
    grip = column(rrd["/world/predicted"], "gripper_open")
    ref = column(rrd["/world/reference"], "Transform3D:translation")
    ref_grip = column(rrd["/world/reference"], "gripper_open")
    err = column(rrd["/errors/position_cm"], "Scalars:scalars")
    for k, kp in enumerate(env.stepped):
        np.testing.assert_allclose(pred[k][0], kp.position, atol=1e-6)  # float32 in the recording
        q = kp.quaternion / np.linalg.norm(kp.quaternion)
        assert min(np.abs(np.asarray(quat[k][0]) - q).max(), np.abs(np.asarray(quat[k][0]) + q).max()) < 1e-6
        assert grip[k] == [kp.gripper_open]
        np.testing.assert_allclose(ref[k][0], plan[k].position, atol=1e-6)
        assert ref_grip[k] == [plan[k].gripper_open]
        assert err[k][0] == pytest.approx(np.linalg.norm(kp.position - plan[k].position) * 100, rel=1e-6)


def test_rollout_cloud_views_and_scores(rollout, policy):
    rrd = rollout["rrd"]
    clouds = column(rrd["/world/cloud"], "Points3D:positions")
    # keypose 0 renders the reset observation's cloud: every camera's valid points inside the bounds
    want, _ = observation_cloud(rollout["first_obs"], BOUNDS)
    assert len(clouds[0]) == len(want) > 100
    np.testing.assert_allclose(np.asarray(clouds[0]), want, atol=1e-6)
    scores = column(rrd["/world/score/stage1"], "score")
    for k in (0, 1, 2):
        s = np.asarray(scores[k])
        assert s.shape == (len(clouds[k]),) and (s >= 0).all() and (s <= 1).all() and s.max() > 0
    size = policy.image_size
    buf, fmt = column(rrd["/views/stage1/top/image"], "Image:buffer"), column(rrd["/views/stage1/top/image"],
                                                                               "Image:format")
    assert image((buf[0], fmt[0])).shape == (size, size, 3)
    heat = column(rrd["/views/stage2/front/heatmap"], "Image:buffer")
    hfmt = column(rrd["/views/stage2/front/heatmap"], "Image:format")
    assert image((heat[1], hfmt[1])).shape == (size, size, 4)
    # the stage-1 point drawn in 3D projects onto the point drawn in each stage-1 view (rerun's 2D frame: +0.5)
    p1 = np.asarray(column(rrd["/world/stage1"], "Points3D:positions")[0][0], dtype=np.float64)
    uv = project(world_to_cube(torch.from_numpy(p1), policy.bounds), size)[:, :2].numpy()
    for v, name in enumerate(("top", "front", "side")):
        got = np.asarray(column(rrd[f"/views/stage1/{name}/point"], "Points2D:positions")[0][0])
        np.testing.assert_allclose(got - 0.5, uv[v], atol=1e-3)


def test_rollout_trajectory_is_every_tick_the_arm_moved(rollout):
    rrd, env = rollout["rrd"], rollout["env"]
    strips = column(rrd["/world/trajectory"], "LineStrips3D:strips")
    was_open, ticks = True, []
    for kp in env.stepped:  # FakeDemoEnv: TICKS_PER_MOVE ticks per move, plus GRIPPER_TICKS when the gripper changes
        ticks.append(TICKS_PER_MOVE + (GRIPPER_TICKS if kp.gripper_open != was_open else 0))
        was_open = kp.gripper_open
    assert [len(strips[k][0]) for k in (0, 1, 2)] == list(np.cumsum(ticks))
    # each move ends on its keypose (FakeDemoEnv's gripper sits exactly at the target)
    end = np.cumsum(ticks) - 1
    for k, kp in enumerate(env.stepped):
        np.testing.assert_allclose(strips[2][0][end[k]], kp.position, atol=1e-5)


def test_keypose_errors_by_hand():
    from benchmarks.protocol import Keypose

    a = Keypose([0.1, 0.2, 0.3], [0, 0, 0, 1], True, False)
    b = Keypose([0.1, 0.2, 0.33], [0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)], False, False)  # 45 degrees about z
    e = keypose_errors(a, b, stage1=np.array([0.1, 0.24, 0.33]))
    assert e == pytest.approx({"position_cm": 3.0, "stage1_cm": 4.0, "rotation_deg": 45.0, "gripper_agrees": 0.0,
                               "collision_agrees": 1.0})


@pytest.fixture(scope="module")
def demo():
    episode, result = record_episode(FakeDemoEnv(image_size=20), "pick_fake", 4, image_every=4)
    assert result.success and episode.aligned
    return episode


def test_dataset_episode_recording_compares_with_the_stored_keyposes(demo, policy, tmp_path):
    path = tmp_path / "demo.rrd"
    log = RerunEpisodeLog(path)
    out = inspect_dataset_episode(demo, policy, log, BOUNDS)
    log.close()
    rrd = read_rrd(path)
    starts = [0, *demo.keyframes[:-1]]
    assert sorted(column(rrd["/world/cloud"], "Points3D:positions")) == list(range(len(starts) + 1))
    ref = column(rrd["/world/reference"], "Transform3D:translation")
    for j, kp in enumerate(demo.keyposes):
        np.testing.assert_allclose(ref[j][0], kp.position, atol=1e-6)
    clouds = column(rrd["/world/cloud"], "Points3D:positions")
    assert len(clouds[1]) == len(observation_cloud(demo.frame(starts[1]), BOUNDS)[0])
    # the trajectory is the recorded gripper stream from each start to its keyframe
    strips = column(rrd["/world/trajectory"], "LineStrips3D:strips")
    np.testing.assert_allclose(np.asarray(strips[len(starts) - 1][0]), demo.gripper_pose[1:demo.keyframes[-1] + 1, :3],
                               atol=1e-6)
    assert out["keyposes"] == len(starts) and set(out["mean_errors"]) >= {"position_cm", "rotation_deg"}
    assert "**expert**" in column(rrd["/status"], "TextDocument:text")[0][0]


def test_robot_run_without_a_policy_shows_the_executed_keyposes(demo, tmp_path):
    demo.extra["source"] = "robot"  # how the robot runner marks its episode logs
    try:
        sink = CollectingSink()
        inspect_dataset_episode(demo, None, sink, BOUNDS)
    finally:
        del demo.extra["source"]
    assert sink.header.source == "robot" and sink.header.reference == "executed"
    assert all(s.predicted is None and not s.stages and not s.errors for s in sink.steps)
    assert [s.reference.position.tolist() for s in sink.steps[:-1]] == [k.position.tolist() for k in demo.keyposes]
    assert sink.steps[-1].final and sink.steps[-1].reference is None


def test_inspect_config_and_episode_lookup_errors_name_the_problem(tmp_path, demo):
    with pytest.raises(ValueError, match="task"):
        InspectConfig()
    with pytest.raises(ValueError, match="checkpoint"):
        InspectConfig(task="lift_block")
    with pytest.raises(ValueError, match="agent"):
        InspectConfig(task="lift_block", agent="oracle")
    with pytest.raises(ValueError, match="out"):
        InspectConfig(task="lift_block", agent="expert", out=None)
    save_episode(demo, tmp_path / "pick_fake" / "episode_00004")
    assert find_episode_folder(tmp_path, "pick_fake", 4) == tmp_path / "pick_fake" / "episode_00004"
    assert find_episode_folder(tmp_path / "pick_fake" / "episode_00004") == tmp_path / "pick_fake" / "episode_00004"
    with pytest.raises(ValueError, match="no episode 7"):
        find_episode_folder(tmp_path, "pick_fake", 7)
    with pytest.raises(ValueError, match="not an episode folder"):
        find_episode_folder(tmp_path)
