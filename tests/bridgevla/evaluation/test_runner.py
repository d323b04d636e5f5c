"""Evaluation runner on a fake environment that follows the protocol: outcomes, resume, workers, reports, errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.protocol import Keypose, Observation, StepResult
from bridgevla.configuration import ConfigError, from_dict
from bridgevla.evaluation.report import markdown_table, success_json, summarise, write_report
from bridgevla.evaluation.runner import EPISODES_FILE, EvalConfig, evaluate, read_done

FAKE = "tests.bridgevla.evaluation.test_runner:make_fake_env"


class FakeEnv:
    """Reach a seeded random point (within 3 cm); 'press_twice' needs a closed then an open keypose there.
    Options: ``log`` (a file that gets one line per reset, across processes), ``crash_on_reset`` (raise
    KeyboardInterrupt on that reset number, as a kill would), ``no_expert``, ``camera`` (add one RGB-D camera)."""

    def __init__(self, options: dict) -> None:
        self.log = options.get("log")
        self.crash_on = options.get("crash_on_reset", -1)
        self.camera = bool(options.get("camera", False))
        self.resets = 0
        self.task, self.target, self.presses, self.steps = "", np.zeros(3), 0, 0

    def tasks(self) -> list[str]:
        return ["reach_red", "reach_blue", "press_twice"]

    def variations(self, task: str) -> int:
        return 2

    def _obs(self) -> Observation:
        from tests.bridgevla.data.test_dataset import _camera

        cameras = {"front": _camera(3)} if self.camera else {}
        return Observation(cameras, np.array([0, 0, 1.0, 0, 0, 0, 1]), 1.0, np.zeros(7), np.zeros(7), ["reach"],
                           task=self.task)

    def reset(self, task: str, variation: int, seed: int) -> Observation:
        self.resets += 1
        if self.resets == self.crash_on:
            raise KeyboardInterrupt("simulated kill")
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{task} {variation} {seed}\n")
        rng = np.random.default_rng(seed)
        self.task, self.presses, self.steps = task, 0, 0
        self.target = np.array([-0.2, -0.4, 0.7]) + rng.random(3) * np.array([0.8, 0.8, 0.8])
        return self._obs()

    def step(self, kp: Keypose) -> StepResult:
        self.steps += 1
        if kp.position[2] < 0.7:
            return StepResult(self._obs(), False, True, {"error": "below the table"})
        near = np.linalg.norm(kp.position - self.target) < 0.03
        if self.task == "press_twice":
            if near and self.presses == 0 and not kp.gripper_open:
                self.presses = 1
            elif near and self.presses == 1 and kp.gripper_open:
                return StepResult(self._obs(), True, True, {})
            return StepResult(self._obs(), False, self.steps >= 25, {})
        return StepResult(self._obs(), bool(near), bool(near) or self.steps >= 25, {})

    def expert_keyposes(self) -> list[Keypose]:
        q = np.array([0, 0, 0, 1.0])
        if self.task == "press_twice":
            return [Keypose(self.target, q, False, True), Keypose(self.target, q, True, True)]
        return [Keypose(self.target, q, True, True)]

    def close(self) -> None:
        pass


class NoExpertEnv(FakeEnv):
    expert_keyposes = None


def make_fake_env(options: dict) -> FakeEnv:
    return NoExpertEnv(options) if options.get("no_expert") else FakeEnv(options)


def _cfg(tmp_path: Path, **kw) -> EvalConfig:
    base = dict(benchmark=FAKE, agents=["expert", "random"], episodes=4, seeds=[0, 1], out_dir=str(tmp_path / "ev"),
                progress=False, env={"log": str(tmp_path / "resets.log")})
    base.update(kw)
    return EvalConfig(**base)


def _strip(records):
    return sorted((r["agent"], r["task"], r["seed"], r["episode"], r["success"], r["keyposes"], r["env_seed"],
                   r["variation"]) for r in records)


def test_expert_succeeds_random_fails_and_episodes_are_laid_out_as_documented(tmp_path):
    recs = evaluate(_cfg(tmp_path), allow_code=True)
    assert len(recs) == 2 * 3 * 2 * 4
    assert all(r["success"] for r in recs if r["agent"] == "expert")
    assert not any(r["success"] for r in recs if r["agent"] == "random")
    press = [r for r in recs if r["agent"] == "expert" and r["task"] == "press_twice"]
    assert {r["keyposes"] for r in press} == {2}
    r = next(r for r in recs if r["seed"] == 1 and r["episode"] == 3)
    assert (r["env_seed"], r["variation"]) == (1_000_000 + 10_000 + 3, 1)
    lines = (tmp_path / "ev" / EPISODES_FILE).read_text().splitlines()
    assert len(lines) == len(recs)
    random_errors = [r["error"] for r in recs if r["agent"] == "random" and r["error"]]
    assert random_errors and set(random_errors) == {"below the table"}  # env-reported failures are recorded


def test_a_killed_evaluation_resumes_without_redoing_finished_episodes(tmp_path):
    cfg = _cfg(tmp_path, env={"log": str(tmp_path / "resets.log"), "crash_on_reset": 10})
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, allow_code=True)
    finished = read_done(tmp_path / "ev" / EPISODES_FILE)
    assert len(finished) == 9
    with (tmp_path / "ev" / EPISODES_FILE).open("a") as f:
        f.write('{"agent": "expert", "task": "reac')  # torn line from a kill mid-write
    recs = evaluate(_cfg(tmp_path), allow_code=True)
    assert len(recs) == 48
    resets = (tmp_path / "resets.log").read_text().splitlines()
    assert len(resets) == 48  # 9 before the kill + 39 after: nothing finished was redone
    assert _strip(recs) == _strip(evaluate(_cfg(tmp_path / "fresh"), allow_code=True))
    assert len((tmp_path / "ev" / EPISODES_FILE).read_text().splitlines()) == 48


def test_parallel_workers_give_the_same_records_as_one_process(tmp_path):
    one = evaluate(_cfg(tmp_path / "a", episodes=2, seeds=[0], agents=["expert", "random"]), allow_code=True)
    two = evaluate(_cfg(tmp_path / "b", episodes=2, seeds=[0], agents=["expert", "random"], workers=2),
                   allow_code=True)
    assert _strip(one) == _strip(two)


def test_invalid_and_crashing_agents_fail_their_episodes(tmp_path, monkeypatch):
    import bridgevla.evaluation.agents as agents

    def nan_act(self, obs):
        return Keypose([math.nan, 0, 1], [0, 0, 0, 1], True, True)

    monkeypatch.setattr(agents.RandomKeyposeAgent, "act", nan_act)
    recs = evaluate(_cfg(tmp_path, agents=["random"], episodes=1, seeds=[0]), allow_code=True)
    assert all(not r["success"] and r["error"].startswith("invalid keypose") for r in recs)

    def boom(self, obs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(agents.RandomKeyposeAgent, "act", boom)
    recs = evaluate(_cfg(tmp_path / "2", agents=["random"], episodes=1, seeds=[0]), allow_code=True)
    assert all(r["error"] == "agent: RuntimeError: kaboom" for r in recs)


def test_summary_matches_hand_computed_mean_and_std(tmp_path):
    recs = []
    outcome = {("a", 0): [1, 1, 0, 0], ("a", 1): [1, 1, 1, 1], ("b", 0): [0, 0, 0, 1], ("b", 1): [0, 0, 0, 0]}
    for (task, seed), succ in outcome.items():
        for e, s in enumerate(succ):
            recs.append({"agent": "policy", "task": task, "seed": seed, "episode": e, "success": bool(s),
                         "error": None if s else "x"})
    summary = summarise(recs)
    a = summary["policy"]["a"]
    assert a.per_seed == [0.5, 1.0] and a.mean == pytest.approx(0.75) and a.std == pytest.approx(math.sqrt(0.125))
    m = summary["policy"]["mean"]
    assert m.per_seed == pytest.approx([0.375, 0.5]) and m.mean == pytest.approx(0.4375)
    assert m.errors == 9  # failures: 2 + 0 + 3 + 4
    md = markdown_table(summary)
    assert "| a | 75.0 ± 35.4 |" in md and "| **mean** | **43.8 ± 8.8** |" in md
    assert success_json(summary, "policy") == {"a": 0.75, "b": 0.125, "mean": 0.4375}
    paths = write_report(summary, tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(r["task"], r["success_mean"]) for r in rows] == [("a", "0.7500"), ("b", "0.1250"), ("mean", "0.4375")]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["policy"]["mean"] == 0.4375


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"episodes": 0}, "eval.episodes"),
        ({"agents": ["oracle"]}, "eval.agents"),
        ({"agents": ["policy"]}, "eval.checkpoint"),
        ({"agents": ["policy"], "checkpoint": "/no/such/dir"}, "eval.checkpoint"),
        ({"seeds": []}, "eval.seeds"),
        ({"seeds": [1, 1]}, "eval.seeds"),
        ({"workers": 0}, "eval.workers"),
        ({"bounds": [0, 1], "agents": ["random"]}, "eval.bounds"),
        ({"runtime": {"heatmap_sigma": 3.0}}, "eval.runtime"),  # a model setting, not a speed one
    ],
)
def test_bad_eval_config_values_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(EvalConfig, data)


def test_unknown_benchmark_task_or_missing_expert_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="benchmark"):
        evaluate(_cfg(tmp_path, benchmark="nope"))
    with pytest.raises(ValueError, match="benchmark"):
        evaluate(_cfg(tmp_path, benchmark="tests.bridgevla.evaluation.test_runner:missing"), allow_code=True)
    with pytest.raises(ValueError, match="eval.tasks"):
        evaluate(_cfg(tmp_path, tasks=["fly"]), allow_code=True)
    with pytest.raises(ValueError, match="expert"):
        evaluate(_cfg(tmp_path, env={"no_expert": True}), allow_code=True)
    # module:factory runs code: refused unless asked for, before anything is imported.
    with pytest.raises(ValueError, match="allow-code"):
        evaluate(_cfg(tmp_path))


def test_resume_never_drops_unknown_valid_lines_and_quarantines_corrupt_ones(tmp_path):
    cfg = _cfg(tmp_path, agents=["expert"], episodes=2, seeds=[0])
    evaluate(cfg, allow_code=True)
    path = tmp_path / "ev" / EPISODES_FILE
    lines = path.read_text().splitlines()
    corrupted = lines[1].replace('"success": true', '"success": tru3')
    note = '{"comment": "appended by a human", "agent": "expert"}'
    path.write_text("\n".join([lines[0], note, corrupted, *lines[2:]]) + "\n")
    with pytest.warns(UserWarning, match="1 unreadable line"):
        recs = evaluate(cfg, allow_code=True)
    after = path.read_text().splitlines()
    assert note in after and lines[0] in after  # nothing valid is dropped
    assert (tmp_path / "ev" / (EPISODES_FILE + ".rejected")).read_text() == corrupted + "\n"
    assert len(recs) == 6 and len(after) == 7  # the corrupted episode was re-run and appended


def test_keyposes_outside_the_workspace_fail_the_episode_quoting_requested_vs_allowed(tmp_path, monkeypatch):
    import bridgevla.evaluation.agents as agents

    far = lambda self, obs: Keypose([0.2, 0.0, 1.9], [0, 0, 0, 1], True, True)  # noqa: E731 - 30 cm above
    monkeypatch.setattr(agents.RandomKeyposeAgent, "act", far)
    recs = evaluate(_cfg(tmp_path, agents=["random"], episodes=1, seeds=[0]), allow_code=True)
    assert all("requested position (0.200, 0.000, 1.900)" in r["error"] for r in recs)
    assert all("(-0.300, -0.500, 0.600)..(0.700, 0.500, 1.600)" in r["error"] for r in recs)
    near = lambda self, obs: Keypose([0.2, 0.0, 0.59], [0, 0, 0, 1], True, True)  # noqa: E731 - 1 cm below
    monkeypatch.setattr(agents.RandomKeyposeAgent, "act", near)
    recs = evaluate(_cfg(tmp_path / "2", agents=["random"], episodes=1, seeds=[0], max_keyposes=2), allow_code=True)
    # Clamped to z = 0.6, which FakeEnv still calls below the table (z < 0.7): a failure the env reports, not the guard.
    assert all(r["clamped"] == 1 and r["error"] == "below the table" for r in recs)


def test_runtime_settings_reach_the_loaded_policy(tmp_path):
    from bridgevla.evaluation.agents import AgentSpec, make_agent
    from tests.bridgevla.model_helpers import tiny_policy

    ckpt = tiny_policy(seed=0).save_pretrained(tmp_path / "p")
    plain = make_agent(AgentSpec("policy", str(ckpt), "cpu"))
    eager = make_agent(AgentSpec("policy", str(ckpt), "cpu", runtime={"attn_implementation": "eager"}))
    assert plain.policy.config.attn_implementation == "sdpa" and eager.policy.config.attn_implementation == "eager"
    cfg = EvalConfig(checkpoint=str(ckpt), agents=["policy"], runtime={"attn_implementation": "eager"})
    assert cfg.runtime == {"attn_implementation": "eager"}
