"""Server + robot runner + safety layer with the embedded simulator as arm and cameras: the same episodes as
`bridgevla eval` on the same seeds, episode logs in the dataset format, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.dataset import list_episodes, load_episode
from bridgevla.evaluation.runner import EvalConfig, evaluate
from bridgevla.scripts.cli import main
from bridgevla.serving.client import LocalPolicy, PolicyClient
from bridgevla.serving.robot import PolicySourceConfig, RobotConfig, SimConfig, run_sim
from bridgevla.serving.safety import SafetyConfig
from bridgevla.serving.server import PolicyServer, ServeConfig
from tests.bridgevla.model_helpers import tiny_policy

ENV = {"image_size": 48, "cameras": ["front", "left_shoulder", "right_shoulder"]}
TASKS = ["open_drawer", "lift_block"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised tiny policy on the embedded workspace (success is not the point: the same episodes
    are): its keyposes move the simulated arm, fail plans, or end episodes, as a weak policy's would."""
    policy = tiny_policy(seed=1, bounds=[-0.1, -0.35, 0.65, 0.6, 0.35, 1.35], max_points=3000)
    return policy, policy.save_pretrained(tmp_path_factory.mktemp("ckpt") / "policy")


def _permissive():
    # Wide enough that the safety layer passes everything `bridgevla eval` would execute (the env clips keyposes
    # into its workspace; a random policy's stage-2 decode lands up to several cm outside its scene bounds).
    return SafetyConfig(workspace=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0], margin=0.0, max_translation=50.0,
                        max_rotation_deg=180.0)


def test_served_runner_reproduces_bridgevla_eval(checkpoint, tmp_path):
    policy, ckpt = checkpoint
    evals = evaluate(EvalConfig(checkpoint=str(ckpt), tasks=TASKS, episodes=2, max_keyposes=4, env=ENV,
                                out_dir=str(tmp_path / "eval"), device="cpu", progress=False))
    cfg = RobotConfig(backend="sim", max_keyposes=4, log_dir=str(tmp_path / "robot"),
                      sim=SimConfig(tasks=TASKS, episodes=2, env=ENV), safety=_permissive())
    with PolicyServer(policy, ServeConfig(port=0), checkpoint=ckpt) as srv, \
            PolicyClient(f"127.0.0.1:{srv.port}") as client:
        records = run_sim(cfg, client)
        assert client.metadata["weights_sha256"] == srv.metadata["weights_sha256"]
    assert len(records) == len(evals) == 4
    for ours, ref in zip(records, evals):
        assert (ours["task"], ours["episode"], ours["env_seed"]) == (ref["task"], ref["episode"], ref["env_seed"])
        assert ours["success"] == ref["success"] and ours["keyposes"] == ref["keyposes"], (ours, ref)
        assert (ours["error"] is None) == (ref["error"] is None), (ours, ref)
    # Every run is an episode folder any dataset reader opens; the keyposes executed are the policy's.
    paths = list_episodes(tmp_path / "robot" / "episodes")
    assert len(paths) == 4
    ep = load_episode(paths[0])
    assert ep.extra["source"] == "bridgevla robot run" and ep.aligned and len(ep) == len(ep.keyposes) + 1
    assert ep.extra["policy"]["weights_sha256"] == srv.metadata["weights_sha256"]
    assert ep.frame(0).cameras and len(ep.image_frames) == len(ep)  # images at every step
    # (The log stores depth at 1 mm like every dataset episode, so re-running the policy on it may differ a little.)
    executed = [p["keypose"] for p in ep.extra["predictions"] if p["status"] == "executed"]
    np.testing.assert_allclose(executed, [k.to_array() for k in ep.keyposes])
    assert {"client_ms", "infer_ms", "transport_ms"} <= set(ep.extra["predictions"][0]["timing"])
    # Resumable like eval: a second run skips the finished episodes.
    with PolicyServer(policy, ServeConfig(port=0)) as srv2, PolicyClient(f"127.0.0.1:{srv2.port}") as client:
        again = run_sim(cfg, client)
        assert srv2.stats["served"] == 0 and [r["success"] for r in again] == [r["success"] for r in records]


