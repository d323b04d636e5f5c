"""save_pretrained / from_pretrained: identical outputs, refusal of tampered/truncated/extra files, and the
real-weights path (a tiny PaliGemma + processor in the Hugging Face layout, loaded the way a user loads a real one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

from bridgevla.data.batch import collate
from bridgevla.model.backbone import build_backbone_parts
from bridgevla.model.checkpoint import CheckpointError, verify_checkpoint
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.policy import BridgeVLAPolicy
from bridgevla.model.tokenizer import IMAGE, build_offline_tokenizer
from pretrain.scenes import tabletop_samples
from tests.bridgevla.model_helpers import (
    single_thread,  # noqa: F401 (a fixture)
    tiny_policy,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def batch():
    return collate(tabletop_samples(2, seed=0, table_points=600, points_per_object=80))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    policy = tiny_policy(seed=7, extra_channels=["depth"])
    path = policy.save_pretrained(tmp_path_factory.mktemp("ckpt") / "policy")
    return policy, path


def _same_outputs(a: BridgeVLAPolicy, b: BridgeVLAPolicy, batch) -> None:
    pa, pb = a.predict(batch), b.predict(batch)
    assert torch.equal(pa.position, pb.position) and torch.equal(pa.rotation_bins, pb.rotation_bins)
    for ha, hb in zip(pa.heatmaps, pb.heatmaps):
        assert torch.equal(ha, hb)
    torch.manual_seed(1)
    la = a.compute_loss(batch)
    torch.manual_seed(1)
    lb = b.compute_loss(batch)
    assert all(torch.equal(la[k], lb[k]) for k in la)


def test_save_load_gives_identical_outputs(saved, batch):
    policy, path = saved
    loaded = BridgeVLAPolicy.from_pretrained(path)
    assert loaded.config == policy.config
    _same_outputs(policy, loaded, batch)
    # Tied weights are stored once and re-tied on load.
    m = loaded.backbone.model
    assert m.lm_head.weight.data_ptr() == m.model.language_model.embed_tokens.weight.data_ptr()
    assert sorted(p.name for p in path.iterdir()) == [
        "backbone_config.json", "config.json", "manifest.json", "model.safetensors", "tokenizer"]


def test_no_pickle_anywhere(saved):
    _, path = saved
    for f in path.rglob("*"):
        if f.is_file():
            assert f.suffix in (".json", ".safetensors"), f
            assert not f.read_bytes().startswith(b"\x80"), f"{f} looks like a pickle"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(saved, tmp_path):
    path = _copy(saved[1], tmp_path / "p")
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF  # same size, one flipped byte in the weights
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors has sha256"):
        BridgeVLAPolicy.from_pretrained(path)


def test_truncated_file_is_refused(saved, tmp_path):
    path = _copy(saved[1], tmp_path / "p")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        BridgeVLAPolicy.from_pretrained(path)


def test_edited_config_and_extra_or_missing_files_are_refused(saved, tmp_path):
    path = _copy(saved[1], tmp_path / "a")
    cfg = json.loads((path / "config.json").read_text())
    cfg["zoom_factor"] = 2.0
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    with pytest.raises(CheckpointError, match="config.json"):
        verify_checkpoint(path)
    path = _copy(saved[1], tmp_path / "b")
    (path / "tokenizer" / "special_tokens_map.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not in the manifest"):
        verify_checkpoint(path)
    path = _copy(saved[1], tmp_path / "c")
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        BridgeVLAPolicy.from_pretrained(path)
    with pytest.raises(CheckpointError, match="not a directory"):
        verify_checkpoint(tmp_path / "nothing")


def test_resave_replaces_the_directory(saved, tmp_path):
    policy, _ = saved
    path = tmp_path / "p"
    policy.save_pretrained(path)
    (path / "stale.txt").write_text("x")  # would be refused on load if it survived a re-save
    policy.save_pretrained(path)
    assert not (path / "stale.txt").exists()
    verify_checkpoint(path)


def test_partial_weights_for_pretrained_backbone_and_head(saved, batch):
    source, path = saved
    target = tiny_policy(seed=11, extra_channels=["depth"])
    keys = target.load_weights(path, prefixes=("backbone.", "heatmap_head."))
    assert keys and all(k.startswith(("backbone.", "heatmap_head.")) for k in keys)
    assert torch.equal(target.heatmap_head.logit[0].weight, source.heatmap_head.logit[0].weight)
    assert not torch.equal(target.action_head.gripper.weight, source.action_head.gripper.weight)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        tiny_policy(seed=0, head_hidden_size=16, extra_channels=["depth"]).load_weights(path)
    with pytest.raises(CheckpointError, match="unknown to this model"):
        tiny_policy(seed=0).load_weights(path)


# ------------------------------------------------------------------ the real-weights path
@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny PaliGemma and its processor saved in the Hugging Face layout, like google/paligemma-3b-pt-224."""
    torch.manual_seed(3)
    model, tok, cfg = build_backbone_parts(BridgeVLAConfig(preset="tiny"))
    image_processor = SiglipImageProcessor(
        size={"height": cfg.image_size, "width": cfg.image_size}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.4]
    )
    image_processor.image_seq_length = cfg.grid_size**2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=build_offline_tokenizer())
    folder = tmp_path_factory.mktemp("hf") / "paligemma-tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model


