"""The bridgevla console script: flags map to config keys, errors are one line with exit status 2."""

from __future__ import annotations

import json

import pytest
import yaml

from bridgevla.scripts.cli import build_parser, main
from bridgevla.scripts.demo import main as demo_main


def test_eval_flags_become_config_overrides_and_run_the_baselines(tmp_path, capsys):
    rc = main(["eval", "--benchmark", "tests.bridgevla.evaluation.test_runner:make_fake_env",
               "--agents", "random,expert", "--tasks", "reach_red", "--episodes", "3", "--seeds", "0,1",
               "--out", str(tmp_path), "progress=false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| reach_red | 0.0 ± 0.0 | 100.0 ± 0.0 |" in out
    res = json.loads((tmp_path / "results.json").read_text())
    assert res == {"random": {"reach_red": 0.0, "mean": 0.0}, "expert": {"reach_red": 1.0, "mean": 1.0}}
    assert len((tmp_path / "episodes.jsonl").read_text().splitlines()) == 2 * 3 * 2


def test_unknown_subcommand_and_missing_arguments_exit_nonzero():
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["fly"])
    assert e.value.code == 2


@pytest.mark.parametrize(("args", "key"), [(["tasks=[]"], "demo.tasks"), (["demos_per_task=0"], "demo.demos_per_task"),
                                           (["min_success=2"], "demo.min_success"), (["job.optim.lr=0"], "optim.lr"),
                                           (["eval.episodez=3"], "eval.episodez"),
                                           (["pretrain.scenes.objects=[0,2]"], "scenes.objects")])
def test_demo_config_errors_name_the_key(args, key, capsys):
    assert demo_main(args) == 2
    assert key in capsys.readouterr().err


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_rerun_resumes(tmp_path, capsys):
    """The `make demo` pipeline at toy size: demos -> pre-training -> tiny policy from it -> table + JSON; a re-run
    redoes nothing."""
    args = [f"out_dir={tmp_path}", "tasks=[lift_block,slide_block]", "demos_per_task=2", "job.model.preset=tiny",
            "job.train.steps=3", "job.train.progress=false", "eval.episodes=2", "eval.workers=1",
            "pretrain.train.steps=2", "pretrain.train.progress=false", "pretrain.eval_scenes=4",
            "pretrain.scenes.table_points=100", "pretrain.scenes.points_per_object=50"]
    assert demo_main(args) == 0
    result = json.loads((tmp_path / "demo_results.json").read_text())
    assert set(result) == {"lift_block", "slide_block", "mean"} and all(0 <= v <= 1 for v in result.values())
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "| task | policy | random | expert |" in table
    expert = json.loads((tmp_path / "eval" / "results.json").read_text())["expert"]
    assert expert["mean"] == 1.0
    lines = (tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()
    capsys.readouterr()
    assert demo_main(args) == 0
    text = capsys.readouterr().out
    assert "policy already trained" in text and "already pre-trained" in text
    saved = yaml.safe_load((tmp_path / "train" / "config.yaml").read_text())
    assert saved["init"]["checkpoint"] == str(tmp_path / "pretrain" / "policy")
    assert saved["model"] == yaml.safe_load((tmp_path / "pretrain" / "config.yaml").read_text())["model"]
    assert (tmp_path / "eval" / "episodes.jsonl").read_text().splitlines() == lines  # nothing re-evaluated
