"""The tiny policy memorises a handful of synthetic samples: < 1 cm and exact rotation bins in bounded steps."""

from __future__ import annotations

import pytest
import torch

from bridgevla.data.batch import collate
from pretrain.scenes import tabletop_samples
from rendering import quaternion_to_bins
from tests.bridgevla.model_helpers import (
    single_thread,  # noqa: F401 (a fixture)
    tiny_policy,
)

pytestmark = pytest.mark.usefixtures("single_thread")
MAX_STEPS = 500  # measured: ~300 steps (~15 s on one core) reach the goal with this seed


def test_tiny_policy_overfits_synthetic_samples():
    batch = collate(tabletop_samples(4, seed=0))
    policy = tiny_policy(seed=0)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    true_bins = quaternion_to_bins(batch.target_quaternion)
    first = None
    for step in range(1, MAX_STEPS + 1):
        out = policy.compute_loss(batch)
        first = first or {k: v.item() for k, v in out.items()}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if step % 50 == 0:
            pred = policy.predict(batch)
            err = (pred.position - batch.target_position).norm(dim=-1)
            if err.max() < 0.01 and torch.equal(pred.rotation_bins, true_bins):
                break
    assert err.max().item() < 0.01, f"position errors {err.tolist()} m after {step} steps"
    assert torch.equal(pred.rotation_bins, true_bins)
    assert torch.equal(pred.gripper_open, batch.target_gripper_open > 0.5)
    assert torch.equal(pred.ignore_collisions, batch.target_ignore_collisions > 0.5)
    last = policy.compute_loss(batch)
    for term in ("trans_stage1", "trans_stage2", "rot_x", "gripper"):
        assert last[term].item() < first[term], term
