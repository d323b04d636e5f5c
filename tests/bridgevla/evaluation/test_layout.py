"""Success by layout (bridgevla/evaluation/layout.py): hand-computed features, counting, and the two sources of a
plan (a demo's recorded keyposes, the expert re-planning the same scene) agreeing on the real embedded benchmark."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from bridgevla.evaluation.layout import (
    demo_features,
    episode_features,
    layout_counts,
    layout_markdown,
    plan_features,
    write_layout,
)


@pytest.mark.parametrize(("positions", "side", "direction"), [
    # travel (-0.10, +0.05): x dominates, negative
    ([[0.30, -0.10, 0.80], [0.30, -0.10, 0.85], [0.20, -0.05, 0.80]], "-y", "-x"),
    # travel (+0.01, +0.20) from a start on the plane (y = 0 counts as +y)
    ([[0.40, 0.00, 0.80], [0.41, 0.20, 0.80]], "+y", "+y"),
    # travel 0.03 m < min_travel (a lift straight up): in place
    ([[0.40, 0.15, 0.80], [0.42, 0.13, 1.10]], "+y", "in place"),
    ([[0.40, 0.15, 0.80]], "+y", "in place"),  # one keypose
    ([[0.40, 0.15, 0.80], [0.40, -0.10, 0.80]], "+y", "-y"),
])
def test_plan_features_by_hand(positions, side, direction):
    assert plan_features(np.array(positions)) == {"side": side, "direction": direction}


def test_plane_and_min_travel_are_honoured():
    p = np.array([[0.3, 0.05, 0.8], [0.33, 0.05, 0.8]])
    assert plan_features(p, plane_y=0.1)["side"] == "-y"
    assert plan_features(p, min_travel=0.02)["direction"] == "+x"
    assert plan_features(p, min_travel=0.04)["direction"] == "in place"


@pytest.mark.parametrize(("positions", "match"), [(np.zeros((0, 3)), "K >= 1"), (np.zeros((2, 2)), "shape"),
                                                  (np.array([[0.0, np.nan, 0.0]]), "non-finite")])
def test_bad_plans_are_refused(positions, match):
    with pytest.raises(ValueError, match=match):
        plan_features(positions)


class _Planner:
    """Scenes whose expert plan is read off a table; counts resets."""

    def __init__(self, plans):
        self.plans, self.resets, self._key = plans, [], None

    def reset(self, task, variation, seed):
        self.resets.append((task, variation, seed))
        self._key = (task, variation, seed)

    def expert_keyposes(self):
        return [SimpleNamespace(position=np.array(p)) for p in self.plans[self._key]]


def _record(agent, task, env_seed, success, variation=0):
    return {"agent": agent, "task": task, "variation": variation, "env_seed": env_seed, "success": success}


def test_counts_per_agent_task_and_layout_with_one_plan_per_scene():
    plans = {("push", 0, 1): [[0.3, 0.1, 0.8], [0.3, 0.3, 0.8]],     # +y side, pushes +y
             ("push", 0, 2): [[0.3, -0.1, 0.8], [0.3, -0.3, 0.8]],   # -y side, pushes -y
             ("push", 0, 3): [[0.3, -0.2, 0.8], [0.1, -0.2, 0.8]]}   # -y side, pushes -x
    records = [_record("policy", "push", 1, True), _record("policy", "push", 2, False),
               _record("policy", "push", 3, False), _record("random", "push", 1, False),
               _record("random", "push", 2, False), _record("random", "push", 3, True)]
    planner = _Planner(plans)
    features = episode_features(records, planner)
    assert sorted(planner.resets) == sorted(plans)  # each scene planned once, whatever the agents
    demos = [{"task": "push", "side": "+y", "direction": "+y"}, {"task": "push", "side": "+y", "direction": "+x"}]
    counts = layout_counts(records, features, demos)
    policy = counts["agents"]["policy"]["push"]
    assert policy["side"] == {"+y": {"episodes": 1, "failed": 0}, "-y": {"episodes": 2, "failed": 2}}
    assert policy["direction"] == {"+y": {"episodes": 1, "failed": 0}, "-y": {"episodes": 1, "failed": 1},
                                   "-x": {"episodes": 1, "failed": 1}}
    assert counts["agents"]["random"]["push"]["side"]["-y"] == {"episodes": 2, "failed": 1}
    assert counts["demos"] == {"push": {"side": {"+y": 2}, "direction": {"+y": 1, "+x": 1}}}
    md = layout_markdown(counts)
    assert "| push | -y | 0 | 2 | 2 | 0.0 |" in md  # side table: no demo there, both episodes failed
    assert "| push | +x | 1 | 0 | 0 | – |" in md  # a demo's direction no test scene had


def test_agents_without_failures_get_one_line_and_missing_keys_are_named():
    counts = layout_counts([_record("expert", "push", 1, True)], {("push", 0, 1): {"side": "+y", "direction": "+y"}})
    assert layout_markdown(counts) == "**expert**: no failed episodes.\n"
    with pytest.raises(ValueError, match="env_seed"):
        episode_features([{"agent": "policy", "task": "push", "variation": 0}], _Planner({}))


def test_recorded_demos_and_the_replanned_scene_agree_on_the_embedded_benchmark(tmp_path):
    """Generate real demos, then re-plan each demo's own scene (task, variation, seed) as the evaluation does: the
    features from the keyposes written to episode.json and from the expert's fresh plan must be the same."""
    from benchmarks.embedded import EmbeddedEnv
    from benchmarks.generate import GenerateConfig, generate

    tasks = ["slide_block", "lift_block"]
    generate(GenerateConfig(tasks=tasks, episodes=3, out=str(tmp_path / "demos"), image_every=1000))
    recorded = demo_features(tmp_path / "demos")
    assert len(recorded) == 6
    metas = [json.loads(p.read_text()) for p in sorted((tmp_path / "demos").glob("*/episode_*/episode.json"))]
    records = [_record("policy", m["task"], m["seed"], m["index"] % 2 == 0, m["variation"]) for m in metas]
    env = EmbeddedEnv()
    try:
        replanned = episode_features(records, env)
        paths = write_layout(records, env, tmp_path / "eval", tmp_path / "demos")
    finally:
        env.close()
    for m, r in zip(metas, recorded, strict=True):
        assert r["task"] == m["task"]
        assert {k: r[k] for k in ("side", "direction")} == replanned[(m["task"], m["variation"], m["seed"])]
    assert {r["direction"] for r in recorded if r["task"] == "lift_block"} == {"in place"}  # a lift moves up only
    counts = json.loads(paths["json"].read_text())
    assert sum(c["episodes"] for c in counts["agents"]["policy"]["slide_block"]["side"].values()) == 3
    assert sum(counts["demos"]["slide_block"]["side"].values()) == 3


