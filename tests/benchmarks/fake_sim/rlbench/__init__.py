"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/__init__.py`` (``FAKE_RLBENCH_FORK=gembench``: rjgpinel/RLBench
@ ebdc339). See fake_sim/README.md."""

import os

FORK = os.environ.get("FAKE_RLBENCH_FORK", "peract")
__version__ = "1.3.1" if FORK == "gembench" else "1.2.0"

import numpy as np  # noqa: E402
import pyrep  # noqa: E402

pr_v = np.array(pyrep.__version__.split("."), dtype=int)
if pr_v.size < 4 or np.any(pr_v < np.array([4, 1, 0, 2])):
    raise ImportError("PyRep version must be greater than 4.1.0.2. Please update PyRep.")

from rlbench.action_modes.action_mode import ActionMode  # noqa: E402, F401
from rlbench.environment import Environment  # noqa: E402, F401
from rlbench.observation_config import CameraConfig, ObservationConfig  # noqa: E402, F401
