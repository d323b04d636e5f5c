"""kill -9 at chosen points and at random instants: while a training checkpoint is written, while a results file is
repaired, during demo generation and evaluation with worker processes. Every time: nothing valid is lost, the
resumed job ends exactly where an uninterrupted one does, and no worker outlives its killed parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from benchmarks.dataset_check import check_dataset
from benchmarks.fileio import REJECTED_SUFFIX, jsonl_line, read_jsonl
from bridgevla.training.state import step_dirs, verify_training_checkpoint

from .faults import injected, record

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
pytestmark = pytest.mark.slow


def _driver(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.reliability.kill_drivers", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[-1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


# ---------------------------------------------------------------- training checkpoints
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("ref")
    r = _driver("train", str(out))
    assert r.returncode == 0, r.stderr
    return load_file(str(out / "final.safetensors"))


POINTS = [("model_torn", 3), ("optimizer_torn", 4), ("before_manifest", 2), ("before_rename", 5),
          ("after_rename", 3), ("during_prune", 2)]


@pytest.mark.parametrize(("point", "n"), POINTS)
def test_kill_during_checkpoint_write_resumes_bit_identical(reference, tmp_path, point, n):
    injected("kill -9", f"checkpoint write ({point})")
    killed = _driver("train", str(tmp_path), point, str(n))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _driver("train", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    final = load_file(str(tmp_path / "final.safetensors"))
    assert final.keys() == reference.keys() and all(torch.equal(final[k], reference[k]) for k in final)
    ckpts = tmp_path / "checkpoints"
    assert not list(ckpts.glob(".tmp_step_*"))  # the killed writer's temp folder was cleaned up
    for _, d in step_dirs(ckpts):
        verify_training_checkpoint(d)
    record("kill -9", f"checkpoint write ({point})", "recovered")


def test_kills_at_random_instants_resume_bit_identical(reference, tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(5):
        injected("kill -9", "training at a random instant")
        proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.kill_drivers", "train", str(tmp_path)],
                                cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for the job to start checkpointing, then kill at a random instant of its remaining run.
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "checkpoints").glob("step_*")) and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record("kill -9", "training at a random instant", "recovered")
    r = _driver("train", str(tmp_path))
    assert r.returncode == 0, r.stderr
    final = load_file(str(tmp_path / "final.safetensors"))
    assert all(torch.equal(final[k], reference[k]) for k in final)


# ---------------------------------------------------------------- results-file repair
def _episodes_file(path: Path, n: int = 40_000) -> set[bytes]:
    """A large episodes.jsonl with corrupted lines in the middle and a torn tail; returns its valid lines."""
    lines = [jsonl_line({"agent": "random", "task": f"t{i % 7}", "seed": 0, "episode": i, "success": False,
                         "error": "x", "keyposes": 25, "seconds": 0.5}).encode() for i in range(n)]
    lines[100] = b'{"agent": "random", "ta' + b"\xff\xfe garbage\n"
    lines[2000] = lines[2000].replace(b'"success": false', b'"success": fals3')
    path.write_bytes(b"".join(lines) + b'{"agent": "random", "task": "t0", "se')
    return {ln.rstrip(b"\n") for i, ln in enumerate(lines) if i not in (100, 2000)}


@pytest.mark.parametrize(("point", "n"), [("after_quarantine", 1), ("temp_torn", 1), ("before_replace", 1),
                                          ("after_replace", 1)])
def test_kill_during_jsonl_repair_loses_nothing(tmp_path, point, n):
    path = tmp_path / "episodes.jsonl"
    valid = _episodes_file(path)
    injected("kill -9", f"episodes.jsonl repair ({point})")
    killed = _driver("repair", str(path), point, str(n))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    present = {ln for ln in path.read_bytes().split(b"\n") if ln}
    assert valid <= present  # the old or the new file: every valid line is there
    again = _driver("repair", str(path))
    assert again.returncode == 0 and int(again.stdout.split()[-1]) == len(valid), again.stderr
    assert {ln for ln in path.read_bytes().split(b"\n") if ln} == valid
    rejected = path.with_name(path.name + REJECTED_SUFFIX).read_bytes()
    assert b"garbage" in rejected and b"fals3" in rejected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".episodes.jsonl.tmp")]  # killed writer's temp
    record("kill -9", f"episodes.jsonl repair ({point})", "recovered")


def test_kills_at_random_instants_of_a_large_repair_lose_nothing(tmp_path):
    """The issue's case: a restart rewrote a large episodes.jsonl in place and a kill left it empty."""
    path = tmp_path / "episodes.jsonl"
    rng = np.random.default_rng(1)
    for _ in range(4):
        valid = _episodes_file(path, 150_000)  # ~22 MB, damaged afresh each time
        injected("kill -9", "episodes.jsonl repair at a random instant")
        proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.kill_drivers", "repair", str(path)],
                                cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout.readline().strip() == "repairing"
        time.sleep(float(rng.uniform(0.0, 3.0)))  # the repair itself takes ~4 s here
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        present = {ln for ln in path.read_bytes().split(b"\n") if ln}
        assert valid <= present, "a kill during the repair lost valid lines"
        assert read_jsonl(path).records and {ln for ln in path.read_bytes().split(b"\n") if ln} == valid
        record("kill -9", "episodes.jsonl repair at a random instant", "recovered")


