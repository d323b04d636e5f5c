"""Training checkpoints are checksummed: a corrupted or truncated one is never resumed; the run falls back to the
newest valid one and still ends bit-identical to an uninterrupted run; killed writers' temp folders are removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bridgevla.model.checkpoint import CheckpointError
from bridgevla.training.loop import Trainer
from bridgevla.training.state import (
    load_checkpoint,
    resumable_checkpoint,
    save_checkpoint,
    verify_training_checkpoint,
)

from .test_loop import OPTIM, SeededSource, TinyNet, _cfg


def _flip(path, offset: int = -40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip_model", "truncate_optimizer", "flip_state", "delete_rng", "flip_manifest"])
def test_a_damaged_latest_checkpoint_falls_back_and_ends_bit_identical(tmp_path, damage):
    torch.manual_seed(0)
    full = TinyNet()
    Trainer(full, SeededSource(), _cfg(tmp_path / "a"), OPTIM).fit()
    torch.manual_seed(0)
    m = TinyNet()
    Trainer(m, SeededSource(), _cfg(tmp_path / "b", checkpoint_every=2), OPTIM).fit(stop_after=6)
    ckpts = tmp_path / "b" / "checkpoints"
    newest = ckpts / "step_0000006"
    if damage == "flip_model":
        _flip(newest / "model.safetensors")
    elif damage == "truncate_optimizer":
        p = newest / "optimizer.safetensors"
        p.write_bytes(p.read_bytes()[:100])
    elif damage == "flip_state":
        _flip(newest / "state.json", 10)
    elif damage == "delete_rng":
        (newest / "rng.safetensors").unlink()
    else:
        _flip(newest / "manifest.json", 30)
    with pytest.raises(CheckpointError):
        verify_training_checkpoint(newest)
    resumed = TinyNet()
    with pytest.warns(UserWarning, match="step_0000006 is corrupted or incomplete"):
        Trainer(resumed, SeededSource(), _cfg(tmp_path / "b"), OPTIM).fit(resume=True)
    assert all(torch.equal(x, y) for x, y in zip(full.state_dict().values(), resumed.state_dict().values()))
    # The damaged one is kept for inspection under another name, never resumed, never pruned as a checkpoint.
    assert (ckpts / "rejected_step_0000006").is_dir()
    assert verify_training_checkpoint(ckpts / "step_0000008")


def test_no_valid_checkpoint_is_an_error_naming_each(tmp_path):
    m = TinyNet()
    opt = torch.optim.Adam(m.parameters())
    for step in (1, 2):
        save_checkpoint(tmp_path, step, m, opt, keep_last=2)
        _flip(tmp_path / f"step_{step:07d}" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"no valid checkpoint.*step_0000002: .*model.safetensors.*"
                                              r"step_0000001: .*model.safetensors"):
        resumable_checkpoint(tmp_path, quarantine=False)
    with pytest.raises(CheckpointError, match="model.safetensors has sha256"):
        load_checkpoint(tmp_path / "step_0000002", m, opt)  # loading verifies by itself too


def test_a_checkpoint_without_manifest_is_not_trusted(tmp_path):
    m = TinyNet()
    save_checkpoint(tmp_path, 1, m, torch.optim.Adam(m.parameters()))
    (tmp_path / "step_0000001" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        resumable_checkpoint(tmp_path, quarantine=False)


def test_temp_folders_of_killed_writers_are_cleaned_up(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = tmp_path / f".tmp_step_0000005_{dead}"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    m = TinyNet()
    save_checkpoint(tmp_path, 1, m, torch.optim.Adam(m.parameters()))
    assert not stale.exists()
    stale.mkdir()
    point = resumable_checkpoint(tmp_path)
    assert not stale.exists() and point.directory.name == "step_0000001" and not point.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step_0000001"]


def test_checkpoint_files_are_listed_with_their_sha256(tmp_path):
    m = TinyNet()
    d = save_checkpoint(tmp_path, 3, m, torch.optim.Adam(m.parameters()))
    manifest = json.loads((d / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["model.safetensors", "optimizer.safetensors", "rng.safetensors",
                                         "state.json"]
    assert all(len(e["sha256"]) == 64 and e["bytes"] == os.path.getsize(d / k) for k, e in manifest["files"].items())
