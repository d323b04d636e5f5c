"""Serving tests: a tiny policy, observations it can see, and the fake hardware libraries (tests/.../fakes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.protocol import CameraFrame, Observation
from tests.bridgevla.model_helpers import tiny_policy

FAKES = Path(__file__).parent / "fakes"


@pytest.fixture(scope="module")
def policy():
    import torch

    torch.set_num_threads(1)
    p = tiny_policy(seed=0, bounds=[-0.3, -0.5, 0.6, 0.7, 0.5, 1.6], max_points=2000)
    p.eval()
    return p


def table_observation(seed: int = 0, size: int = 24, instruction: str = "open the drawer") -> Observation:
    """A camera 1 m above a table at z = 0.9 looking down (inside the policy's bounds), random colours and bumps."""
    rng = np.random.default_rng(seed)
    depth = (1.0 - rng.uniform(0, 0.2, (size, size))).astype(np.float32)
    k = np.array([[30.0, 0, (size - 1) / 2], [0, 30.0, (size - 1) / 2], [0, 0, 1]])
    ext = np.eye(4)
    ext[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    ext[:3, 3] = (0.2 + rng.uniform(-0.05, 0.05), 0.0, 1.9)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Observation(cameras={"front": CameraFrame(rgb, depth, k, ext)},
                       gripper_pose=np.array([0.3, 0.0, 1.2, 1.0, 0.0, 0.0, 0.0]), gripper_open=1.0,
                       joint_positions=np.zeros(7), joint_velocities=np.zeros(7), instructions=[instruction])


@pytest.fixture
def fake_hardware(monkeypatch):
    """Import the fake ``franky`` and ``pyrealsense2`` under their real names (and nothing real by accident)."""
    for name in ("franky", "pyrealsense2"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    import franky
    import pyrealsense2

    assert Path(franky.__file__).parent.parent == FAKES and Path(pyrealsense2.__file__).parent.parent == FAKES
    franky.reset_calls()
    pyrealsense2.CALLS.clear()
    pyrealsense2.DEVICES.clear()
    yield franky, pyrealsense2
    for name in ("franky", "pyrealsense2"):
        sys.modules.pop(name, None)