# ---------------------------------------------------------------- generation and evaluation with workers
def _kill_parent_with_workers(cmd: list[str], ready) -> list[int]:
    """Start ``cmd``, wait until ``ready()`` and its two workers run, SIGKILL it; returns the worker pids."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()
                   .replace("\0", " ")] if _alive(proc.pid) else []
        if len(workers) >= 2 and ready():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return workers


def test_killing_generation_leaves_no_worker_and_a_rerun_completes_the_same_dataset(tmp_path):
    gen = [sys.executable, "-m", "bridgevla", "generate", "--env", "tests.reliability.slow_envs:SlowFakeDemoEnv",
           "--tasks", "pick_fake", "reach_fake", "--episodes", "12", "--workers", "2"]
    out = tmp_path / "killed"
    injected("kill -9", "generate parent (2 workers)")
    workers = _kill_parent_with_workers([*gen, "--out", str(out)], lambda: len(list(out.glob("*/episode_*"))) >= 3)
    assert workers and _gone_within(workers, 3.0), "generation workers outlived their killed parent"
    done_before = len(list(out.glob("*/episode_*")))
    assert 3 <= done_before < 24
    assert subprocess.run([*gen, "--out", str(out)], cwd=ROOT, env=ENV, capture_output=True).returncode == 0
    clean = tmp_path / "clean"
    assert subprocess.run([*gen, "--out", str(clean), "--workers", "1"], cwd=ROOT, env=ENV,
                          capture_output=True).returncode == 0
    report = check_dataset(out)
    assert report.ok and report.episodes == 24 and not report.notes, report.text()
    assert not list(out.glob("*/.tmp-*"))
    for ep in sorted(clean.glob("*/episode_*")):
        mine = out / ep.relative_to(clean)
        a, b = json.loads((ep / "episode.json").read_text()), json.loads((mine / "episode.json").read_text())
        assert a == b
        with np.load(ep / "lowdim.npz") as x, np.load(mine / "lowdim.npz") as y:
            assert all(np.array_equal(x[k], y[k]) for k in x.files)
    record("kill -9", "generate parent (2 workers)", "recovered")


def test_killing_evaluation_leaves_no_worker_and_resume_completes(tmp_path):
    ev = [sys.executable, "-m", "bridgevla", "eval", "--benchmark", "tests.reliability.slow_envs:make_slow_fake_env",
          "--agents", "random,expert", "--episodes", "6", "--seeds", "0", "--workers", "2", "--out", str(tmp_path),
          "progress=false"]
    path = tmp_path / "episodes.jsonl"
    injected("kill -9", "eval parent (2 workers)")
    workers = _kill_parent_with_workers(ev, lambda: path.exists() and len(path.read_text().splitlines()) >= 2)
    assert workers and _gone_within(workers, 3.0), "evaluation workers outlived their killed parent"
    before = read_jsonl(path, repair=False).records
    assert 2 <= len(before) < 36
    r = subprocess.run(ev, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = read_jsonl(path).records
    keys = [(x["agent"], x["task"], x["seed"], x["episode"]) for x in after]
    assert len(set(keys)) == 36 and all(b in after for b in before)  # finished episodes kept, the rest run once
    record("kill -9", "eval parent (2 workers)", "recovered")
