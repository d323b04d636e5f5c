"""Suites through the evaluation runner: the embedded perturbation and level suites, their tables and files."""

from __future__ import annotations

import json

import pytest

from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
from benchmarks.embedded import perturbations as pert
from bridgevla.configuration import ConfigError, load_config
from bridgevla.evaluation.report import suite_tables, write_suite_report
from bridgevla.evaluation.runner import EvalConfig, evaluate
from bridgevla.scripts.cli import main


def _records(agent: str, rows: list[tuple[str, int, bool]]) -> list[dict]:
    return [{"agent": agent, "task": t, "seed": s, "episode": i, "success": ok} for i, (t, s, ok) in enumerate(rows)]


def test_suite_report_splits_agents_and_writes_every_file(tmp_path):
    # policy: lift_block 1/2 unperturbed in seed 0, 2/2 in seed 1; lift_block@all 0/2 then 1/2.
    recs = _records("policy", [("lift_block", 0, True), ("lift_block", 0, False), ("lift_block", 1, True),
                               ("lift_block", 1, True), ("lift_block@all", 0, False), ("lift_block@all", 0, False),
                               ("lift_block@all", 1, True), ("lift_block@all", 1, False)])
    recs += _records("expert", [("lift_block", 0, True), ("lift_block@all", 0, True)])
    tables, paths = write_suite_report(recs, "embedded", "perturbations", tmp_path)
    assert set(tables) == {"policy", "expert"}
    t = tables["policy"]
    assert t.columns[pert.NONE].mean == pytest.approx(0.75) and t.columns[pert.ALL].mean == pytest.approx(0.25)
    # Only "all" of the averaged columns has data: the average is that column.
    assert t.average.mean == pytest.approx(0.25) and t.average.n == 2
    assert t.cells.keys() == {("lift_block", "none"), ("lift_block", "all")}
    js = json.loads(paths["json"].read_text())
    assert js["expert"]["average"] == 1.0 and js["policy"]["columns"]["none"] == pytest.approx(0.75)
    csv = paths["csv"].read_text().splitlines()
    assert csv[0] == "agent,task,factor,mean,std,seeds" and "policy,lift_block,all,25.00,35.36,2" in csv
    assert "## policy" in paths["md"].read_text() and paths["png"].stat().st_size > 1000


def test_level_suite_table_from_records():
    recs = _records("policy", [("lift_block", 0, True), ("lift_cylinder", 0, False), ("turn_tap_knobs", 0, True),
                               ("push_buttons_4", 0, False)])
    t = suite_tables(recs, "embedded", "levels")["policy"]
    assert [t.per_level[lv].mean for lv in ("L1", "L2", "L3", "L4")] == [1.0, 0.0, 1.0, 0.0]
    assert t.average.mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match="in no level"):
        suite_tables(_records("p", [("lift_block@all", 0, True)]), "embedded", "levels")


def test_suite_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="suite"):
        load_config(EvalConfig, None, ["suite=colours", "agents=[expert]"])
    with pytest.raises(ConfigError, match="suite"):
        load_config(EvalConfig, None, ["suite=levels", "env.suite=levels", "agents=[expert]"])
    with pytest.raises(ConfigError, match="not a suite of benchmark"):
        load_config(EvalConfig, None, ["benchmark=tests.bridgevla.evaluation.test_runner:make_fake_env",
                                       "suite=levels", "agents=[expert]"])


def test_levels_suite_runs_through_the_runner_and_the_cli(tmp_path, capsys):
    cfg = EvalConfig(suite="levels", agents=["expert"], episodes=1, seeds=[0], progress=False,
                     out_dir=str(tmp_path / "a"), env={"suite_tasks": ["lift_block", "lift_cylinder"]})
    recs = evaluate(cfg)
    assert [r["task"] for r in recs] == ["lift_block", "lift_cylinder"] and all(r["success"] for r in recs)
    rc = main(["eval", "--benchmark", "embedded", "--suite", "perturbations", "--agents", "expert", "--episodes", "1",
               "--tasks", "lift_block,lift_block@all", "--out", str(tmp_path / "b"), "progress=false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| task | No_Perturbation | All | MO_Color |" in out and "| lift_block | 100.0 | 100.0 | – |" in out
    assert (tmp_path / "b" / "suite.png").exists()
    # The suite restricted to one task: 16 columns less the three receiver factors (lift_block has no receiver)
    # and MO colour (its block is named by its colour).
    cells = EmbeddedEnv(EmbeddedConfig(suite="perturbations", suite_tasks=("lift_block",))).tasks()
    assert len(cells) == 12 and "lift_block" in cells and "lift_block@mo_colour" not in cells
