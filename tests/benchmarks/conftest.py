"""The fake CoppeliaSim stack (tests/benchmarks/fake_sim) as an opt-in fixture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

FAKE_SIM = Path(__file__).parent / "fake_sim"
_FAKE_TOP = ("pyrep", "rlbench", "colosseum", "close_box", "open_drawer")


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _FAKE_TOP:
            del sys.modules[name]


@pytest.fixture
def fake_harness(monkeypatch, tmp_path):
    """``install(fork="peract"|"gembench")`` puts the fakes first on the path (and CoppeliaSim's env var) and
    returns the fake simulator module, whose switches the test may flip."""

    def install(fork: str = "peract"):
        root = tmp_path / "CoppeliaSim_Edu_V4_1_0_Ubuntu20_04"
        root.mkdir(exist_ok=True)
        monkeypatch.setenv("COPPELIASIM_ROOT", str(root))
        monkeypatch.setenv("FAKE_RLBENCH_FORK", fork)
        monkeypatch.syspath_prepend(str(FAKE_SIM))
        _purge()
        from pyrep.backend import sim

        return sim

    state = np.random.get_state()  # harness resets reseed numpy's global RNG, as RLBench does
    yield install
    np.random.set_state(state)
    _purge()
