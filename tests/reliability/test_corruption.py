"""Bit flips, truncations and deletions of every kind of file we write and read back: each one is detected (a
clear error naming the file), recovered from (a fallback, the valid data intact) or provably harmless, and no valid
data is ever destroyed by the code that reads it.

The default run injects a few faults per (file kind, fault); ``--runslow`` injects many more (the figures in
docs/RELIABILITY.md come from ``BRIDGEVLA_FAULT_LOG=... pytest --runslow tests/reliability``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from benchmarks.dataset_check import check_dataset
from benchmarks.fileio import REJECTED_SUFFIX, jsonl_line
from bridgevla.evaluation.runner import read_done
from bridgevla.model.checkpoint import CheckpointError
from bridgevla.model.policy import BridgeVLAPolicy
from bridgevla.training.job import check_resume_config, read_saved_config
from bridgevla.training.loop import Trainer, _truncate_metrics
from bridgevla.training.state import load_checkpoint, resumable_checkpoint
from tests.bridgevla.data.test_dataset import write_dataset
from tests.bridgevla.model_helpers import tiny_policy
from tests.bridgevla.training.test_loop import OPTIM, SeededSource, TinyNet, _cfg

from .faults import damage, injected, record

FAULTS = ("bitflip", "truncate", "delete")
SAMPLE, FULL = 2, 50  # faults per (target, fault kind): default run, --runslow


# ---------------------------------------------------------------- pristine artifacts, built once
@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pristine")
    torch.manual_seed(0)
    tiny_policy(seed=3).save_pretrained(root / "policy")
    torch.manual_seed(0)
    Trainer(TinyNet(), SeededSource(), _cfg(root / "train", steps=4, checkpoint_every=2), OPTIM).fit()
    write_dataset(root / "data", {"reach": 1})
    records = [{"agent": "policy", "task": f"t{i % 3}", "seed": 0, "episode": i, "success": bool(i % 2),
                "error": None if i % 2 else "x", "keyposes": 3, "seconds": 1.5} for i in range(60)]
    (root / "episodes.jsonl").write_text("".join(jsonl_line(r) for r in records))
    (root / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 41)))
    from bridgevla.configuration import to_dict
    from bridgevla.training.job import TrainJobConfig

    (root / "config.yaml").write_text(yaml.safe_dump(to_dict(TrainJobConfig()), sort_keys=False))
    return {"root": root, "records": records}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().split(b"\n") if ln.strip()] if path.exists() else []


# ---------------------------------------------------------------- one consumer per kind of file
def policy_dir(work: Path, fault: str, rng: np.random.Generator) -> tuple[str, int]:
    target = _files(work / "policy")[int(rng.integers(len(_files(work / "policy"))))]
    before = json.loads((work / "policy" / "manifest.json").read_text())
    damage(target, fault, rng)
    try:
        BridgeVLAPolicy.from_pretrained(work / "policy")
    except CheckpointError as e:
        assert target.name in str(e) or "manifest" in str(e) or "not valid JSON" in str(e), str(e)
        return "detected", 0
    # Loaded: only possible if the damage left every file byte-identical in meaning (a no-op flip in the manifest).
    assert target.name == "manifest.json" and json.loads(target.read_text()) == before
    return "harmless", 0


def training_checkpoint(work: Path, fault: str, rng: np.random.Generator) -> tuple[str, int]:
    ckpts = work / "train" / "checkpoints"
    newest, older = ckpts / "step_0000004", ckpts / "step_0000002"
    expected_older = {k: v.clone() for k, v in _load_weights(older).items()}
    candidates = [*_files(newest), ckpts / "latest.json"]
    target = candidates[int(rng.integers(len(candidates)))]
    damage(target, fault, rng)
    with _quiet():
        point = resumable_checkpoint(ckpts)
    if target.name == "latest.json":  # a pointer for people; resuming scans the folders
        assert point.directory == newest
        return "harmless", 0
    assert point.directory == older and (ckpts / "rejected_step_0000004").is_dir()
    got = _load_weights(older)
    lost = sum(not torch.equal(got[k], expected_older[k]) for k in expected_older)
    return "recovered", lost


def _load_weights(step_dir: Path) -> dict[str, torch.Tensor]:
    m = TinyNet()
    load_checkpoint(step_dir, m, restore_random=False)
    return m.state_dict()


@contextlib.contextmanager
def _quiet():
    """Quarantine warnings are expected (the unit tests check them); silence them here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def dataset_episode(work: Path, fault: str, rng: np.random.Generator) -> tuple[str, int]:
    episode = work / "data" / "reach" / "episode_00000"
    files = _files(episode)
    target = files[int(rng.integers(len(files)))]
    before = json.loads((episode / "manifest.json").read_text())
    damage(target, fault, rng)
    report = check_dataset(work / "data")
    if report.ok:
        assert target.name == "manifest.json"
        if fault == "delete":  # the data is intact; the episode is reported as unchecksummed
            assert any("no manifest.json" in m for _, m in report.notes)
            return "detected", 0
        assert json.loads(target.read_text()) == before
        return "harmless", 0
    assert report.bad_paths() == [episode]
    rel = target.relative_to(episode).as_posix()
    assert any(rel in m or "manifest" in m for _, m in report.problems), report.text()
    return "detected", 0


