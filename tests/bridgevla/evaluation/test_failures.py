"""Failure categories and their table, on records whose reasons are known (the embedded env's real messages)."""

from __future__ import annotations

import json

from bridgevla.evaluation.failures import (
    OUT_OF_KEYPOSES,
    failure_category,
    failure_counts,
    failure_markdown,
    write_failures,
)


def _rec(task: str, success: bool, error: str | None, agent: str = "policy") -> dict:
    return {"agent": agent, "task": task, "seed": 0, "episode": 0, "success": success, "error": error}


def test_each_message_gets_its_category():
    cases = {
        None: OUT_OF_KEYPOSES,
        "no inverse-kinematics solution for position [0.9, 0.0, 1.2]": "unreachable (no IK solution)",
        "the keypose itself is in collision": "keypose in collision",
        "every planned path collides (direct and lifted detours)": "no collision-free path",
        "agent: RuntimeError: boom": "agent error",
        "reset: ValueError: bad seed": "reset error",
        "invalid keypose (non-finite or zero quaternion)": "invalid keypose",
        "env: RuntimeError: segfault-ish": "simulator error",
        "internal error: KeyError: 'x'": "simulator error",
        "keypose position [1.5, 0, 1] is outside the workspace": "outside the workspace",
        # the runner's guard message, verbatim in form (benchmarks.protocol.WorkspaceGuard)
        "invalid keypose: keypose outside the workspace: requested position [0.9, 0, 1] lies 0.200 m outside the "
        "allowed box [-0.3, -0.5, 0.6]..[0.7, 0.5, 1.6] (tolerance 0.02 m)": "outside the workspace",
        "invalid keypose: keypose has non-finite values: position [nan, 0, 1]": "invalid keypose",
        "something nobody expected": "other error",
        # the CoppeliaSim harnesses' messages (benchmarks/rlbench/harness.py, the runner's restarts)
        "IKError: no IK solution found": "unreachable (no IK solution)",
        "InvalidActionError: A path could not be found because the target is outside of workspace.":
            "outside the workspace",
        "InvalidActionError: A path could not be found. Most likely due to the target being inaccessible or a "
        "collison was detected.": "no collision-free path",
        "simulator: rlbench simulator failed during step: RuntimeError: simStep": "simulator error",
        "worker process died (simulator crash?)": "simulator error",
        "Ray worker died (simulator crash?): RayActorError": "simulator error",
        "task failure condition": "task failure condition",
    }
    for error, category in cases.items():
        assert failure_category(_rec("t", False, error)) == category, error
    assert failure_category(_rec("t", True, None)) is None


def test_counts_and_table_by_hand(tmp_path):
    records = [_rec("lift", True, None), _rec("lift", False, None), _rec("lift", False, None),
               _rec("lift", False, "the keypose itself is in collision"), _rec("slide", True, None),
               _rec("slide", False, "agent: ValueError: x", agent="random")]
    counts = failure_counts(records)
    assert counts == {"policy": {"lift": {OUT_OF_KEYPOSES: 2, "keypose in collision": 1}},
                      "random": {"slide": {"agent error": 1}}}
    md = failure_markdown(records)
    assert f"| task | episodes | failed | {OUT_OF_KEYPOSES} | keypose in collision |" in md
    assert "| lift | 4 | 3 | 2 | 1 |" in md and "| slide | 1 | 1 | 1 |" in md
    paths = write_failures(records, tmp_path)
    assert json.loads(paths["json"].read_text()) == counts
    assert failure_markdown([_rec("lift", True, None)]) == "No failed episodes.\n"


def test_an_environments_diagnosis_splits_episodes_without_an_error():
    def rec(diagnosis, error=None):
        return {**_rec("lift", False, error), "diagnosis": diagnosis}

    assert failure_category(rec("moved a distractor: holding block1")) == "wrong object (moved a distractor)"
    assert failure_category(rec("moved the task's objects without reaching the goal")) == \
        "right object, goal not reached (place, order or precision)"
    assert failure_category(rec("moved the task's objects without reaching the goal: block 3.2 cm from target0, "
                                "15.0 cm at the start")) == "right object, goal not reached (place, order or precision)"
    assert failure_category(rec("moved the task's objects away from the goal: block 41.9 cm from target0, 15.0 cm at "
                                "the start")) == "right object, knocked away (further from the goal than at the start)"
    assert failure_category(rec("moved the task's objects to the wrong place: block nearest target2, the goal is "
                                "target0 (21.0 cm away)")) == \
        "right object, wrong place (nearer another of the task's places)"
    assert failure_category(rec("no object moved")) == "nothing moved (missed every object)"
    # the CoppeliaSim harnesses cannot tell the task's object from a distractor: neither right nor wrong is claimed
    assert failure_category(rec("moved objects without reaching the goal: cube (holding cube)")) == \
        "objects moved, goal not reached (right or wrong object unknown)"
    assert failure_category(rec("something new")) == OUT_OF_KEYPOSES  # an unknown diagnosis keeps the old category
    # an error explains the failure better than what the scene looks like afterwards
    assert failure_category(rec("no object moved", "the keypose itself is in collision")) == "keypose in collision"


def test_the_runner_records_the_embedded_envs_diagnosis(tmp_path):
    from bridgevla.evaluation.runner import EvalConfig, evaluate

    cfg = EvalConfig(benchmark="embedded", agents=["random", "expert"], tasks=["lift_block"], episodes=2,
                     workers=1, out_dir=str(tmp_path), progress=False)
    records = evaluate(cfg)
    random = [r for r in records if r["agent"] == "random"]
    failed = [r for r in random if not r["success"] and r["keyposes"]]
    assert failed and all(r["diagnosis"] == "no object moved" or r["diagnosis"].startswith("moved ")
                          for r in failed)
    assert all("diagnosis" not in r for r in records if r["agent"] == "expert")  # successes get none
