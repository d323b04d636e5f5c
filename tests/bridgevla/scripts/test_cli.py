"""The bridgevla console script: flags map to config keys, errors are one line with exit status 2."""

from __future__ import annotations

import json
from unittest.mock import ANY

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
    """The `make demo` pipeline at toy size, two training seeds and a demos curve: demos -> pre-training -> tiny
    policy from it, per seed -> combined table (policy ± over seeds, baselines once) + JSON; a re-run redoes
    nothing."""
    args = [f"out_dir={tmp_path}", "tasks=[lift_block,slide_block]", "demos_per_task=2", "job.model.preset=tiny",
            "job.train.steps=3", "job.train.progress=false", "eval.episodes=2", "eval.workers=1",
            "pretrain.train.steps=2", "pretrain.train.progress=false", "pretrain.eval_scenes=4",
            "pretrain.scenes.table_points=100", "pretrain.scenes.points_per_object=50", "train_seeds=[3,5]",
            "curve_demos=[1]"]
    assert demo_main(args) == 0
    result = json.loads((tmp_path / "demo_results.json").read_text())
    assert set(result) == {"lift_block", "slide_block", "mean"} and all(0 <= v <= 1 for v in result.values())
    run = json.loads((tmp_path / "demo_run.json").read_text())
    assert set(run["runs"]) == {"3", "5"} and run["train_seeds"] == [3, 5] and run["complete"]
    for seed in ("3", "5"):
        r = run["runs"][seed]
        assert r["pretrain"] == {"steps_done": 2, "steps_planned": 2, "complete": True, "grounding": ANY,
                                 "steps_per_second": ANY, "minutes": ANY, "minutes_steps": 2}
        assert r["train"]["minutes"] > 0 and r["train"]["minutes_steps"] == 3
        assert r["train"]["steps_done"] == r["train_demos_1"]["steps_done"] == 3
        # the seed reached both phases: pre-training and fine-tuning were seeded with it
        saved = yaml.safe_load((tmp_path / f"seed_{seed}" / "train" / "config.yaml").read_text())
        assert saved["train"]["seed"] == int(seed) and saved["data"]["episodes_per_task"] == 2
        assert saved["init"]["checkpoint"] == str(tmp_path / f"seed_{seed}" / "pretrain" / "policy")
        assert saved["model"] == yaml.safe_load((tmp_path / f"seed_{seed}" / "pretrain" / "config.yaml")
                                                .read_text())["model"]
        curve_cfg = yaml.safe_load((tmp_path / f"seed_{seed}" / "demos_1" / "train" / "config.yaml").read_text())
        assert curve_cfg["data"]["episodes_per_task"] == 1
    assert set(run["minutes"]) >= {"generate", "pretrain", "train", "eval", "total"}
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "| task | policy | random | expert |" in table
    combined = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert combined["expert"]["mean"] == 1.0
    # the policy's mean is the mean of the two training runs' rates
    per_seed = [run["runs"][s]["success"]["mean"] for s in ("3", "5")]
    assert result["mean"] == pytest.approx(sum(per_seed) / 2, abs=1e-4)
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert set(curve) == {"1", "2"} and all(len(curve[n]["mean"]) == 2 for n in curve)
    assert "| task | 1 demo | 2 demos |" in (tmp_path / "curve.md").read_text()
    # success by layout: every evaluated episode (2 seeds x 2 tasks x 2 policy episodes) and both demos per task
    layout = json.loads((tmp_path / "eval" / "layout.json").read_text())
    assert sum(c["episodes"] for t in layout["agents"]["policy"].values() for c in t["side"].values()) == 8
    assert {t: sum(f["side"].values()) for t, f in layout["demos"].items()} == {"lift_block": 2, "slide_block": 2}
    lines = {p: p.read_text().splitlines() for p in tmp_path.glob("**/episodes.jsonl")}
    assert len(lines) == 5  # 2 seeds x (full + curve) + baselines
    capsys.readouterr()
    assert demo_main(args) == 0
    text = capsys.readouterr().out
    assert text.count("policy already trained") == 4 and text.count("already pre-trained") == 2
    # the re-run's own phases took no time, but the record keeps each training run's minutes
    rerun = json.loads((tmp_path / "demo_run.json").read_text())
    assert rerun["runs"]["3"]["train"]["minutes"] == run["runs"]["3"]["train"]["minutes"]
    assert "train 3/3 (" in text and " min)" in text
    assert {p: p.read_text().splitlines() for p in tmp_path.glob("**/episodes.jsonl")} == lines  # none re-run


