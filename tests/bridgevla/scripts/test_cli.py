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
    failures = json.loads((tmp_path / "failures.json").read_text())  # every random episode failed, for a reason
    assert set(failures) == {"random"} and sum(failures["random"]["reach_red"].values()) == 6
    assert "failed episodes by reason" in out


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
    run = json.loads((tmp_path / "demo_run.json").read_text())
    assert run["steps"] == {"pretrain": {"steps_done": 2, "steps_planned": 2, "complete": True,
                                         "steps_per_second": run["steps"]["pretrain"]["steps_per_second"]},
                            "train": {"steps_done": 3, "steps_planned": 3, "complete": True,
                                      "steps_per_second": run["steps"]["train"]["steps_per_second"]}}
    assert run["complete"] and set(run["minutes"]) >= {"generate", "pretrain", "train", "eval", "total"}
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


def test_a_phase_cut_short_by_its_time_cap_is_recorded_and_warned(tmp_path, capsys):
    from bridgevla.scripts.demo import _phase_steps

    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"last_step": 90, "steps_planned": 1000, "train_steps_per_second": 0.2}))
    assert _phase_steps(path, "heatmap pre-training") == {"steps_done": 90, "steps_planned": 1000,
                                                          "complete": False, "steps_per_second": 0.2}
    err = capsys.readouterr().err
    assert "WARNING: heatmap pre-training stopped by its time cap after 90 of 1000 steps (9%" in err
    path.write_text(json.dumps({"last_step": 1000, "steps_planned": 1000, "train_steps_per_second": 2.5}))
    assert _phase_steps(path, "fine-tuning")["complete"] and capsys.readouterr().err == ""


FAKE_DEMO = "tests.benchmarks.fake_demo_env:FakeDemoEnv"


def test_eval_videos_are_linked_from_the_results_markdown(tmp_path, capsys):
    pytest.importorskip("av")
    rc = main(["eval", "--benchmark", FAKE_DEMO, "--agents", "expert", "--tasks", "reach_fake", "--episodes", "2",
               "--out", str(tmp_path), "progress=false", "videos=1", "video_camera=overhead"])
    assert rc == 0
    md = (tmp_path / "results.md").read_text()
    assert "| expert | reach_fake | 0 | 0 | success | [videos/expert_reach_fake_seed0_ep0.mp4]" in md
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["expert_reach_fake_seed0_ep0.mp4"]


def test_inspect_writes_a_recording_of_an_evaluation_and_of_a_stored_episode(tmp_path, capsys):
    pytest.importorskip("rerun")
    from benchmarks.dataset import save_episode
    from benchmarks.generate import record_episode
    from tests.benchmarks.fake_demo_env import FakeDemoEnv
    from tests.bridgevla.evaluation.rrd import column, read_rrd
    from tests.bridgevla.model_helpers import tiny_policy

    tiny_policy(seed=1, bounds=[-0.6, -0.6, -0.1, 0.6, 0.6, 1.1]).save_pretrained(tmp_path / "policy")
    out = tmp_path / "ev.rrd"
    rc = main(["inspect", "--checkpoint", str(tmp_path / "policy"), "--task", "pick_fake", "--episode", "2",
               "--out", str(out), f"benchmark={FAKE_DEMO}", "device=cpu"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "pick_fake episode 2: 3 keyposes, success" in text and str(out) in text
    rrd = read_rrd(out)
    assert sorted(column(rrd["/world/cloud"], "Points3D:positions")) == [0, 1, 2, 3]
    assert "episode 2" in column(rrd["/instruction"], "TextDocument:text")[None][0]

    episode, _ = record_episode(FakeDemoEnv(image_size=16), "reach_fake", 3, image_every=4)
    save_episode(episode, tmp_path / "demos" / "reach_fake" / "episode_00003")
    rc = main(["inspect", "--data", str(tmp_path / "demos"), "--task", "reach_fake", "--episode", "3",
               "--out", str(tmp_path / "demo.rrd")])
    assert rc == 0
    rrd = read_rrd(tmp_path / "demo.rrd")
    assert len(column(rrd["/world/reference"], "Transform3D:translation")) == len(episode.keyposes)
    assert "/world/predicted" not in rrd or not column(rrd["/world/predicted"], "Transform3D:translation")


@pytest.mark.parametrize(("args", "message"), [
    (["--agent", "expert", "--out", "x.rrd"], "task:"),
    (["--task", "pick_fake", "--out", "x.rrd"], "checkpoint:"),
    (["--task", "pick_fake", "--agent", "expert", "out=null"], "out:"),
    (["--task", "fly", "--agent", "expert", "--out", "x.rrd", f"benchmark={FAKE_DEMO}"], "task: 'fly'"),
    (["--data", "/nonexistent", "--out", "x.rrd"], "not an episode folder"),
])
def test_inspect_errors_name_the_problem(args, message, tmp_path, monkeypatch, capsys):
    pytest.importorskip("rerun")
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.rrd").exists()  # nothing written for an episode that could not start
