"""Co-training with synthetic grounding scenes (pretrain/cotrain.py) through the real training job, tiny policy."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from bridgevla.training.job import load_job_config, run_training
from pretrain.cotrain import CotrainConfig, SyntheticGrounding
from pretrain.scenes import SceneConfig
from tests.bridgevla.data.test_dataset import write_dataset
from tests.bridgevla.model_helpers import tiny_policy

ARGS = ["model.preset=tiny", "train.batch_size=2", "train.checkpoint_every=2", "train.log_every=1",
        "train.progress=false", "train.tensorboard=false", "model.max_points=300", "optim.lr=1e-3",
        "optim.warmup_steps=2", "train.steps=6"]
SCENES = SceneConfig(table_points=200, points_per_object=60, colours=["red", "green", "blue", "yellow", "cyan"])


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    write_dataset(root, {"reach": 1, "push": 1})
    return root


def _task(weight: float = 1.0, seed: int = 0) -> SyntheticGrounding:
    return SyntheticGrounding(CotrainConfig(enabled=True, batch_size=2, weight=weight, scenes=SCENES), seed)


def test_batches_depend_only_on_k_and_seed_and_differ_from_pretraining():
    from pretrain.job import SceneBatches

    a, b = _task().batch(5), _task().batch(5)
    assert a.instructions == b.instructions and torch.equal(a.points, b.points)
    assert not torch.equal(_task().batch(6).points, a.points)
    assert not torch.equal(_task(seed=1).batch(5).points, a.points)
    assert not torch.equal(SceneBatches(SCENES, 2, 0).batch(5).points, a.points)  # fresh scenes, not pre-training's


def test_loss_is_the_weighted_two_stage_heatmap_loss():
    policy = tiny_policy(seed=0)
    batch = _task().batch(0)
    torch.manual_seed(3)
    one = _task(1.0).loss(policy, batch)
    torch.manual_seed(3)  # the stage-2 centre noise draws from torch's generator: same draw, same terms
    three = _task(3.0).loss(policy, batch)
    assert set(one) == {"loss", "trans_stage1", "trans_stage2"}
    assert torch.allclose(one["loss"], one["trans_stage1"] + one["trans_stage2"])
    assert torch.allclose(three["loss"], 3 * one["loss"])
    with pytest.raises(ValueError, match="cotrain.batch_size"):
        CotrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="cotrain.weight"):
        CotrainConfig(weight=0.0)


def test_cotraining_logs_both_objectives_records_itself_and_resumes_exactly(demos, tmp_path):
    def cfg(out):
        return load_job_config(None, [*ARGS, f"data.root={demos}", f"train.out_dir={out}"])

    run_training(cfg(tmp_path / "full"), auxiliary=_task())
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"grounding_trans_stage1", "grounding_trans_stage2", "trans_stage1", "rot_x"} <= set(rows[0])
    total = rows[0]["loss"]
    parts = sum(v for k, v in rows[0].items() if k not in ("step", "lr", "loss", "grad_norm"))
    assert total == pytest.approx(parts, rel=1e-5)  # the logged loss is the policy's terms plus the scenes'
    saved = yaml.safe_load((tmp_path / "full" / "config.yaml").read_text())
    assert saved["auxiliary"]["name"] == "grounding" and saved["auxiliary"]["batch_size"] == 2
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["last_step"] == 6 and summary["samples_per_task"] == {"push": 4, "reach": 4}

    run_training(cfg(tmp_path / "cut"), stop_after=3, auxiliary=_task())
    torch.manual_seed(999)
    run_training(cfg(tmp_path / "cut"), resume=True, auxiliary=_task())
    a = load_file(str(tmp_path / "full" / "policy" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "policy" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # without the scenes it is another run: the weights differ, and resuming a co-trained run without them is refused
    run_training(cfg(tmp_path / "plain"))
    c = load_file(str(tmp_path / "plain" / "policy" / "model.safetensors"))
    assert any(not torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="auxiliary"):
        run_training(cfg(tmp_path / "cut"), resume=True)


def _grads(policy) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}


def test_one_pass_gives_the_two_pass_losses_and_gradients():
    """`cotrain.one_pass`: the scenes ride in the demos' backbone pass (a batch of both, clouds of different sizes
    padded) — with the random draws switched off (stage-1 noise, rotation-bin noise), every loss term and every
    parameter's gradient equals the two-pass computation's (a separate `heatmap_terms` call for the scenes)."""
    from bridgevla.data.batch import collate
    from bridgevla.training.job import CoBatch, _CoTrained
    from pretrain.scenes import tabletop_samples

    policy = tiny_policy(seed=0, stage1_noise=0.0, rotation_bin_noise=(0, 0))
    demos = collate(tabletop_samples(3, seed=0, table_points=500, points_per_object=80))
    batch = CoBatch(demos, _task().batch(0))
    assert batch.extra.points.shape[1] != demos.points.shape[1]  # the padding is exercised
    results = {}
    for one_pass in (False, True):
        task = SyntheticGrounding(CotrainConfig(enabled=True, batch_size=2, weight=0.7, scenes=SCENES,
                                                one_pass=one_pass), 0)
        policy.zero_grad()
        out = _CoTrained(policy, task).compute_loss(batch)
        out["loss"].backward()
        results[one_pass] = ({k: v.detach() for k, v in out.items()}, _grads(policy))
    (two, g_two), (one, g_one) = results[False], results[True]
    assert set(one) == set(two) and {"grounding_trans_stage1", "grounding_trans_stage2", "rot_x"} <= set(one)
    for k in two:
        torch.testing.assert_close(one[k], two[k], rtol=1e-5, atol=1e-5, msg=k)
    torch.testing.assert_close(two["loss"], sum(v for k, v in two.items() if k != "loss" and not
                                                k.startswith("grounding_")) + 0.7 * (two["grounding_trans_stage1"]
                                                                                     + two["grounding_trans_stage2"]))
    assert g_one.keys() == g_two.keys() and len(g_one) > 10
    for n in g_two:
        torch.testing.assert_close(g_one[n], g_two[n], rtol=1e-4, atol=1e-6, msg=n)


def test_heatmap_samples_refuse_mismatched_shapes():
    from bridgevla.model.policy import HeatmapSamples

    with pytest.raises(ValueError, match="HeatmapSamples"):
        HeatmapSamples(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.ones(2, 4, dtype=torch.bool),
                       torch.zeros(2, 3), ["a", "b"])
    with pytest.raises(ValueError, match="HeatmapSamples"):
        HeatmapSamples(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.ones(2, 5, dtype=torch.bool),
                       torch.zeros(2, 3), ["a"])
