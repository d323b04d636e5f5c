"""The continuous 6D rotation head (``rotation_head="6d"``): its loss terms, save/load, and that it learns."""

from __future__ import annotations

import pytest
import torch

from bridgevla.data.batch import collate
from bridgevla.model.policy import BridgeVLAPolicy
from pretrain.scenes import tabletop_samples
from rendering import quaternion_angle, quaternion_to_bins
from tests.bridgevla.model_helpers import (
    fit_until,
    overhead_observation,
    single_thread,  # noqa: F401 (a fixture)
    tiny_policy,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_6d_head_loss_terms_and_prediction_shapes():
    policy = tiny_policy(seed=0, rotation_head="6d")
    assert not hasattr(policy.action_head, "rot") and policy.action_head.rot6d[-1].out_features == 6
    batch = collate(tabletop_samples(2, seed=0, table_points=300, points_per_object=30))
    out = policy.compute_loss(batch)
    assert set(out) == {"loss", "trans_stage1", "trans_stage2", "rot_6d", "gripper", "collision"}
    # ‖R1 - R2‖² = 6 - 2 tr(R1ᵀR2) = 4 (1 - cos θ): between 0 (same rotation) and 8 (θ = 180°).
    assert 0 <= out["rot_6d"].item() <= 8
    out["loss"].backward()
    assert policy.action_head.rot6d[-1].weight.grad.abs().sum() > 0
    pred = policy.predict(batch)
    assert pred.quaternion.shape == (2, 4) and pred.rotation_bins.shape == (2, 3)
    assert torch.allclose(pred.quaternion.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.equal(pred.rotation_bins, quaternion_to_bins(pred.quaternion))


def test_6d_head_round_trips_through_save_and_load(tmp_path):
    policy = tiny_policy(seed=1, rotation_head="6d").eval()
    obs = overhead_observation(seed=0)
    before = policy.act(obs)
    policy.save_pretrained(tmp_path / "p")
    loaded = BridgeVLAPolicy.from_pretrained(tmp_path / "p")
    assert loaded.config.rotation_head == "6d"
    after = loaded.act(obs)
    assert torch.allclose(torch.as_tensor(before.quaternion), torch.as_tensor(after.quaternion))
    assert torch.allclose(torch.as_tensor(before.position), torch.as_tensor(after.position))


def test_6d_head_memorises_rotations():
    """Overfit 4 synthetic samples: the decoded rotation lands within 5 degrees of every target (bins allow 7.5)."""
    batch = collate(tabletop_samples(4, seed=0, table_points=600, points_per_object=60))
    policy = tiny_policy(seed=0, rotation_head="6d")

    def errors():
        return quaternion_angle(policy.predict(batch).quaternion.double(), batch.target_quaternion.double())

    step = fit_until(policy, batch, lambda: bool(errors().max() < 5.0), max_steps=400)
    err = errors()
    assert err.max().item() < 5.0, f"rotation errors {err.tolist()} degrees after {step} steps"
