"""The scripted install: it parses, does what docs/benchmarks.md says (dry run), and pins what setup.py pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


SCRIPT = ROOT / "benchmarks" / "rlbench" / "install.sh"


def dry_run(tmp_path, *args):
    res = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--no-apt", "--prefix",
                          str(tmp_path), *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_dry_run_installs_coppeliasim_then_the_pinned_stack(tmp_path):
    out = dry_run(tmp_path)
    steps = [line[2:] for line in out.splitlines() if line.startswith("+ ")]
    url = "https://www.coppeliarobotics.com/files/V4_1_0/CoppeliaSim_Edu_V4_1_0_Ubuntu20_04.tar.xz"
    assert any(s.startswith("wget") and s.endswith(url) for s in steps)
    pip = next(i for i, s in enumerate(steps) if "pip install -e" in s and "[rlbench]" in s)
    assert pip > next(i for i, s in enumerate(steps) if s.startswith("tar -xf"))  # PyRep builds against it
    assert "checkout -q 098a910ae1d490524adb49b8d50735b00a1a62de" in out and "--no-deps -e" in out
    assert list(tmp_path.iterdir()) == []  # a dry run touches nothing
    gem = dry_run(tmp_path, "--gembench")
    assert "[gembench]" in gem and "robot-colosseum" not in gem
    res = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "unknown option --bogus" in res.stderr


def _extras() -> dict[str, list[str]]:
    ns: dict = {}
    exec((ROOT / "setup.py").read_text().split("\nsetup(")[0], ns)
    return ns["EXTRAS"]


@pytest.mark.parametrize(("extra", "constant", "module"), [
    ("rlbench", "RLBENCH_FORK", "benchmarks.rlbench.env"),
    ("gembench", "GEMBENCH_FORK", "benchmarks.gembench.env"),
])
def test_setup_pins_the_forks_the_adapters_name(extra, constant, module):
    import importlib

    named = getattr(importlib.import_module(module), constant)
    short = re.findall(r"@([0-9a-f]{7})\b", named)
    pins = [re.search(r"@([0-9a-f]{40})$", r).group(1) for r in _extras()[extra] if " @ git+" in r]
    assert short and all(any(p.startswith(s) for p in pins) for s in short)
    assert len(pins) == 2  # PyRep and RLBench, both pinned to a full commit
