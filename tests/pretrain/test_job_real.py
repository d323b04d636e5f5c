"""Pre-training on real detection data (fixtures in the RoboPoint and COCO schemas) with the tiny preset: outputs,
held-out grounding, the picture, bad images reported, exact resume, mixing, the CLI's errors, the 3B recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pretrain.__main__ import main
from pretrain.job import load_pretrain_config, run_pretraining
from tests.pretrain.fixtures import robopoint_entries, write_coco, write_robopoint

ROOT = Path(__file__).resolve().parents[2]
BASE = ["model.preset=tiny", "train.batch_size=4", "train.checkpoint_every=2", "train.log_every=1",
        "train.progress=false", "train.tensorboard=false", "data.eval_samples=2", "predictions=4"]


def _robopoint(tmp_path, out="run", *extra):
    path = write_robopoint(tmp_path / "data")
    return load_pretrain_config(None, [*BASE, "data.source=robopoint", f"data.annotations={path}",
                                       f"data.index_dir={tmp_path / 'idx'}", f"train.out_dir={tmp_path / out}",
                                       *extra])


def test_robopoint_pretraining_writes_policy_grounding_picture_and_data_report(tmp_path):
    (tmp_path / "data").mkdir()
    cfg = _robopoint(tmp_path, "run", "train.steps=3", "eval_every=2")
    (tmp_path / "data" / "img" / "c.png").write_bytes(b"not an image")  # unreadable: reported, not fatal
    run_pretraining(cfg)
    out = tmp_path / "run"
    for name in ("policy/model.safetensors", "loss.png", "metrics.jsonl", "config.yaml", "predictions.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    g = summary["grounding"]
    assert summary["data_source"] == "robopoint" and g["source"] == "robopoint" and g["image_size"] == 64
    assert 0.0 <= g["peak_in_box"] <= 1.0 and g["median_distance_px"] >= 0 and "grounding_synthetic" not in summary
    data = summary["data"]
    assert data["samples"] == 9 and data["train_samples"] + data["heldout_samples"] <= 9
    report = json.loads((out / "data_report.json").read_text())
    bad = str(tmp_path / "data" / "img" / "c.png")
    # c.png is read in training or held out (or both, over 3 steps of 4 from 7 samples it is drawn ~1.7 times).
    assert bad in {**report["unreadable_images"], **report["unreadable_heldout_images"]}
    rows = [json.loads(r) for r in (out / "grounding.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3] and rows[-1]["grounding.peak_in_box"] == g["peak_in_box"]
    assert Image.open(out / "predictions.png").size[0] >= 2 * 192


def test_coco_pretraining_mixed_with_synthetic_scenes(tmp_path):
    path = write_coco(tmp_path / "data")
    cfg = load_pretrain_config(None, [*BASE, "data.source=coco", f"data.annotations={path}",
                                      f"data.images={tmp_path / 'data'}", "data.templates=[{},the {}]",
                                      "data.synthetic_fraction=0.5", "scenes.table_points=200",
                                      "scenes.points_per_object=100", "eval_scenes=4", "train.steps=2",
                                      f"train.out_dir={tmp_path / 'run'}"])
    run_pretraining(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["grounding"]["source"] == "coco" and summary["grounding_synthetic"]["scenes"] == 4
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"heatmap_real", "heatmap_synthetic"} <= set(rows[0])
    # The total is the mean over the batch's 2 real and 2 synthetic samples.
    assert rows[0]["loss"] == pytest.approx((rows[0]["heatmap_real"] + rows[0]["heatmap_synthetic"]) / 2, rel=1e-5)


def _weights(run):
    return load_file(str(run / "policy" / "model.safetensors"))


def test_killed_and_resumed_real_pretraining_ends_with_the_same_weights_and_evaluating_changes_nothing(tmp_path):
    run_pretraining(_robopoint(tmp_path, "full", "train.steps=4", "eval_every=1"))
    run_pretraining(_robopoint(tmp_path, "cut", "train.steps=4", "eval_every=1"), stop_after=3)
    run_pretraining(_robopoint(tmp_path, "cut", "train.steps=4", "eval_every=1"), resume=True)
    run_pretraining(_robopoint(tmp_path, "quiet", "train.steps=4", "eval_every=0"))
    a, b, c = _weights(tmp_path / "full"), _weights(tmp_path / "cut"), _weights(tmp_path / "quiet")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed after checkpoint 2, replaying step 3
    assert all(torch.equal(a[k], c[k]) for k in a)  # held-out evaluation draws nothing from training's RNG
    rows = [json.loads(r)["step"] for r in (tmp_path / "cut" / "grounding.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]  # the killed run's step-3 row was dropped and written again after the replay


def test_epochs_set_the_number_of_steps(tmp_path):
    cfg = _robopoint(tmp_path, "ep", "data.epochs=2", "data.eval_samples=0", "predictions=0")
    result = run_pretraining(cfg)
    assert result.last_step == 5  # ceil(2 epochs * 9 samples / batch 4)


def test_cli_names_the_file_and_entry_of_a_malformed_annotation(tmp_path, capsys):
    entries = robopoint_entries()
    entries[4]["conversations"][1]["value"] = "[0.3, 0.2, 0.1]"
    path = write_robopoint(tmp_path / "data", entries, name="broken.json")
    rc = main([*BASE, "data.source=robopoint", f"data.annotations={path}", f"train.out_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "broken.json: entry 4 (id 'det/d'), turn 1: answer '[0.3, 0.2, 0.1]'" in err


@pytest.mark.parametrize(("args", "match"), [
    (["data.source=coco"], "data.annotations: data.source=coco needs"),
    (["data.source=coco", "data.annotations=/nonexistent.json"], "/nonexistent.json is not a file"),
    (["data.synthetic_fraction=0.5"], "apply to data.source=robopoint|coco only"),
    (["data.templates=[the thing]"], "exactly one '{}'"),
])
def test_cli_refuses_bad_data_settings_by_name(tmp_path, capsys, args, match):
    assert main([*BASE, f"train.out_dir={tmp_path}", *args]) == 2
    assert match in capsys.readouterr().err


def test_real_data_refuses_policy_views_and_extra_channels(tmp_path):
    with pytest.raises(ValueError, match="views=policy needs data.source=synthetic"):
        _robopoint(tmp_path, "x", "views=policy")
    with pytest.raises(ValueError, match="photographs have RGB only"):
        _robopoint(tmp_path, "x", "model.extra_channels=[depth]")


def test_cli_prints_the_real_grounding_and_data_lines(tmp_path, capsys):
    path = write_robopoint(tmp_path / "data")
    assert main([*BASE, "data.source=robopoint", f"data.annotations={path}", "train.steps=1",
                 f"train.out_dir={tmp_path / 'run'}"]) == 0
    text = capsys.readouterr().out
    assert "grounding on 2 held-out robopoint samples: peak inside a box" in text
    assert "data: 9 samples indexed (7 train, 2 held out); 0 images missing" in text


def test_reference_recipe_config_is_the_3b_recipe(tmp_path):
    path = write_robopoint(tmp_path / "data")
    cfg = load_pretrain_config(str(ROOT / "pretrain" / "configs" / "reference.yaml"),
                               [f"data.annotations={path}", f"data.images={tmp_path / 'data'}"])
    assert cfg.data.source == "robopoint" and cfg.data.epochs == 8 and cfg.data.templates == ["{}"]
    assert cfg.model.preset == "paligemma-3b-224" and cfg.model.image_size == 224 and cfg.model.patch_size == 14
    assert cfg.model.gradient_checkpointing and cfg.model.heatmap_sigma == 2.0 and cfg.model.dtype == "bfloat16"
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.schedule) == ("adamw", 5e-5, 400, "linear")
    assert cfg.train.precision == "bf16" and cfg.train.batch_size == 48
    assert cfg.freeze.vision_tower and cfg.freeze.embeddings
    # Fine-tuning loads the backbone and heatmap head by name and shape: the fine-tuning recipe's model must match.
    import yaml

    from bridgevla.model.config import BridgeVLAConfig

    fine = yaml.safe_load((ROOT / "bridgevla" / "configs" / "reference.yaml").read_text())["model"]
    a, b = BridgeVLAConfig(**fine), cfg.model
    assert all(getattr(a, f) == getattr(b, f) for f in ("preset", "image_size", "patch_size", "text_hidden_size",
                                                          "text_layers", "head_hidden_size", "vocab_size", "dtype"))


def test_frozen_vision_tower_with_gradient_checkpointing_still_trains_the_language_model():
    # The 3B recipe's combination on the tiny preset: frozen vision tower and embeddings, checkpointed layers. The
    # language layers and the heatmap head must get gradients, the frozen parts none.
    from bridgevla.model.config import BridgeVLAConfig
    from bridgevla.model.policy import BridgeVLAPolicy
    from bridgevla.training.config import FreezeConfig
    from bridgevla.training.loop import apply_freezing

    torch.manual_seed(0)
    policy = BridgeVLAPolicy(BridgeVLAConfig(preset="tiny", gradient_checkpointing=True))
    frozen = apply_freezing(policy, FreezeConfig(vision_tower=True, embeddings=True))
    policy.train()
    logits = policy.heatmap_logits_2d(torch.rand(2, 3, 64, 64), ["red block", "the cup"])
    logits.logsumexp((1, 2)).sum().backward()
    grads = {n: p.grad for n, p in policy.named_parameters()}
    assert frozen and all(grads[n] is None for n in frozen)
    lm = [n for n in grads if ".language_model.layers." in n]
    assert lm and all(grads[n] is not None and grads[n].abs().sum() > 0 for n in lm)
    assert all(grads[n] is not None for n in grads if n.startswith("heatmap_head."))


def _ddp_rank(rank: int, world: int, cfg_args: list[str], port: int, out: str) -> None:
    import os

    import torch.distributed as dist
    from safetensors.torch import save_file

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    run_pretraining(load_pretrain_config(None, cfg_args))
    dist.barrier()
    dist.destroy_process_group()
    save_file({"rank": torch.tensor([rank])}, f"{out}/done{rank}.safetensors")


@pytest.mark.slow
def test_ddp_pretraining_on_real_data_with_two_cpu_ranks(tmp_path):
    """torchrun's path on CPU (gloo): rank 0 builds the index while rank 1 waits for it; the ranks read disjoint
    samples, their gradients are all-reduced, and rank 0 writes the outputs."""
    import socket

    path = write_robopoint(tmp_path / "data")
    args = [*BASE, "data.source=robopoint", f"data.annotations={path}", f"data.index_dir={tmp_path / 'idx'}",
            f"train.out_dir={tmp_path / 'run'}", "train.steps=2", "train.batch_size=2"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_rank, args=(2, args, port, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "done0.safetensors").is_file() and (tmp_path / "done1.safetensors").is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["last_step"] == 2 and summary["grounding"]["samples"] == 2
