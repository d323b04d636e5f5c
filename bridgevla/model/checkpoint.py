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
Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT = "bridgevla-policy"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
BACKBONE_CONFIG = "backbone_config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete, corrupted or tampered with; the message says which file and why."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_manifest(root: str | Path) -> dict:
    """Hash every file under ``root`` (except the manifest) and write ``manifest.json`` atomically."""
    root = Path(root)
    files = {
        rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
        for rel in _files(root)
        if rel != MANIFEST
    }
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, root / MANIFEST)
    return manifest


def verify_checkpoint(root: str | Path) -> dict:
    """Check ``root`` against its manifest; returns the manifest or raises :class:`CheckpointError`."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint {root} is not a directory")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"checkpoint {root} has no {MANIFEST} (incomplete save or not a bridgevla checkpoint)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {root}: {MANIFEST} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
        manifest.get("files"), dict
    ):
        raise CheckpointError(f"checkpoint {root}: {MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {root}: format_version {manifest.get('format_version')} is not supported "
                              f"(expected {FORMAT_VERSION})")
    listed = manifest["files"]
    for rel in (CONFIG, BACKBONE_CONFIG, WEIGHTS):
        if rel not in listed:
            raise CheckpointError(f"checkpoint {root}: {MANIFEST} does not list {rel}")
    present = set(_files(root)) - {MANIFEST}
    extra = sorted(present - set(listed))
    if extra:
        raise CheckpointError(f"checkpoint {root}: files not in the manifest (refusing to load): {extra}")
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if ".." in Path(rel).parts or not path.is_file():
            raise CheckpointError(f"checkpoint {root}: {rel} is missing")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise CheckpointError(f"checkpoint {root}: {rel} has {size} bytes, the manifest says {entry.get('bytes')} "
                                  f"(truncated or modified)")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise CheckpointError(f"checkpoint {root}: {rel} has sha256 {digest[:12]}…, the manifest says "
                                  f"{str(entry.get('sha256'))[:12]}… (modified or corrupted)")
    return manifest
