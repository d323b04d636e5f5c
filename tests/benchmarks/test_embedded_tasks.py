"""Every embedded task: the scripted expert succeeds, a do-nothing episode does not, variations and instructions
are well formed. All 20+ seeds per task run in ``python -m benchmarks.embedded.expert_report`` (docs/tasks.md)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.embedded import TASKS, EmbeddedEnv
from benchmarks.embedded.palette import COLOURS, SEEN_COLOURS, UNSEEN_COLOURS, rgba
from benchmarks.protocol import Keypose


@pytest.fixture(scope="module")
def env():
    e = EmbeddedEnv()
    yield e
    e.close()


def expert_episode(env: EmbeddedEnv, task: str, variation: int, seed: int) -> tuple[bool, int, dict]:
    env.reset(task, variation, seed)
    plan = env.expert_keyposes()
    success, info = False, {}
    for k in plan:
        _, success, done, info = env.step(k)
        if done:
            break
    return success, len(plan), info


def test_at_least_ten_tasks():
    assert len(TASKS) >= 10


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_succeeds_on_a_few_seeds(env, task):
    n = env.variations(task)
    for seed in (1, 2):
        variation = (seed * 7) % n
        success, length, info = expert_episode(env, task, variation, seed)
        assert success, f"{task} v{variation} seed {seed}: {info}"
        assert 2 <= length <= 25
        assert "error" not in info


@pytest.mark.parametrize("task", list(TASKS))
def test_success_is_not_free(env, task):
    """Holding still is never a success: the check looks at the task, not at the episode's length."""
    obs = env.reset(task, 0, 5)
    stay = Keypose(obs.gripper_pose[:3], obs.gripper_pose[3:], True, True)
    _, success, done, info = env.step(stay)
    assert not success and not done, info


@pytest.mark.parametrize("task", list(TASKS))
def test_variations_and_instructions(env, task):
    n = env.variations(task)
    assert n >= 2
    canonical = [env.instructions(task, v)[0] for v in range(n)]
    assert len(set(canonical)) == n  # every variation says something different
    for v in range(n):
        phrasings = env.instructions(task, v)
        assert len(set(phrasings)) >= 3 and all(isinstance(p, str) and p for p in phrasings)


def test_variation_changes_the_goal_not_the_layout_generator(env):
    """Different variations of one seed ask for different targets: slide_block's expert pushes different ways."""
    ends = []
    for v in range(env.variations("slide_block")):
        env.reset("slide_block", v, 3)
        ends.append(env.expert_keyposes()[-1].position[:2])
    assert len({tuple(np.round(e, 3)) for e in ends}) == env.variations("slide_block")


def test_palette_splits_and_errors():
    assert not set(SEEN_COLOURS) & set(UNSEEN_COLOURS)
    assert set(SEEN_COLOURS) | set(UNSEEN_COLOURS) <= set(COLOURS)
    assert rgba("red").shape == (4,)
    with pytest.raises(ValueError, match="colour"):
        rgba("chartreuse")


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_expert_succeeds_on_every_variation(env, task):
    for v in range(env.variations(task)):
        success, _, info = expert_episode(env, task, v, 100 + v)
        assert success, f"{task} v{v}: {info}"


def test_expert_report_writes_resumes_and_flags_failures(tmp_path, capsys):
    from benchmarks.embedded import expert_report

    out = tmp_path / "report.jsonl"
    assert expert_report.main(["--seeds", "2", "--tasks", "slide_block", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert "| slide_block |" in capsys.readouterr().out
    # A rerun with more seeds only runs the missing ones.
    assert expert_report.main(["--seeds", "3", "--tasks", "slide_block", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    # A recorded failure makes the exit status non-zero (a hand edit breaks the line's checksum: it would be
    # quarantined and re-run, so the failure is written as a proper record).
    from benchmarks.fileio import read_jsonl, write_jsonl

    rows = read_jsonl(out).records
    write_jsonl(out, rows[:-1] + [{**rows[-1], "success": False}])
    assert expert_report.main(["--seeds", "3", "--tasks", "slide_block", "--out", str(out)]) == 1
    # A torn last line (a kill mid-write) is quarantined and its episode re-run, not a crash.
    with out.open("a") as f:
        f.write('{"task": "slide_block", "se')
    assert expert_report.main(["--seeds", "3", "--tasks", "slide_block", "--out", str(out)]) == 1
    assert (tmp_path / "report.jsonl.rejected").read_text() == '{"task": "slide_block", "se\n'
    assert len(out.read_text().splitlines()) == 3
    with pytest.raises(ValueError, match="tasks"):
        expert_report.main(["--tasks", "nope", "--out", str(out)])
