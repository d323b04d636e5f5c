"""Policy checkpoints: safetensors + JSON (+ the tokenizer's JSON files) with a sha256 manifest checked on load.

Layout of a policy directory::

    config.json            BridgeVLAConfig (resolved: every field concrete)
    backbone_config.json   the PaliGemmaConfig the backbone was built with
    model.safetensors      the policy's state dict (the lm_head tied to the token embeddings is stored once)
    tokenizer/             tokenizer.save_pretrained output (JSON)
    manifest.json          {"format", "format_version", "files": {relative path: {"sha256", "bytes"}}}

The manifest is written last, so an interrupted save leaves a directory that loading refuses. Loading refuses a
missing manifest, a listed file that is missing, shorter/longer than recorded (truncation) or with another sha256
(tampering), and any file not listed (something that could be picked up, e.g. by the tokenizer loader).
Nothing is ever unpickled. Training checkpoints (``bridgevla.training.state``) carry the same manifest under their
own format name (:func:`write_manifest` / :func:`verify_manifest` with ``fmt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks import fileio
from benchmarks.fileio import MANIFEST, ManifestError, sha256_file

FORMAT = "bridgevla-policy"
FORMAT_VERSION = fileio.MANIFEST_VERSION
CONFIG = "config.json"
BACKBONE_CONFIG = "backbone_config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"

__all__ = ["BACKBONE_CONFIG", "CONFIG", "FORMAT", "MANIFEST", "TOKENIZER_DIR", "WEIGHTS", "CheckpointError",
           "sha256_file", "verify_checkpoint", "verify_manifest", "write_manifest"]


class CheckpointError(ManifestError):
    """A checkpoint directory is incomplete, corrupted or tampered with; the message says which file and why."""


def write_manifest(root: str | Path, fmt: str = FORMAT) -> dict:
    """Hash every file under ``root`` (except the manifest) and write ``manifest.json`` atomically."""
    return fileio.write_manifest(root, fmt)


def verify_checkpoint(root: str | Path) -> dict:
    """Check a policy directory against its manifest; returns the manifest or raises :class:`CheckpointError`."""
    root = Path(root)
    if not root.is_dir():
        old = root.with_name(root.name + ".old")
        hint = f" (a save was interrupted: the previous policy is in {old})" if old.is_dir() else ""
        raise CheckpointError(f"checkpoint {root} is not a directory{hint}")
    return verify_manifest(root, FORMAT, (CONFIG, BACKBONE_CONFIG, WEIGHTS))


def verify_manifest(root: str | Path, fmt: str, required: Sequence[str] = ()) -> dict:
    """Check every file of checkpoint ``root`` against its manifest of format ``fmt`` (raises
    :class:`CheckpointError` naming the first bad file)."""
    return fileio.verify_manifest(root, fmt, required, what="checkpoint", error=CheckpointError)
