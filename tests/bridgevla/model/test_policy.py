"""The two-stage policy on the tiny preset: shapes, dtypes, losses, act(), and the decode with oracle heatmaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.protocol import Keypose
from bridgevla.data.batch import collate
from bridgevla.data.preprocess import observation_cloud
from bridgevla.model.heads import heatmap_probs
from pretrain.scenes import tabletop_samples
from rendering import (
    bins_to_quaternion,
    fuse_heatmaps,
    gaussian_targets,
    quaternion_angle,
    quaternion_to_bins,
    world_to_cube,
    zoom,
)
from tests.bridgevla.model_helpers import (
    overhead_observation,
    single_thread,  # noqa: F401 (a fixture)
    tiny_policy,
)

pytestmark = pytest.mark.usefixtures("single_thread")
TERMS = {"loss", "trans_stage1", "trans_stage2", "rot_x", "rot_y", "rot_z", "gripper", "collision"}


@pytest.fixture(scope="module")
def policy():
    return tiny_policy()


@pytest.fixture(scope="module")
def batch():
    return collate(tabletop_samples(3, seed=0, table_points=800, points_per_object=100))


def test_tiny_is_under_5m_parameters(policy):
    assert sum(p.numel() for p in policy.parameters()) < 5_000_000


def test_loss_terms_shapes_and_gradients(policy, batch):
    torch.manual_seed(0)
    out = policy.compute_loss(batch)
    assert set(out) == TERMS
    assert all(v.ndim == 0 and v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())
    torch.testing.assert_close(out["loss"], sum(v for k, v in out.items() if k != "loss"))
    # At initialisation the heatmaps are nearly uniform: CE ≈ entropy ≥ log of a 3σ-cut Gaussian's support, and
    # ≈ log(S²) for a uniform prediction (hand-computed bound: log(64²) = 8.32).
    s = policy.image_size
    assert out["trans_stage1"].item() == pytest.approx(math.log(s * s), abs=0.3)
    assert out["rot_x"].item() == pytest.approx(math.log(72), abs=0.5)
    policy.zero_grad()
    out["loss"].backward()
    for name in ("heatmap_head.logit.0.weight", "heatmap_head.mask.2.weight", "action_head.rot.2.2.weight",
                 "action_head.gripper.weight", "backbone.model.model.vision_tower.embeddings."
                 "patch_embedding.weight", "backbone.model.model.language_model.layers.0.self_attn.q_proj.weight"):
        grad = dict(policy.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    policy.zero_grad()


def test_predict_shapes_and_consistency(policy, batch):
    pred = policy.predict(batch)
    b, s = len(batch), policy.image_size
    assert pred.position.shape == (b, 3) and pred.position.dtype == torch.float32
    assert pred.quaternion.shape == (b, 4) and (pred.quaternion[:, 3] >= 0).all()
    torch.testing.assert_close(pred.quaternion.norm(dim=-1), torch.ones(b))
    assert pred.gripper_open.dtype == torch.bool and pred.ignore_collisions.shape == (b,)
    assert pred.rotation_bins.shape == (b, 3) and pred.rotation_bins.dtype == torch.long
    assert [v.shape for v in pred.views] == [(b, 3, 3, s, s)] * 2
    for h in pred.heatmaps:
        assert h.shape == (b, 3, s, s)
        torch.testing.assert_close(h.sum((-1, -2)), torch.ones(b, 3))
    # Stage 2's point lies inside the zoom window around stage 1's (±1/zoom cube units per axis).
    c1 = world_to_cube(pred.stage1_position)
    c2 = world_to_cube(pred.position)
    assert ((c2 - c1).abs() <= 1.0 / policy.config.zoom_factor + 1e-5).all()
    # The quaternion it returns is the one of the bins it decoded.
    torch.testing.assert_close(pred.quaternion, bins_to_quaternion(pred.rotation_bins).float())
    keys = pred.keyposes()
    assert len(keys) == b and all(isinstance(k, Keypose) for k in keys)


def test_loss_requires_targets(policy, batch):
    no_targets = collate([{"points": batch.points[0], "colors": batch.colors[0], "instruction": "x"}])
    with pytest.raises(ValueError, match="targets"):
        policy.compute_loss(no_targets)


def test_image_features_see_the_instruction(policy, batch):
    """Bidirectional prefix attention: the image tokens' features change with the text (causal would not)."""
    views = policy.render_views(*policy._cube_cloud(batch))
    a = policy.backbone(views[:1], *policy.encode_instructions(["touch the red cube"]))
    b = policy.backbone(views[:1], *policy.encode_instructions(["touch the blue cube"]))
    assert a.shape == (1, 3, policy.backbone.hidden_size, 4, 4)
    assert (a - b).abs().max() > 1e-4


