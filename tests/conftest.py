import os

import pytest

# Headless MuJoCo rendering: EGL works on CPU (Mesa llvmpipe) and GPU alike.
os.environ.setdefault("MUJOCO_GL", "egl")
# One intra-op thread per test process: the suite runs one process per core (pytest -n 2), and oversubscribed torch
# threads on a small machine are many times slower than one thread each (docs/PERFORMANCE.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
