"""Suites through the evaluation runner and the CLI: the embedded perturbation and level suites."""

from __future__ import annotations

import json

import pytest

from benchmarks.embedded import EmbeddedConfig, EmbeddedEnv
from bridgevla.configuration import ConfigError, load_config
from bridgevla.evaluation.envs import published_tables
from bridgevla.evaluation.runner import EvalConfig, evaluate
from bridgevla.scripts.cli import main


def test_a_suite_selects_its_table_layout():
    recs = [{"agent": "policy", "task": t, "seed": 0, "episode": 0, "success": ok}
            for t, ok in (("lift_block", True), ("lift_block@all", False))]
    (headline, _) = published_tables("embedded", recs, "perturbations")
    assert headline.cell("policy", "All").mean == 0.0 and headline.cell("policy", "No_Perturbation").mean == 1.0
    assert published_tables("embedded", recs[:1]) is None  # the plain task list: the generic report only
    with pytest.raises(ValueError, match="not a suite of benchmark 'embedded'"):
        published_tables("embedded", recs, "colours")


def test_suite_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="suite"):
        load_config(EvalConfig, None, ["suite=colours", "agents=[expert]"])
    with pytest.raises(ConfigError, match="disagree"):
        load_config(EvalConfig, None, ["suite=levels", "env.suite=perturbations", "agents=[expert]"])
    with pytest.raises(ConfigError, match="not a suite of benchmark"):
        load_config(EvalConfig, None, ["benchmark=tests.bridgevla.evaluation.test_runner:make_fake_env",
                                       "suite=levels", "agents=[expert]"])
    cfg = load_config(EvalConfig, None, ["suite=levels", "agents=[expert]"])
    assert cfg.env == {"suite": "levels"}  # every process's environment lists the suite


def test_levels_suite_runs_through_the_runner_and_the_cli(tmp_path, capsys):
    cfg = EvalConfig(suite="levels", agents=["expert"], episodes=1, seeds=[0], progress=False,
                     out_dir=str(tmp_path / "a"), env={"suite_tasks": ["lift_block", "lift_cylinder"]})
    recs = evaluate(cfg)
    assert [r["task"] for r in recs] == ["lift_block", "lift_cylinder"] and all(r["success"] for r in recs)
    rc = main(["eval", "--benchmark", "embedded", "--suite", "perturbations", "--agents", "expert", "--episodes", "1",
               "--tasks", "lift_block,lift_block@all", "--out", str(tmp_path / "b"), "progress=false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Embedded perturbations (COLOSSEUM layout)" in out and "| expert | 100.0 | 100.0 |" in out
    written = json.loads((tmp_path / "b" / "table.json").read_text())
    assert written[0]["rows"]["expert"]["All"]["mean"] == 1.0
    assert (tmp_path / "b" / "table.png").exists() and (tmp_path / "b" / "results.md").exists()
    # The suite restricted to one task: 16 columns less the three receiver factors (lift_block has no receiver)
    # and MO colour (its block is named by its colour).
    cells = EmbeddedEnv(EmbeddedConfig(suite="perturbations", suite_tasks=("lift_block",))).tasks()
    assert len(cells) == 12 and "lift_block" in cells and "lift_block@mo_colour" not in cells