def test_demo_seed_and_curve_settings_are_checked(capsys):
    for args, message in ((["train_seeds=[]"], "train_seeds"), (["train_seeds=[1,1]"], "train_seeds"),
                          (["curve_demos=[10]"], "curve_demos"), (["curve_demos=[0]"], "curve_demos"),
                          (["eval.seed_offset=5"], "seed_offset")):
        assert demo_main(args) == 2
        assert message in capsys.readouterr().err


def test_a_phase_cut_short_by_its_time_cap_is_recorded_and_warned(tmp_path, capsys):
    from bridgevla.scripts.demo import _phase_steps

    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"last_step": 90, "steps_planned": 1000, "train_steps_per_second": 0.2}))
    assert _phase_steps(path, "heatmap pre-training") == {"steps_done": 90, "steps_planned": 1000,
                                                          "complete": False, "steps_per_second": 0.2,
                                                          "minutes": None, "minutes_steps": None}
    err = capsys.readouterr().err
    assert "WARNING: heatmap pre-training stopped by its time cap after 90 of 1000 steps (9%" in err
    path.write_text(json.dumps({"last_step": 1000, "steps_planned": 1000, "train_steps_per_second": 2.5}))
    assert _phase_steps(path, "fine-tuning")["complete"] and capsys.readouterr().err == ""
    path.write_text(json.dumps({"last_step": 1000, "steps_planned": 1000, "seconds": 600.0, "steps_this_session": 400}))
    info = _phase_steps(path, "fine-tuning")
    assert info["minutes"] == 10.0 and info["minutes_steps"] == 400


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


def test_a_benchmark_that_names_code_in_a_config_file_needs_allow_code(tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("benchmark: tests.bridgevla.evaluation.test_runner:make_fake_env\nagents: [random]\n"
                   "tasks: [reach_red]\nepisodes: 1\nprogress: false\n")
    assert main(["eval", "--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--allow-code" in err and err.count("\n") == 1
    assert not (tmp_path / "a" / "episodes.jsonl").exists()
    assert main(["eval", "--config", str(cfg), "--out", str(tmp_path / "b"), "--allow-code"]) == 0
    assert main(["eval", "--config", str(cfg), "--out", str(tmp_path / "c"),
                 "benchmark=tests.bridgevla.evaluation.test_runner:make_fake_env"]) == 0  # typed: the user asked


def test_keypose_eval_refuses_an_unwritable_out_before_evaluating(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["keypose-eval", "--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path),
               "--out", str(blocker / "results.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "file/results.json: cannot write there" in err  # named before the checkpoint is even opened


def test_data_check_exits_1_naming_every_bad_file(tmp_path, capsys):
    from tests.bridgevla.data.test_dataset import write_dataset

    write_dataset(tmp_path, {"reach": 2, "push": 1})
    assert main(["data", "check", str(tmp_path), "--bounds=-0.3,-0.5,0.6,0.7,0.5,1.6"]) == 0
    assert "3 episodes" in capsys.readouterr().out
    png = tmp_path / "reach" / "episode_00001" / "front_rgb" / "5.png"
    png.write_bytes(png.read_bytes()[:30])
    (tmp_path / "push" / "episode_00000" / "cameras.npz").write_bytes(b"PK\x03\x04 not really")
    assert main(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "reach/episode_00001: front_rgb/5.png has 30 bytes" in out and "push/episode_00000: cameras.npz" in out
    assert main(["data", "check", str(tmp_path), "--bounds", "1,2"]) == 2


def test_a_single_seed_or_task_flag_is_a_list(tmp_path):
    assert main(["eval", "--benchmark", "tests.bridgevla.evaluation.test_runner:make_fake_env", "--agents", "expert",
                 "--tasks", "reach_red", "--episodes", "1", "--seeds", "3", "--out", str(tmp_path),
                 "progress=false"]) == 0
    assert json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])["seed"] == 3
