"""The embedded task catalogue: name -> Task class (each environment makes its own instances).

``TASKS`` is the training catalogue. ``TEST_TASKS`` holds the level 2-4 test tasks (new colours, shapes,
articulated instances, long-horizon compositions; benchmarks/embedded/levels.py), which no training split uses.
``ALL_TASKS`` is both: every name an environment can reset.
"""

from __future__ import annotations

from benchmarks.embedded.tasks import long_horizon, novel
from benchmarks.embedded.tasks.base import Task
from benchmarks.embedded.tasks.blocks import LiftBlock, SlideBlock, StackBlocks
from benchmarks.embedded.tasks.buttons import PushButtons
from benchmarks.embedded.tasks.drawers import OpenDrawer, PutInDrawer
from benchmarks.embedded.tasks.placing import LidOnJar, RingOnPeg
from benchmarks.embedded.tasks.stick import DragStick
from benchmarks.embedded.tasks.tap import TurnTap

# Order: the five simplest (few, well-separated keyposes) first; the end-to-end demo trains on those.
_ORDER = (PushButtons, SlideBlock, LiftBlock, OpenDrawer, StackBlocks,
          PutInDrawer, TurnTap, RingOnPeg, LidOnJar, DragStick)
TASKS: dict[str, type[Task]] = {t.name: t for t in _ORDER}
_TEST = (
    novel.PushButtonsNewColours, novel.SlideBlockNewColours, novel.LiftBlockNewColours,
    novel.StackBlocksNewColours, novel.RingOnPegNewColours, novel.LidOnJarNewColours, novel.DragStickNewColours,
    novel.LiftCylinder, novel.LiftPrism, novel.SlideCylinder, novel.StackCylinders,
    novel.OpenDrawerWideCabinet, novel.OpenDrawerTallCabinet, novel.PutInDrawerWideCabinet, novel.TurnTapKnobs,
    novel.TurnTapLongLevers,
    long_horizon.PushFourButtons, long_horizon.StackFourBlocks, long_horizon.PutTwoInDrawer,
    long_horizon.PressThenStack,
)
TEST_TASKS: dict[str, type[Task]] = {t.name: t for t in _TEST}
ALL_TASKS: dict[str, type[Task]] = {**TASKS, **TEST_TASKS}

__all__ = ["ALL_TASKS", "TASKS", "TEST_TASKS", "Task"]
