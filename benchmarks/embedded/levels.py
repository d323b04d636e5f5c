"""GemBench-like generalisation levels of the embedded benchmark, and the named splits that keep them apart.

- ``L1`` new placements: the training tasks and their variations, on scenes (seeds) no demo used.
- ``L2`` new rigid objects: the colour tasks with colours no training scene shows (``palette.UNSEEN_COLOURS``), and
  objects of new shapes (cylinders, a hexagonal prism) in the rigid-object tasks.
- ``L3`` new articulated instances: cabinets of other dimensions with other handles, taps with knobs or longer
  levers.
- ``L4`` long-horizon tasks composed of trained skills: four buttons, a tower of four, two items into a drawer,
  a button press followed by a stack.

Splits: ``train`` is the training catalogue (``tasks.TASKS``) on demo seeds (``benchmarks.generate`` uses seeds
0..N-1); ``L1``-``L4`` are test splits evaluated on seeds from ``TEST_SEED_OFFSET`` on (the evaluation runner's
default offset), so L1 shares only task names with ``train``, never a scene. Nothing of L2-L4 (colour, shape,
cabinet, tap, task) appears in ``train``: tests/benchmarks/test_embedded_levels.py checks the scenes themselves.
GemBench scores a level as the mean over its task-variations; ours is the mean over its tasks (each task's episodes
cycle through its variations).
"""

from __future__ import annotations

from benchmarks.embedded.tasks import TASKS, TEST_TASKS

TEST_SEED_OFFSET = 1_000_000  # test episodes use seeds >= this (bridgevla's evaluation default seed_offset)

LEVELS: dict[str, tuple[str, ...]] = {
    "L1": tuple(TASKS),
    "L2": ("push_buttons_new_colours", "slide_block_new_colours", "lift_block_new_colours",
           "stack_blocks_new_colours", "ring_on_peg_new_colours", "lid_on_jar_new_colours",
           "drag_stick_new_colours", "lift_cylinder", "lift_prism", "slide_cylinder", "stack_cylinders"),
    "L3": ("open_drawer_wide_cabinet", "open_drawer_tall_cabinet", "put_in_drawer_wide_cabinet", "turn_tap_knobs",
           "turn_tap_long_levers"),
    "L4": ("push_buttons_4", "stack_blocks_4", "put_two_in_drawer", "press_then_stack"),
}
SPLITS: dict[str, tuple[str, ...]] = {"train": tuple(TASKS), **LEVELS}


def level_of(task: str) -> str:
    """The level a test task belongs to ("L1" for the training tasks)."""
    for level, names in LEVELS.items():
        if task in names:
            return level
    raise ValueError(f"task {task!r} is in no level; levels hold {sorted(n for v in LEVELS.values() for n in v)}")


def level_tasks() -> list[str]:
    """Every task of the levels suite, level by level."""
    return [t for names in LEVELS.values() for t in names]


def _check() -> None:
    listed = set(level_tasks()) - set(TASKS)
    if listed != set(TEST_TASKS):
        raise RuntimeError(f"levels and TEST_TASKS disagree: {sorted(listed ^ set(TEST_TASKS))}")


_check()