def test_image_features_see_the_instruction_in_padded_batches_and_ignore_the_padding(policy, batch):
    """In a batch of prompts of different lengths (padding), the image tokens still see their own instruction, and
    a sample's features are the same alone or next to a longer prompt. (Without token types transformers made the
    mask causal whenever a batch held padding: images, which come first, were blind to the text in training.)"""
    views = policy.render_views(*policy._cube_cloud(batch))[:1].repeat(2, 1, 1, 1, 1)
    long = "touch the red cube that is next to the green cube on the left"
    ids, attn = policy.encode_instructions(["touch the red cube", long])
    assert not bool(attn.all())  # the first prompt is padded
    a = policy.backbone(views, ids, attn)
    ids_b, attn_b = policy.encode_instructions(["touch the blue cube", long])
    b = policy.backbone(views, ids_b, attn_b)
    assert (a[0] - b[0]).abs().max() > 1e-4  # the instruction reaches the image tokens despite the padding
    alone = policy.backbone(views[:1], *policy.encode_instructions(["touch the red cube"]))
    torch.testing.assert_close(a[:1], alone, atol=1e-5, rtol=1e-4)
    # And gradients reach the instruction's token embeddings through the image tokens.
    emb = policy.backbone.model.model.language_model.embed_tokens.weight
    (grad,) = torch.autograd.grad(policy.backbone(views, ids, attn).square().sum(), emb)
    text = ids[0][attn[0].bool()][-4:]  # the first prompt's last real tokens ("red cube" and the newline)
    assert all(grad[t].norm() > 0 for t in text.tolist())


def test_single_image_heatmaps_for_pretraining(policy):
    logits = policy.heatmap_logits_2d(torch.rand(2, 3, 64, 64), ["the red cube", "a cup"])
    assert logits.shape == (2, 64, 64) and logits.dtype == torch.float32


def test_act_single_and_batched_match_predict(policy):
    obs = [overhead_observation(seed=i, instruction=t) for i, t in enumerate(["open the drawer", "push the button"])]
    one = policy.act(obs[0])
    both, pred = policy.act(obs, return_prediction=True)
    assert isinstance(one, Keypose) and len(both) == 2
    np.testing.assert_allclose(one.position, both[0].position, atol=1e-5)
    # act = the shared preprocessing + predict (reference path written out by hand here).
    p, c = observation_cloud(obs[1], policy.bounds)
    assert np.isfinite(p).all() and len(p) == 32 * 32 - 6  # 6 pixels without depth were dropped
    ref = policy.predict(collate([{"points": p, "colors": c, "instruction": "push the button"}]))
    np.testing.assert_allclose(both[1].position, ref.position[0].numpy(), atol=1e-5)
    assert pred.views[0].shape[0] == 2


def test_act_warns_on_an_empty_cloud(policy):
    obs = overhead_observation()
    obs.cameras["overhead"].extrinsics[:3, 3] = (10.0, 10.0, 10.0)  # the whole cloud leaves the bounds
    with pytest.warns(UserWarning, match="no points inside the scene bounds"):
        key = policy.act(obs)
    assert np.isfinite(key.position).all()


def test_act_rejects_bad_input(policy):
    with pytest.raises(ValueError, match="observation"):
        policy.act([])
    obs = overhead_observation()
    obs.instructions = []
    with pytest.raises(ValueError, match="instructions"):
        policy.act(obs)


def test_extra_channels_start_as_rgb_only():
    """The zero-initialised adapter makes depth/xyz inputs a no-op until trained."""
    rgb = tiny_policy(seed=3)
    extra = tiny_policy(seed=4, extra_channels=["depth", "xyz"])
    missing, unexpected = extra.load_state_dict(rgb.state_dict(), strict=False)
    assert sorted(missing) == ["backbone.extra_adapter.bias", "backbone.extra_adapter.weight"] and not unexpected
    batch = collate(tabletop_samples(1, seed=1, table_points=500, points_per_object=50))
    assert extra.render_views(*extra._cube_cloud(batch)).shape[2] == 7
    torch.testing.assert_close(extra.predict(batch).heatmaps[0], rgb.predict(batch).heatmaps[0])


# ---------------------------------------------------------------- oracle decode
def _oracle(policy, position: torch.Tensor, quaternion: torch.Tensor):
    """Replace the learned parts by oracles: heatmaps = Gaussians at the true point's projection in the frame of
    the current stage (stage 2 is zoomed around stage 1's fused point), rotation logits peaked at the true bins."""
    cfg, s = policy.config, policy.image_size
    target = world_to_cube(position.float(), policy.bounds)
    calls = []

    def heatmap_logits(views, ids, attn):
        if not calls:
            point = target
        else:  # the same centre predict() computes from stage 1
            point = zoom(target, fuse_heatmaps(heatmap_probs(calls[0]), cfg.decode_grid_res or s), cfg.zoom_factor)
        logits = torch.log(gaussian_targets(point, s, cfg.heatmap_sigma) + 1e-12)
        calls.append(logits)
        feats = torch.zeros(views.shape[0], 3, policy.backbone.hidden_size, cfg.grid_size, cfg.grid_size)
        return feats, logits

    def decode(inputs):
        bins = quaternion_to_bins(quaternion)
        n = inputs.shape[0]
        return {"bins": bins, "rotation": torch.zeros(n, 3, 72), "gripper": torch.tensor([[0.0, 1.0]] * n),
                "collision": torch.tensor([[1.0, 0.0]] * n)}

    policy.heatmap_logits = heatmap_logits
    policy.action_head.decode = decode