def _jsonl_invariants(path: Path, damaged: list[bytes]) -> int:
    """Valid lines lost by the reader: lines of the damaged file neither kept nor quarantined."""
    after = _lines(path)
    rejected = _lines(path.with_name(path.name + REJECTED_SUFFIX))
    return len(set(damaged) - set(after) - set(rejected))


def episodes_jsonl(work: Path, fault: str, rng: np.random.Generator, records: list[dict]) -> tuple[str, int]:
    path = work / "episodes.jsonl"
    if fault == "delete":  # a deleted results file: every episode is simply run again
        path.unlink()
        assert read_done(path) == {}
        return "recovered", 0
    damage(path, fault, rng)
    damaged = _lines(path)
    with _quiet():
        done = read_done(path)
    lost = _jsonl_invariants(path, damaged)
    assert all(r in records for r in done.values())  # a corrupted record is never taken for a finished episode
    return ("recovered" if len(done) < len(records) else "harmless"), lost


def metrics_jsonl(work: Path, fault: str, rng: np.random.Generator) -> tuple[str, int]:
    path = work / "metrics.jsonl"
    if fault == "delete":
        path.unlink()
        _truncate_metrics(path, 20)
        return "harmless", 0
    damage(path, fault, rng)
    damaged = _lines(path)
    _truncate_metrics(path, 20)  # what a resume from step 20 does
    kept = [json.loads(ln) for ln in _lines(path)]
    assert all(not isinstance(r, dict) or not isinstance(r.get("step"), int) or r["step"] <= 20 for r in kept)
    superseded = {ln for ln in damaged if _step(ln) is not None and _step(ln) > 20}
    lost = len(set(damaged) - superseded - set(_lines(path)) - set(_lines(path.with_name(path.name + REJECTED_SUFFIX))))
    return "recovered", lost


def _step(line: bytes) -> int | None:
    try:
        r = json.loads(line)
    except ValueError:
        return None
    return r.get("step") if isinstance(r, dict) and isinstance(r.get("step"), int) else None


def run_config(work: Path, fault: str, rng: np.random.Generator) -> tuple[str, int]:
    from bridgevla.configuration import to_dict
    from bridgevla.training.job import _RESUME_MAY_CHANGE, TrainJobConfig, _flat

    path = work / "config.yaml"
    current = to_dict(TrainJobConfig())
    if fault == "delete":
        path.unlink()  # run_training then resumes with the current settings and writes it anew
        return "harmless", 0
    damage(path, fault, rng)
    try:
        saved = read_saved_config(path)
        check_resume_config(saved, current)
    except ValueError:  # ConfigError included: refused by file or by key
        return "detected", 0
    changed = {k for k in set(_flat(saved)) | set(_flat(current)) if _flat(saved).get(k) != _flat(current).get(k)}
    assert changed <= _RESUME_MAY_CHANGE, changed
    return "harmless", 0


TARGETS = {"policy": policy_dir, "training checkpoint": training_checkpoint, "dataset episode": dataset_episode,
           "episodes.jsonl": episodes_jsonl, "metrics.jsonl": metrics_jsonl, "run config.yaml": run_config}


def _inject(pristine, tmp_path: Path, target: str, fault: str, n: int) -> None:
    for i in range(n):
        rng = np.random.default_rng([zlib.crc32(target.encode()), FAULTS.index(fault), i])
        work = tmp_path / f"w{i}"
        shutil.copytree(pristine["root"], work)
        injected(fault, target)
        fn = TARGETS[target]
        outcome, lost = fn(work, fault, rng, pristine["records"]) if target == "episodes.jsonl" else \
            fn(work, fault, rng)
        assert lost == 0, (target, fault, i)
        record(fault, target, outcome, lost)
        shutil.rmtree(work)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_file_kind_survives_a_sample_of_faults(pristine, tmp_path, target, fault):
    _inject(pristine, tmp_path, target, fault, SAMPLE)


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_file_kind_survives_many_faults(pristine, tmp_path, target, fault):
    _inject(pristine, tmp_path, target, fault, FULL)
