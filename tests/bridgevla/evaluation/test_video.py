"""Evaluation videos (eval.videos=N): MP4s decoded back with PyAV - frame count, size, content - and their links."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.protocol import Keypose
from bridgevla.evaluation.report import summarise, write_report
from bridgevla.evaluation.runner import EvalConfig, evaluate
from tests.benchmarks.fake_demo_env import GRIPPER_TICKS, TICKS_PER_MOVE, FakeDemoEnv

av = pytest.importorskip("av")
from bridgevla.evaluation.video import MIN_HEIGHT, compose_frame, keypose_overlay_pixels  # noqa: E402

FAKE = "tests.benchmarks.fake_demo_env:FakeDemoEnv"
NO_TICKS = "tests.bridgevla.evaluation.test_runner:make_fake_env"  # an env without tick recording


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_videos_of_the_first_episodes_decode_to_every_recorded_tick(tmp_path):
    cfg = EvalConfig(benchmark=FAKE, agents=["expert"], tasks=["pick_fake", "always_fail_fake"], episodes=2,
                     videos=1, video_camera="overhead", video_fps=8, out_dir=str(tmp_path / "ev"), progress=False)
    records = evaluate(cfg)
    with_video = [r for r in records if "video" in r]
    assert [(r["task"], r["episode"]) for r in with_video] == [("pick_fake", 0), ("always_fail_fake", 0)]
    env = FakeDemoEnv()
    for r in with_video:
        env.reset(r["task"], r["variation"], r["env_seed"])
        plan, was_open, ticks = env.expert_keyposes(), True, 0
        for kp in plan:  # FakeDemoEnv's ticks per keypose: the move, plus one when the gripper changes
            ticks += TICKS_PER_MOVE + (GRIPPER_TICKS if kp.gripper_open != was_open else 0)
            was_open = kp.gripper_open
        frames = decode(r["video"])
        scale = -(-MIN_HEIGHT // env.image_size)
        # the reset, every tick, then the last frame held one second
        assert len(frames) == 1 + ticks + cfg.video_fps
        assert frames[0].shape == (env.image_size * scale, env.image_size * scale, 3)
        # the outcome in the bottom-left corner: green for a success, red for a failure
        corner = frames[-1][-30:, :200].reshape(-1, 3).astype(int)
        green = ((corner[:, 1] > 150) & (corner[:, 0] < 120)).sum()
        red = ((corner[:, 0] > 180) & (corner[:, 1] < 110)).sum()
        assert (green > 50 and red < 5) if r["success"] else (red > 50 and green < 5)
    md = (tmp_path / "ev" / "results.md")
    write_report(summarise(records), tmp_path / "ev", records=records)
    text = md.read_text()
    link = "videos/expert_pick_fake_seed0_ep0.mp4"
    assert "## Videos" in text and f"| [{link}]({link}) |" in text
    assert "failure: " in text  # always_fail_fake's reason is listed
    lines = (tmp_path / "ev" / "episodes.jsonl").read_text().splitlines()
    assert sum("video" in json.loads(x) for x in lines) == 2


def test_a_video_frame_is_the_annotated_camera_image(tmp_path):
    """The decoded video matches frames composed here from a replay of the episode (H.264 at crf 20: PSNR well
    above 30 dB), the first without a keypose, the last with the final keypose drawn in."""
    from bridgevla.evaluation.video import _Shot

    cfg = EvalConfig(benchmark=FAKE, agents=["expert"], tasks=["reach_fake"], episodes=1, videos=1,
                     out_dir=str(tmp_path / "ev"), progress=False)
    rec = evaluate(cfg)[0]
    frames = decode(rec["video"])
    env = FakeDemoEnv()
    first = env.reset("reach_fake", 0, rec["env_seed"]).cameras["front"]  # the first camera is the default
    plan = env.expert_keyposes()
    for kp in plan:
        last = env.step(kp).observation.cameras["front"]
    title, status, scale = "expert · reach_fake v0 · seed 0 ep 0", "SUCCESS after 3 keyposes", 384 // 32
    want_first = compose_frame(_Shot(first.rgb, first.intrinsics, first.extrinsics, None, 0, 1), title, status, True,
                               scale, 3)
    want_last = compose_frame(_Shot(last.rgb, last.intrinsics, last.extrinsics, plan[-1], 3, 1), title, status, True,
                              scale, 3)
    assert psnr(frames[0], want_first) > 30 and psnr(frames[-1], want_last) > 30
    assert psnr(frames[-1], want_first) < psnr(frames[-1], want_last) - 5  # the overlay and label really differ


def test_without_tick_recording_each_keypose_is_held_half_a_second(tmp_path):
    cfg = EvalConfig(benchmark=NO_TICKS, agents=["expert"], tasks=["press_twice"], episodes=1, videos=1,
                     video_fps=6, out_dir=str(tmp_path / "ev"), progress=False, env={"camera": True})
    rec = evaluate(cfg)[0]
    assert rec["success"] and rec["keyposes"] == 2
    assert len(decode(rec["video"])) == (1 + 2) * 3 + 6


def test_keypose_overlay_projects_by_hand():
    """FakeDemoEnv's overhead camera: 1.5 m above the origin looking down, image x = world -y, image y = world -x."""
    env = FakeDemoEnv(image_size=32)
    k, e = env.intrinsics, env.static_cams["overhead"]
    f, c = k[0, 0], k[0, 2]
    uvd = keypose_overlay_pixels(Keypose([0, 0, 0], [0, 0, 0, 1], True, True), k, e, axis_length=0.05)
    d = f * 0.05 / 1.5
    np.testing.assert_allclose(uvd, [[c, c, 1.5], [c, c - d, 1.5], [c - d, c, 1.5], [c, c, 1.45]], atol=1e-9)


def test_bad_video_settings_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="videos"):
        EvalConfig(benchmark=FAKE, agents=["expert"], videos=-1)
    with pytest.raises(ValueError, match="video_fps"):
        EvalConfig(benchmark=FAKE, agents=["expert"], video_fps=0)
    cfg = EvalConfig(benchmark=FAKE, agents=["expert"], tasks=["reach_fake"], episodes=1, videos=1,
                     video_camera="nope", out_dir=str(tmp_path / "ev"), progress=False)
    with pytest.raises(ValueError, match="video_camera: 'nope'"):
        evaluate(cfg)