def test_cli_reads_an_evaluation_and_refuses_bad_paths(tmp_path, capsys):
    """`bridgevla layout EPISODES`: the real embedded benchmark re-plans each recorded scene; without --demos the
    table has no demos column; a missing file is a clear error, exit 2."""
    from benchmarks.fileio import write_jsonl
    from bridgevla.scripts.cli import main

    episodes = tmp_path / "episodes.jsonl"
    write_jsonl(episodes, [_record("policy", "lift_block", 1_000_000, False), _record("policy", "lift_block",
                                                                                       1_000_001, True)])
    before = episodes.read_bytes()
    assert main(["layout", str(episodes)]) == 0
    out = capsys.readouterr().out
    assert "| task | side | episodes | failed | success % |" in out
    assert "| lift_block | in place | 2 | 1 | 50.0 |" in out
    assert episodes.read_bytes() == before and (tmp_path / "layout.json").is_file()
    assert main(["layout", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl is not a file" in capsys.readouterr().err
    assert main(["layout", str(episodes), "--demos", str(tmp_path / "none")]) == 2
    assert "--demos" in capsys.readouterr().err


def test_a_damaged_demo_record_is_named(tmp_path):
    bad = tmp_path / "push" / "episode_00000" / "episode.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"task": "push", "keyposes": [{"quaternion": [0, 0, 0, 1]}]}')
    with pytest.raises(ValueError, match="episode_00000/episode.json is not a readable demo record"):
        demo_features(tmp_path)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable demo record"):
        demo_features(tmp_path)