def test_real_weights_path_loads_through_from_pretrained(hf_folder, batch, tmp_path):
    folder, model = hf_folder
    policy = BridgeVLAPolicy(BridgeVLAConfig(preset="tiny", backbone_path=str(folder)))
    # The backbone weights are the saved ones, the normalisation is the processor's, the sizes the folder's.
    for (name, p), (_, q) in zip(policy.backbone.model.named_parameters(), model.named_parameters()):
        assert torch.equal(p, q), name
    assert policy.config.image_mean == pytest.approx((0.4, 0.5, 0.6))
    assert policy.config.image_size == 64 and policy.config.text_hidden_size == 64
    # Our prompt = the real processor's prompt for three views and the instruction.
    processor = PaliGemmaProcessor.from_pretrained(folder)
    img = np.zeros((64, 64, 3), np.uint8)
    ref = processor(images=[[img] * 3], text=[IMAGE * 3 + "touch the red cube"], return_tensors="pt")
    ids, attn = policy.encode_instructions(["touch the red cube"])
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(attn, ref["attention_mask"])
    # ... and its pixel normalisation equals the processor's on the same image.
    views = torch.rand(1, 1, 3, 64, 64)
    ours = policy.backbone.pixel_values(views)
    theirs = processor.image_processor(images=[(views[0, 0].permute(1, 2, 0) * 255).round().byte().numpy()],
                                       return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, theirs, atol=0.03, rtol=0)  # processor quantises to uint8 and resamples
    # A policy built on real weights saves and reloads like any other (without the original folder).
    loaded = BridgeVLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "p"))
    _same_outputs(policy, loaded, batch)


def test_real_weights_path_refuses_disagreeing_sizes(hf_folder):
    folder, _ = hf_folder
    with pytest.raises(ValueError, match="image_size=128 disagrees"):
        BridgeVLAPolicy(BridgeVLAConfig(preset="tiny", backbone_path=str(folder), image_size=128, patch_size=16))
    with pytest.raises(ValueError, match="no config.json"):
        BridgeVLAPolicy(BridgeVLAConfig(preset="tiny", backbone_path=str(folder / "missing")))


def test_hf_folder_is_loadable_by_transformers_directly(hf_folder):
    """The fixture really is the Hugging Face layout (guards the test above against testing a private format)."""
    folder, model = hf_folder
    again = PaliGemmaForConditionalGeneration.from_pretrained(folder)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
