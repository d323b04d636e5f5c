"""Demo generation with the fast fake environment: CLI, resume, failures, spawned workers, determinism."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from benchmarks.dataset import episode_dir, list_episodes, load_episode
from benchmarks.generate import GenerateConfig, generate, make_env, record_episode
from bridgevla.configuration import ConfigError
from bridgevla.scripts.generate import main, resolve_env_config

from .fake_demo_env import FakeDemoEnv

FAKE = "tests.benchmarks.fake_demo_env:FakeDemoEnv"


def run(tmp_path, *extra: str) -> int:
    return main(["--env", FAKE, "--out", str(tmp_path / "demos"), *extra])


def test_cli_writes_successful_episodes_and_a_summary(tmp_path, capsys):
    assert run(tmp_path, "--tasks", "pick_fake", "reach_fake", "--episodes", "4", "--seed-offset", "10") == 0
    out = capsys.readouterr().out
    assert "pick_fake" in out and "100.0%" in out
    paths = list_episodes(tmp_path / "demos")
    assert [p.name for p in paths] == [f"episode_{i:05d}" for i in range(10, 14)] * 2
    summary = json.loads((tmp_path / "demos" / "summary.json").read_text())
    assert summary["pick_fake"]["success_rate"] == 1.0 and summary["pick_fake"]["keyframes_match"] == 4
    ep = load_episode(episode_dir(tmp_path / "demos", "pick_fake", 11))
    # seed = index, variation = index mod 3 variations of pick_fake
    assert (ep.seed, ep.variation, ep.index) == (11, 2, 11)
    assert ep.instructions == FakeDemoEnv().instructions("pick_fake", 2)
    assert len(ep.keyframes) == len(ep.keyposes) == 3
    assert all(ep.has_images(k) for k in ep.keyframes)
    # every tick is labelled with the keypose it moves towards (moves of 8 ticks, 1 gripper tick after the 2nd)
    assert ep.extra_lowdim["keypose_index"].tolist() == [0] * 9 + [1] * 9 + [2] * 8
    assert ep.extra_lowdim["ignore_collisions"].tolist() == [0.0] * 18 + [1.0] * 8


def test_resume_skips_finished_episodes_and_cleans_stale_temp_folders(tmp_path, capsys):
    assert run(tmp_path, "--tasks", "reach_fake", "--episodes", "3") == 0
    root = tmp_path / "demos" / "reach_fake"
    kept = episode_dir(tmp_path / "demos", "reach_fake", 0)
    stamp = (kept / "episode.json").stat().st_mtime_ns
    # simulate a crash: one episode missing, one dead writer's temp folder left behind
    removed = episode_dir(tmp_path / "demos", "reach_fake", 2)
    for f in sorted(removed.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    removed.rmdir()
    stale = root / ".tmp-episode_00002-999999999"
    stale.mkdir()
    capsys.readouterr()
    assert run(tmp_path, "--tasks", "reach_fake", "--episodes", "3") == 0
    assert "2 finished episodes skipped, 1 to generate" in capsys.readouterr().out
    assert (kept / "episode.json").stat().st_mtime_ns == stamp
    assert removed.is_dir() and not stale.exists()


def test_failing_expert_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    assert run(tmp_path, "--tasks", "always_fail_fake", "reach_fake", "--episodes", "2") == 1
    captured = capsys.readouterr()
    assert "failed their success check" in captured.err
    summary = json.loads((tmp_path / "demos" / "summary.json").read_text())
    assert summary["always_fail_fake"]["success_rate"] == 0.0
    assert summary["always_fail_fake"]["failed_indices"] == [0, 1]
    assert summary["always_fail_fake"]["errors"] == {"0": "the expert plan ended without success"} | {
        "1": "the expert plan ended without success"
    }
    assert summary["reach_fake"]["success_rate"] == 1.0
    assert [p.parent.name for p in list_episodes(tmp_path / "demos")] == ["reach_fake", "reach_fake"]


def test_spawned_workers_write_the_same_episodes_as_one_process(tmp_path):
    assert main(["--env", FAKE, "--out", str(tmp_path / "a"), "--tasks", "pick_fake", "--episodes", "3"]) == 0
    assert main(["--env", FAKE, "--out", str(tmp_path / "b"), "--tasks", "pick_fake", "--episodes", "3",
                 "--workers", "2"]) == 0
    for i in range(3):
        a = episode_dir(tmp_path / "a", "pick_fake", i)
        b = episode_dir(tmp_path / "b", "pick_fake", i)
        assert (a / "episode.json").read_text() == (b / "episode.json").read_text()
        assert (a / "lowdim.npz").read_bytes() == (b / "lowdim.npz").read_bytes()
        assert (a / "front_depth" / "0.png").read_bytes() == (b / "front_depth" / "0.png").read_bytes()


def test_record_episode_is_deterministic_and_reports_keyframes():
    env = FakeDemoEnv()
    e1, r1 = record_episode(env, "pick_fake", 4, image_every=10)
    e2, _ = record_episode(env, "pick_fake", 4, image_every=10)
    np.testing.assert_array_equal(e1.gripper_pose, e2.gripper_pose)
    assert r1.success and r1.keyframes_match and r1.keyframes_without_images == 0
    # image_every=1 puts images on every tick
    e3, _ = record_episode(env, "pick_fake", 4, image_every=1)
    assert e3.image_frames == list(range(len(e3)))


def test_bad_settings_name_the_key(tmp_path, capsys):
    for flags, key in ((("--episodes", "-1"), "episodes"), (("--workers", "0"), "workers"),
                       (("--tasks", "no_such_task"), "tasks"), (("env_config.image_size=3",), "env_config")):
        assert run(tmp_path, *flags) == 2, flags  # a configuration error, not a failed expert episode (1)
        err = capsys.readouterr().err
        assert err.startswith("bridgevla generate: error:") and key in err, (flags, err)
    with pytest.raises(ValueError, match="env"):
        make_env("no.such.module:Env")
    with pytest.raises(ConfigError, match="env_config"):
        resolve_env_config(FAKE, {"image_size": 3})
    with pytest.raises(ValueError, match="resolve"):  # a raw mapping never reaches an environment unchecked
        generate(GenerateConfig(env=FAKE, env_config={"image_size": 3}, out=str(tmp_path)))


def test_config_file_errors_exit_2_in_one_line_and_code_needs_consent(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("episodes: 2\ntasks: [a, b\n")
    assert run(tmp_path, "--config", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml is not valid YAML at line" in err
    bad.write_text("tasks: {a: 1}\n")  # a mapping where a list belongs
    assert run(tmp_path, "--config", str(bad)) == 2 and "tasks" in capsys.readouterr().err
    # A config file that names code to import is refused unless asked for; typed on the command line it runs.
    cfg = tmp_path / "other.yaml"
    cfg.write_text(f"env: {FAKE}\ntasks: [reach_fake]\nepisodes: 1\n")
    out = ["--out", str(tmp_path / "demos")]
    assert main(["--config", str(cfg), *out]) == 2
    err = capsys.readouterr().err
    assert "--allow-code" in err and FAKE in err
    assert main(["--config", str(cfg), "--allow-code", *out]) == 0
    assert main(["--config", str(cfg), "--env", FAKE, *out]) == 0
    cfg.write_text("env: os:system\n")
    assert main(["--config", str(cfg), *out]) == 2  # never imported, never called
    assert "--allow-code" in capsys.readouterr().err


def test_env_config_fills_the_env_config_dataclass():
    pytest.importorskip("benchmarks.embedded")
    spec = "benchmarks.embedded:EmbeddedEnv"
    env = make_env(spec, resolve_env_config(spec, {"image_size": 32}))
    assert env.config.image_size == 32
    with pytest.raises(ConfigError, match="env_config.no_such_key"):
        resolve_env_config(spec, {"no_such_key": 1})
    with pytest.raises(ValueError, match="EmbeddedConfig"):
        make_env(spec, {"image_size": 32})
    assert GenerateConfig().env == spec
    assert os.environ.get("MUJOCO_GL") == "egl"


def test_module_entry_point_exit_status(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "bridgevla", "generate", "--env", FAKE, "--episodes", "1", "--out", str(tmp_path)]
    ok = subprocess.run([*cmd, "--tasks", "reach_fake"], cwd=root, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*cmd, "--tasks", "always_fail_fake"], cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "failed their success check" in bad.stderr


@dataclasses.dataclass
class CrashConfig:
    task: str
    index: int
    marker: str = ""  # with a path: crash only the first time (across processes); without: every time


class CrashyDemoEnv(FakeDemoEnv):
    """FakeDemoEnv whose simulator takes its whole process down when it resets one episode."""

    def __init__(self, config: CrashConfig | None = None) -> None:
        super().__init__()
        self.crash = config

    def reset(self, task, variation, seed):
        if self.crash is not None and (task, seed) == (self.crash.task, self.crash.index):
            if not self.crash.marker or not os.path.exists(self.crash.marker):
                if self.crash.marker:
                    open(self.crash.marker, "w").close()
                os._exit(3)
        return super().reset(task, variation, seed)


CRASHY = "tests.benchmarks.test_generate:CrashyDemoEnv"


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_a_rerun_of_its_episode(tmp_path):
    cfg = GenerateConfig(tasks=["reach_fake"], episodes=4, out=str(tmp_path / "demos"), workers=2, env=CRASHY)
    summary = generate(cfg, CrashConfig("reach_fake", 2, marker=str(tmp_path / "crashed")))
    assert (tmp_path / "crashed").exists()  # it did die once
    assert summary["reach_fake"]["success_rate"] == 1.0
    assert [p.name for p in list_episodes(tmp_path / "demos")] == [f"episode_{i:05d}" for i in range(4)]


@pytest.mark.slow
def test_an_episode_that_always_kills_its_worker_is_reported_and_the_rest_are_written(tmp_path):
    cfg = GenerateConfig(tasks=["reach_fake"], episodes=4, out=str(tmp_path / "demos"), workers=2, env=CRASHY,
                         restarts=1)
    summary = generate(cfg, CrashConfig("reach_fake", 1))
    assert summary["reach_fake"]["failed_indices"] == [1]
    assert "worker process died" in summary["reach_fake"]["errors"]["1"]
    assert [p.name for p in list_episodes(tmp_path / "demos")] == ["episode_00000", "episode_00002", "episode_00003"]