def test_a_served_memory_policy_runs_the_same_episodes_as_eval(tmp_path):
    # The runner sends the keyposes executed so far with each request and the stateless server passes them to act():
    # a memory policy then acts as under `bridgevla eval`, whose agent keeps the history itself.
    policy = tiny_policy(seed=2, bounds=[-0.1, -0.35, 0.65, 0.6, 0.35, 1.35], max_points=3000, memory_keyposes=2)
    ckpt = policy.save_pretrained(tmp_path / "policy")
    evals = evaluate(EvalConfig(checkpoint=str(ckpt), tasks=["lift_block"], episodes=2, max_keyposes=4, env=ENV,
                                out_dir=str(tmp_path / "eval"), device="cpu", progress=False))
    cfg = RobotConfig(backend="sim", max_keyposes=4, log_dir=str(tmp_path / "robot"), safety=_permissive(),
                      sim=SimConfig(tasks=["lift_block"], episodes=2, env=ENV))
    received: list[list[np.ndarray]] = []
    act = policy.act
    policy.act = lambda obs, **kw: received.extend([[k.to_array() for k in h] for h in kw["history"]]) or act(obs, **kw)
    with PolicyServer(policy, ServeConfig(port=0, max_batch=1), checkpoint=ckpt) as srv, \
            PolicyClient(f"127.0.0.1:{srv.port}") as client:
        records = run_sim(cfg, client)
    assert [(r["success"], r["keyposes"]) for r in records] == [(r["success"], r["keyposes"]) for r in evals]
    # Request j of an episode carried exactly the j keyposes that episode executed before it.
    episodes = [load_episode(p) for p in list_episodes(tmp_path / "robot" / "episodes")]
    expected = [[k.to_array() for k in ep.keyposes[:j]] for ep in episodes
                for j in range(len(ep.extra["predictions"]))]
    assert len(received) == len(expected) and max(len(h) for h in expected) >= 1
    for got, want in zip(received, expected):
        assert len(got) == len(want) and all(np.allclose(g, w) for g, w in zip(got, want))


def test_rejections_are_logged_and_never_executed(checkpoint, tmp_path):
    policy, _ = checkpoint
    tight = SafetyConfig(workspace=[0.0, 0.0, 0.0, 0.01, 0.01, 0.01], margin=0.0)  # nothing fits
    cfg = RobotConfig(backend="sim", max_keyposes=3, log_dir=str(tmp_path), safety=tight,
                      sim=SimConfig(tasks=["lift_block"], episodes=1, env=ENV))
    (rec,) = run_sim(cfg, LocalPolicy(policy))
    assert rec["end"] == "rejected" and rec["keyposes"] == 0 and "outside the workspace" in rec["error"]
    ep = load_episode(list_episodes(tmp_path / "episodes")[0])
    assert ep.extra["predictions"][0]["status"] == "rejected" and len(ep) == 1 and not ep.keyposes


def test_cli_robot_run_on_the_simulator(checkpoint, tmp_path, capsys):
    _, ckpt = checkpoint
    cfg = tmp_path / "robot.yaml"
    cfg.write_text(json.dumps({"backend": "sim", "max_keyposes": 2, "log_dir": str(tmp_path / "out"),
                               "policy": {"checkpoint": str(ckpt), "device": "cpu"},
                               "safety": {"workspace": [-10, -10, -10, 10, 10, 10], "margin": 0.0,
                                          "max_translation": 50.0, "max_rotation_deg": 180.0},
                               "sim": {"tasks": ["open_drawer"], "episodes": 1, "env": ENV}}))
    assert main(["robot", "run", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "open_drawer" in out and (tmp_path / "out" / "episodes.jsonl").is_file()
    assert main(["robot", "run", "--config", str(cfg), "safety.velocity_factor=0.9"]) == 2  # above the cap
    assert main(["serve", "--checkpoint", str(tmp_path / "missing")]) == 2


def test_policy_source_needs_a_server_or_a_checkpoint():
    from bridgevla.serving.robot import open_source

    with pytest.raises(ValueError, match="policy.server"):
        open_source(PolicySourceConfig())


def test_the_simulated_arm_opens_and_closes_its_gripper_in_place():
    """The recorder's gripper key on the simulated arm: the gripper state flips, the hand stays where it was."""
    from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
    from bridgevla.serving.sim import SimRobot

    robot = SimRobot(EmbeddedEnv(EmbeddedConfig(image_size=32, cameras=["front"])))
    robot.reset("lift_block", 0, 0)
    before = robot.arm.state()
    assert before.gripper_open
    robot.arm.set_gripper(False)
    closed = robot.arm.state()
    assert not closed.gripper_open
    np.testing.assert_allclose(closed.pose[:3], before.pose[:3], atol=0.01)  # within 1 cm: it closed in place
    robot.arm.set_gripper(True)
    assert robot.arm.state().gripper_open
