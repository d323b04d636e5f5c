"""The embedded MuJoCo tabletop benchmark: a Franka Panda, four RLBench-like cameras and RLBench-like tasks.

See docs/tasks.md. ``EmbeddedEnv`` implements ``benchmarks.protocol.Environment`` plus the recording / expert
interface that demo generation uses (docs/INTERFACES.md).
"""

from benchmarks.embedded.config import CAMERA_NAMES, EmbeddedConfig
from benchmarks.embedded.env import EmbeddedEnv
from benchmarks.embedded.tasks import TASKS

__all__ = ["CAMERA_NAMES", "EmbeddedConfig", "EmbeddedEnv", "TASKS"]