@settings(max_examples=15, deadline=None)
@given(
    xyz=st.tuples(st.floats(-0.25, 0.65), st.floats(-0.45, 0.45), st.floats(0.65, 1.55)),
    euler=st.tuples(st.floats(-179, 179), st.floats(-80, 80), st.floats(-179, 179)),
)
def test_oracle_heatmaps_decode_to_the_true_keypose(xyz, euler):
    from rendering import euler_to_quaternion

    policy = _ORACLE_POLICY
    position = torch.tensor([xyz], dtype=torch.float64)
    quat = euler_to_quaternion(torch.tensor([euler], dtype=torch.float64))
    _oracle(policy, position, quat)
    sample = tabletop_samples(1, seed=0, table_points=200, points_per_object=20)[0]
    pred = policy.predict(collate([sample]))
    assert (pred.position.double() - position).norm() < 0.01  # 1 cm
    assert quaternion_angle(pred.quaternion.double(), quat).item() < 5.0  # degrees
    assert bool(pred.gripper_open[0]) and not bool(pred.ignore_collisions[0])


_ORACLE_POLICY = tiny_policy(seed=5)


def test_bfloat16_weights_run_end_to_end():
    """The dtype path the 3B size uses on a GPU (bf16 weights, fp32 geometry and losses), exercised on the CPU."""
    policy = tiny_policy(seed=2, dtype="bfloat16")
    assert policy.backbone.dtype == torch.bfloat16 and policy.action_head.gripper.weight.dtype == torch.bfloat16
    batch = collate(tabletop_samples(1, seed=0, table_points=300, points_per_object=30))
    out = policy.compute_loss(batch)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    pred = policy.predict(batch)
    assert pred.position.dtype == torch.float32 and torch.isfinite(pred.position).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    cpu = tiny_policy(seed=6)
    gpu = tiny_policy(seed=6).to("cuda")
    batch = collate(tabletop_samples(2, seed=0, table_points=500, points_per_object=50))
    a, b = cpu.predict(batch), gpu.predict(batch)
    torch.testing.assert_close(a.heatmaps[0], b.heatmaps[0].cpu(), atol=1e-4, rtol=1e-3)
    assert (a.position - b.position.cpu()).norm(dim=-1).max() < 0.01
    assert gpu.compute_loss(batch)["loss"].device.type == "cuda"


def test_act_applies_the_training_point_budget():
    """max_points is the policy's: act() renders the same sparse clouds as training (a seeded random subset), so
    a policy trained on subsampled clouds never meets denser views at test time."""
    policy = tiny_policy(seed=9, max_points=100)
    obs = overhead_observation(seed=3)
    p, c = observation_cloud(obs, policy.bounds)
    assert len(p) > 100
    keep = np.sort(np.random.default_rng(0).choice(len(p), 100, replace=False))
    ip, ic = policy.input_cloud(obs)  # what act() renders, exposed for inspection tools
    np.testing.assert_array_equal(ip, p[keep])
    np.testing.assert_array_equal(ic, c[keep])
    ref = policy.predict(collate([{"points": p[keep], "colors": c[keep], "instruction": obs.instructions[0]}]))
    key, pred = policy.act(obs, return_prediction=True)
    np.testing.assert_allclose(key.position, ref.position[0].numpy(), atol=1e-6)
    torch.testing.assert_close(pred.views[0], ref.views[0])
    full = policy.predict(collate([{"points": p, "colors": c, "instruction": obs.instructions[0]}]))
    assert not torch.equal(pred.views[0], full.views[0])  # the budget really thinned the rendered views
    np.testing.assert_allclose(policy.act(obs).position, key.position)  # deterministic
    # ... and independent of the batch position: the same points are rendered.
    _, batched = policy.act([overhead_observation(seed=5), obs], return_prediction=True)
    torch.testing.assert_close(batched.views[0][1:], pred.views[0])


def test_act_uses_the_configured_cameras():
    policy = tiny_policy(seed=8, cameras=["overhead"])
    obs = overhead_observation(seed=1)
    obs.cameras["broken"] = overhead_observation(seed=2).cameras["overhead"]
    obs.cameras["broken"].extrinsics[:3, 3] = (0.0, 0.3, 1.7)
    single = policy.act(obs)
    del obs.cameras["broken"]
    np.testing.assert_allclose(single.position, policy.act(obs).position)
    policy.config.cameras = ["missing"]
    with pytest.raises(ValueError, match="missing"):
        policy.act(obs)
