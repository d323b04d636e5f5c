"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint directory ``step_000123/`` holds
- ``model.safetensors``: the model's state dict (``safetensors.torch.save_model`` so tied weights are handled);
- ``optimizer.safetensors``: every tensor of the optimizer state, keyed ``state.<param index>.<name>``;
- ``rng.safetensors``: the torch CPU (and CUDA) generator states, which are byte tensors;
- ``state.json``: step, optimizer param groups and scalar state, schedule state, numpy/python RNG states,
  the job config and anything the caller adds;
- ``manifest.json``: the sha256 and size of every other file (``bridgevla.model.checkpoint``'s manifest, format
  ``bridgevla-training-checkpoint``), written last.

``torch.save`` would be shorter but it is pickle, which the project refuses (a checkpoint is untrusted input).
Directories are built under a temporary name (``.tmp_step_<step>_<pid>``), fsync'd and renamed into place, and
``latest.json`` is replaced atomically, so a run killed at any instant leaves either the previous or the new
checkpoint, never half of one; the temp folder of a killed writer is removed by the next save or resume.

Resuming (:func:`resumable_checkpoint`) verifies every file against the manifest and takes the newest checkpoint
that passes; a corrupted or truncated one (a flipped bit, a full disk) is reported, moved aside as
``rejected_step_<step>`` and the run falls back to the previous one (``train.keep_checkpoints`` keeps two). If none
passes, resuming is refused with the reason for each: corrupted weights are never trained on.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from benchmarks.fileio import atomic_write_json, fsync_dir, fsync_tree, remove_stale_temps
from bridgevla.model.checkpoint import CheckpointError, verify_manifest, write_manifest

