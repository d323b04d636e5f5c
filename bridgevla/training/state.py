"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint directory ``step_000123/`` holds
- ``model.safetensors``: the model's state dict (``safetensors.torch.save_model`` so tied weights are handled);
- ``optimizer.safetensors``: every tensor of the optimizer state, keyed ``state.<param index>.<name>``;
- ``rng.safetensors``: the torch CPU (and CUDA) generator states, which are byte tensors;
- ``state.json``: step, optimizer param groups and scalar state, schedule state, numpy/python RNG states,
  the job config and anything the caller adds.

``torch.save`` would be shorter but it is pickle, which the project refuses (a checkpoint is untrusted input).
Directories are built under a temporary name and renamed into place, and ``latest.json`` is replaced with
``os.replace``, so a run killed at any instant leaves either the previous or the new checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

LATEST = "latest.json"
STATE_JSON = "state.json"


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


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def save_checkpoint(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write ``root/step_<step>/`` atomically, point ``root/latest.json`` at it, prune older ones."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
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
    if final.exists():  # a re-run of the same step after a crash between rename and latest.json
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_json_atomic(root / LATEST, {"step": step, "directory": final.name})
    if keep_last > 0:
        olds = sorted(p for p in root.glob("step_*") if p.is_dir() and p != final)
        for p in olds[: max(0, len(olds) - (keep_last - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The directory ``latest.json`` names, or None when there is no checkpoint yet."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    name = json.loads(pointer.read_text())["directory"]
    path = root / name
    if not (path / STATE_JSON).is_file():
        raise ValueError(f"checkpoint_dir: {pointer} names {path}, which is missing or incomplete")
    return path


def load_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_random: bool = True,
) -> LoadedCheckpoint:
    """Load weights (strictly), optimizer state and RNG states from a directory written by save_checkpoint."""
    directory = Path(directory)
    state_path = directory / STATE_JSON
    if not state_path.is_file():
        raise ValueError(f"checkpoint: {directory} holds no {STATE_JSON}; not a training checkpoint")
    state = json.loads(state_path.read_text())
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
