"""The rerun web viewer, served by ``bridgevla inspect --serve`` for a real embedded episode, screenshot in headless
Chromium (Debian's package): the scene's cloud and the policy's views must be on the picture.

Slow (about two minutes on 2 CPU cores: Chromium draws WebGL with SwiftShader) and skipped without Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
EMBEDDED_BOUNDS = [-0.1, -0.35, 0.65, 0.6, 0.35, 1.35]  # the small preset's: the embedded tabletop


def table_pixels(rgb: np.ndarray) -> int:
    """Pixels of the embedded table's tan (and the views' warm colours): red well above blue."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return int(((r > 150) & (g > 100) & (g < 210) & (b < 160) & (r - b > 50)).sum())


def colourful(rgb: np.ndarray) -> float:
    """Fraction of saturated pixels: the viewer's own chrome is grey, the rendered views are not."""
    x = rgb.astype(int)
    return float((x.max(-1) - x.min(-1) > 40).mean())


@pytest.mark.slow
def test_web_viewer_shows_the_cloud_and_views_of_an_embedded_episode(tmp_path):
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    for module in ("rerun", "websockets", "mujoco"):
        pytest.importorskip(module)
    from PIL import Image

    from bridgevla.scripts.viewer_screenshot import _free_port, screenshot
    from tests.bridgevla.evaluation.rrd import column, read_rrd
    from tests.bridgevla.model_helpers import tiny_policy

    tiny_policy(seed=0, bounds=EMBEDDED_BOUNDS).save_pretrained(tmp_path / "policy")
    web, grpc = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridgevla", "inspect", "--checkpoint", str(tmp_path / "policy"), "--task",
         "lift_block", "--out", str(tmp_path / "ep.rrd"), "--serve", f"web_port={web}", f"grpc_port={grpc}",
         "max_keyposes=2", "device=cpu"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        lines, url, t0 = [], None, time.monotonic()
        while time.monotonic() - t0 < 300:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving "):  # the episode is done and buffered in the server
                url = line.split()[1]
                break
        assert url, "".join(lines)
        info = screenshot(url, tmp_path / "viewer.png", 1600, 1000, wait=180)
    finally:
        proc.send_signal(signal.SIGINT)  # stops serving and finishes the file
        proc.wait(60)
    assert proc.returncode == 0
    assert info["webgl2_renderer"] and "no WebGL2" not in info["webgl2_renderer"], info
    shot = np.asarray(Image.open(tmp_path / "viewer.png").convert("RGB"))
    h, w = shot.shape[:2]
    scene = shot[int(0.05 * h):int(0.5 * h), : w // 2]  # the blueprint's top-left panel: the 3D scene
    view = shot[int(0.07 * h):int(0.26 * h), int(0.52 * w):int(0.66 * w)]  # stage 1 · top
    assert table_pixels(scene) > 1000, info["console"][-20:]
    assert colourful(view) > 0.3, info["console"][-20:]
    # the file written alongside the stream is complete: rerun's reader sees the episode in it
    rrd = read_rrd(tmp_path / "ep.rrd")
    assert sorted(column(rrd["/world/cloud"], "Points3D:positions"))[0] == 0