LATEST = "latest.json"
STATE_JSON = "state.json"
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", STATE_JSON)
FORMAT = "bridgevla-training-checkpoint"
TMP_PATTERN = ".tmp_step_*"
REJECTED_PREFIX = "rejected_"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _jsonable(value: Any, key: str) -> Any:
    """Optimizer hyper-parameters are numbers, bools, None or tuples of them; anything else is a bug to report."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"optimizer field {key} of type {type(value).__name__} cannot be stored as JSON")


def optimizer_state_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into a flat tensor dict (for safetensors) and a JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = _jsonable(value, name)
    groups = [{k: _jsonable(v, k) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_flat`: a dict ``optimizer.load_state_dict`` accepts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        # JSON turned tuples (Adam's betas) into lists; torch compares and unpacks them either way,
        # but we restore tuples so a reloaded state_dict equals the original one exactly.
        for k, v in g.items():
            if k != "params" and isinstance(v, list):
                g[k] = tuple(v)
        groups.append(g)
    return {"state": state, "param_groups": groups}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random generator a training step may draw from: torch CPU/CUDA, numpy's global, python's."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    meta = {
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = meta["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


@dataclass
class LoadedCheckpoint:
    step: int
    directory: Path
    extra: dict[str, Any]


@dataclass
class ResumePoint:
    """What :func:`resumable_checkpoint` found: the checkpoint to resume from (None: none yet) and the newer ones it
    had to skip, with the reason for each."""

    directory: Path | None
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def step_dirs(root: str | Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every ``step_<n>`` folder under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found, reverse=True)


def has_checkpoints(root: str | Path) -> bool:
    return bool(step_dirs(root)) or (Path(root) / LATEST).is_file()


def verify_training_checkpoint(directory: str | Path) -> dict:
    """Check every file of a training checkpoint against its manifest (raises :class:`CheckpointError`)."""
    return verify_manifest(directory, FORMAT, FILES)


def resumable_checkpoint(root: str | Path, quarantine: bool = True) -> ResumePoint:
    """The newest checkpoint under ``root`` whose files all match their manifest (see the module doc). With
    ``quarantine`` the newer ones that do not are renamed ``rejected_step_<n>`` (so that pruning and later saves
    never mistake them for checkpoints) and a warning names each with its reason. Raises :class:`CheckpointError`
    when checkpoints exist but none is valid."""
    root = Path(root)
    if quarantine:
        remove_stale_temps(root, TMP_PATTERN)
    skipped: list[tuple[Path, str]] = []
    chosen: Path | None = None
    for _, path in step_dirs(root):
        try:
            verify_training_checkpoint(path)
        except CheckpointError as e:
            skipped.append((path, str(e)))
            continue
        chosen = path
        break
    if skipped and quarantine:
        for path, reason in skipped:
            target = path.with_name(REJECTED_PREFIX + path.name)
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            os.replace(path, target)
            warnings.warn(f"checkpoint {path.name} is corrupted or incomplete and was moved to {target.name}: "
                          f"{reason}", stacklevel=2)
        fsync_dir(root)
    if chosen is None and skipped:
        raise CheckpointError(f"checkpoint_dir {root}: no valid checkpoint to resume from; "
                              + "; ".join(f"{p.name}: {r}" for p, r in skipped))
    return ResumePoint(chosen, skipped)


def save_checkpoint(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write ``root/step_<step>/`` atomically (with its manifest), point ``root/latest.json`` at it, prune older
    ones and the temp folders of killed writers."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root, TMP_PATTERN)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = optimizer_state_to_flat(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_meta = capture_rng()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {"step": step, "optimizer": opt_meta, "rng": rng_meta, "extra": extra or {}}
    (tmp / STATE_JSON).write_text(json.dumps(state))
    write_manifest(tmp, FORMAT)
    fsync_tree(tmp)
    if final.exists():  # a re-run of the same step: after a crash between rename and latest.json, or a fallback
        try:
            verify_training_checkpoint(final)
            shutil.rmtree(final)  # a valid copy of the same state: replaced
        except CheckpointError:
            os.replace(final, final.with_name(REJECTED_PREFIX + final.name))  # kept for inspection, never deleted
    os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_json(root / LATEST, {"step": step, "directory": final.name})
    if keep_last > 0:
        olds = [p for s, p in step_dirs(root) if p != final and s < step]
        for p in olds[keep_last - 1:]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The directory ``latest.json`` names, or None when there is no checkpoint yet (no verification: resuming uses
    :func:`resumable_checkpoint`)."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["directory"]
        if not isinstance(name, str) or not _STEP_DIR.match(name):
            raise ValueError(name)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint_dir: {pointer} is corrupted ({e})") from e
    path = root / name
    if not (path / STATE_JSON).is_file():
        raise ValueError(f"checkpoint_dir: {pointer} names {path}, which is missing or incomplete")
    return path


def load_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_random: bool = True,
    verify: bool = True,
) -> LoadedCheckpoint:
    """Load weights (strictly), optimizer state and RNG states from a directory written by save_checkpoint, after
    checking every file against its manifest (``verify``)."""
    directory = Path(directory)
    state_path = directory / STATE_JSON
    if not state_path.is_file():
        raise ValueError(f"checkpoint: {directory} holds no {STATE_JSON}; not a training checkpoint")
    if verify:
        verify_training_checkpoint(directory)
    try:
        return _load(directory, model, optimizer, restore_random)
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {directory} cannot be read ({type(e).__name__}: {e})") from e


def _load(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
          restore_random: bool) -> LoadedCheckpoint:
    state = json.loads((directory / STATE_JSON).read_text())
    missing, unexpected = load_model(model, str(directory / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint: {directory} does not match the model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}); was it written with another config?"
        )
    if optimizer is not None:
        flat = load_file(str(directory / "optimizer.safetensors"))
        optimizer.load_state_dict(optimizer_state_from_flat(flat, state["optimizer"]))
    if restore_random:
        restore_rng(load_file(str(directory / "rng.safetensors")), state["rng"])
    return LoadedCheckpoint(step=int(state["step"]), directory=directory, extra=state.get("extra", {}))
