"""Shared helpers of the policy tests: a tiny policy and synthetic observations with a real pinhole camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.protocol import CameraFrame, Observation
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.policy import BridgeVLAPolicy


def tiny_policy(seed: int = 0, **overrides) -> BridgeVLAPolicy:
    torch.manual_seed(seed)
    return BridgeVLAPolicy(BridgeVLAConfig(preset="tiny", **overrides))


def overhead_observation(seed: int = 0, size: int = 32, instruction: str = "open the drawer") -> Observation:
    """A camera 1 m above a flat table at z = 0.9 looking straight down; a few pixels have no depth."""
    rng = np.random.default_rng(seed)
    depth = np.full((size, size), 1.0, np.float32)
    depth[0, :4] = 0.0  # no return
    depth[1, :2] = np.nan
    k = np.array([[40.0, 0, size / 2], [0, 40.0, size / 2], [0, 0, 1]])
    # Camera axes in world coordinates (columns): x right = +x, y down = -y, optical axis = -z.
    ext = np.eye(4)
    ext[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    ext[:3, 3] = (0.2, 0.0, 1.9)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Observation(
        cameras={"overhead": CameraFrame(rgb, depth, k, ext)},
        gripper_pose=np.array([0, 0, 1.2, 0, 0, 0, 1.0]),
        gripper_open=1.0,
        joint_positions=np.zeros(7),
        joint_velocities=np.zeros(7),
        instructions=[instruction, "another phrasing"],
    )


@pytest.fixture
def single_thread():
    """Model tests run with one intra-op thread: the suite runs under xdist on 2 shared cores, where two OpenMP
    threads per worker oversubscribe the CPU and made the overfit test ~10x slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit_until(policy: BridgeVLAPolicy, batch, done, max_steps: int, lr: float = 1e-3, check_every: int = 50) -> int:
    """Adam steps on one batch until ``done()`` (checked every ``check_every`` steps) or ``max_steps``; returns the
    number of steps taken. The overfitting tests' loop: they differ only in what "memorised" means."""
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for step in range(1, max_steps + 1):
        out = policy.compute_loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if step % check_every == 0 and done():
            return step
    return max_steps
