"""Subprocess drivers for the kill -9 tests: ``python -m tests.reliability.kill_drivers JOB DIR [POINT N]``.

``JOB`` is ``train`` (the trainer on a tiny module, one checkpoint per step) or ``repair`` (``read_done`` on a large
``episodes.jsonl`` with torn and corrupted lines). With ``POINT N`` the process SIGKILLs itself at the N-th call of
that point, leaving the files exactly as a kill -9 at that instant would (``torn`` points first cut the file just
written to half its length: a write the kill interrupted).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.reliability.faults import kill_self

TRAIN_STEPS = 8


def _arm(module, name: str, n: int, mode: str = "before", path_arg: int = 1) -> None:
    """Replace ``module.name`` by a wrapper that SIGKILLs the process at its n-th call: ``before`` the call,
    ``after_torn`` (after it, with the file it wrote cut to half: a write the kill interrupted) or ``cut_before``
    (the file it is about to use cut to half, then killed before the call)."""
    original = getattr(module, name)
    calls = {"n": 0}

    def cut(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n and mode == "before":
            kill_self()
        if calls["n"] == n and mode == "cut_before":
            cut(Path(args[path_arg]))
            kill_self()
        out = original(*args, **kwargs)
        if calls["n"] == n and mode == "after_torn":
            cut(Path(args[path_arg]))
            kill_self()
        return out

    setattr(module, name, wrapper)


def train(out: Path, point: str | None, n: int) -> None:
    import torch

    from bridgevla.training import state
    from bridgevla.training.loop import Trainer
    from tests.bridgevla.training.test_loop import OPTIM, SeededSource, TinyNet, _cfg

    torch.set_num_threads(1)
    if point == "model_torn":  # killed while writing the weights
        _arm(state, "save_model", n, "after_torn")
    elif point == "optimizer_torn":  # save_file writes the optimizer state, then the RNG states
        _arm(state, "save_file", 2 * n - 1, "after_torn")
    elif point == "before_manifest":  # every file written, no manifest yet
        _arm(state, "write_manifest", n)
    elif point == "before_rename":  # the complete folder still under its temporary name
        _arm(state, "fsync_tree", n)
    elif point == "after_rename":  # in place, latest.json still naming the previous one
        _arm(state, "fsync_dir", n)
    elif point == "during_prune":  # the new checkpoint in place, an old one about to be deleted
        _arm(state.shutil, "rmtree", n)
    elif point is not None:
        raise ValueError(point)
    torch.manual_seed(0)
    m = TinyNet()
    Trainer(m, SeededSource(), _cfg(out, steps=TRAIN_STEPS, checkpoint_every=1, keep_checkpoints=2), OPTIM).fit(
        resume=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(out / "final.safetensors"))


def repair(path: Path, point: str | None, n: int) -> None:
    import benchmarks.fileio as fileio
    from bridgevla.evaluation.runner import read_done

    if point == "after_quarantine":  # bad lines appended to .rejected, the file not yet rewritten
        _arm(fileio, "atomic_write_bytes", n)
    elif point == "temp_torn":  # the rewritten content half-way into its temporary file
        _arm(fileio.os, "replace", n, "cut_before", path_arg=0)
    elif point == "before_replace":  # the temporary file complete, not yet renamed over the original
        _arm(fileio.os, "replace", n)
    elif point == "after_replace":  # renamed, the directory entry not yet fsync'd
        _arm(fileio, "fsync_dir", n)
    elif point is not None:
        raise ValueError(point)
    import warnings

    warnings.simplefilter("ignore")
    print("repairing", flush=True)  # the imports are done: a kill from now on lands in the repair itself
    done = read_done(path)
    print(len(done), flush=True)


if __name__ == "__main__":
    job, target = sys.argv[1], Path(sys.argv[2])
    point, n = (sys.argv[3], int(sys.argv[4])) if len(sys.argv) > 4 else (None, 0)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"train": train, "repair": repair}[job](target, point, n)
