"""Level-2 and level-3 test tasks (GemBench's idea on our tasks, benchmarks/embedded/levels.py): the training tasks
with colours no training scene ever shows (``palette.UNSEEN_COLOURS``), rigid objects of new shapes, and new
instances of the articulated objects (other cabinet and tap dimensions and handle shapes). None of them is in the
training catalogue (``tasks.TASKS``); their experts are the training tasks' experts."""

from __future__ import annotations

from benchmarks.embedded.palette import UNSEEN_COLOURS
from benchmarks.embedded.tasks.blocks import LiftBlock, SlideBlock, StackBlocks
from benchmarks.embedded.tasks.buttons import PushButtons
from benchmarks.embedded.tasks.drawers import CabinetSpec, OpenDrawer, PutInDrawer
from benchmarks.embedded.tasks.placing import LidOnJar, RingOnPeg
from benchmarks.embedded.tasks.stick import DragStick
from benchmarks.embedded.tasks.tap import TapSpec, TurnTap

# Four of the unseen colours for the four-colour tasks: white and gray are left out there because the stacking
# platform is near-white and the button housings and the ring are dark grey (a target should not look like them).
UNSEEN_FOUR = ("teal", "navy", "maroon", "black")


# --------------------------------------------------------------------------------------- L2: new colours
class LiftBlockNewColours(LiftBlock):
    name = "lift_block_new_colours"
    mirrors = "GemBench L2 pick_and_lift (novel colours)"
    COLOURS = UNSEEN_COLOURS


class SlideBlockNewColours(SlideBlock):
    name = "slide_block_new_colours"
    mirrors = "GemBench L2 slide_block (novel colours)"
    COLOURS = UNSEEN_FOUR


class PushButtonsNewColours(PushButtons):
    name = "push_buttons_new_colours"
    mirrors = "GemBench L2 push_button (novel colours)"
    COLOURS = UNSEEN_FOUR


class StackBlocksNewColours(StackBlocks):
    name = "stack_blocks_new_colours"
    mirrors = "GemBench L2 stack_blocks (novel colours)"
    COLOURS = UNSEEN_FOUR


class RingOnPegNewColours(RingOnPeg):
    name = "ring_on_peg_new_colours"
    mirrors = "GemBench L2 insert_onto_square_peg (novel colours)"
    COLOURS = UNSEEN_COLOURS


class LidOnJarNewColours(LidOnJar):
    name = "lid_on_jar_new_colours"
    mirrors = "GemBench L2 close_jar (novel colours)"
    COLOURS = UNSEEN_COLOURS


class DragStickNewColours(DragStick):
    name = "drag_stick_new_colours"
    mirrors = "GemBench L2 reach_and_drag (novel colours)"
    COLOURS = UNSEEN_FOUR


# ---------------------------------------------------------------------------------------- L2: new shapes
class LiftCylinder(LiftBlock):
    name = "lift_cylinder"
    mirrors = "GemBench L2 pick_and_lift (novel object)"
    SHAPE = "cylinder"
    NOUNS = ("cylinder", "cylinder")


class LiftPrism(LiftBlock):
    name = "lift_prism"
    mirrors = "GemBench L2 pick_and_lift (novel object)"
    SHAPE = "hexprism"
    NOUNS = ("hexagonal prism", "hexagonal block")


class SlideCylinder(SlideBlock):
    name = "slide_cylinder"
    mirrors = "GemBench L2 slide_block (novel object)"
    SHAPE = "cylinder"
    NOUNS = ("cylinder", "cylinder")


class StackCylinders(StackBlocks):
    name = "stack_cylinders"
    mirrors = "GemBench L2 stack_blocks (novel object)"
    SHAPE = "cylinder"
    NOUNS = ("cylinder", "cylinder")


# ------------------------------------------------------------------------ L3: new articulated instances
# A wider, lower cabinet with round handle bars, and a narrower, taller one with longer square bars further out.
WIDE_CABINET = CabinetSpec(depth=0.12, width=0.17, level=0.05, handle_out=0.04, handle_shape="cylinder",
                           handle_half=0.03, handle_thick=0.009)
TALL_CABINET = CabinetSpec(depth=0.10, width=0.11, level=0.07, handle_out=0.05, handle_half=0.05,
                           handle_thick=0.007)
# Round knobs instead of levers; longer levers on taller stems set further apart.
KNOB_TAP = TapSpec(handle="knob")
LONG_LEVER_TAP = TapSpec(stem_h=0.065, handle_y=0.12, lever_half=0.07)


class OpenDrawerWideCabinet(OpenDrawer):
    name = "open_drawer_wide_cabinet"
    mirrors = "GemBench L3 open_drawer (novel instance)"
    CABINET = WIDE_CABINET


class OpenDrawerTallCabinet(OpenDrawer):
    name = "open_drawer_tall_cabinet"
    mirrors = "GemBench L3 open_drawer (novel instance)"
    CABINET = TALL_CABINET


class PutInDrawerWideCabinet(PutInDrawer):
    name = "put_in_drawer_wide_cabinet"
    mirrors = "GemBench L3 put_item_in_drawer (novel instance)"
    CABINET = WIDE_CABINET


class TurnTapKnobs(TurnTap):
    name = "turn_tap_knobs"
    mirrors = "GemBench L3 turn_tap (novel instance)"
    TAP = KNOB_TAP


class TurnTapLongLevers(TurnTap):
    name = "turn_tap_long_levers"
    mirrors = "GemBench L3 turn_tap (novel instance)"
    TAP = LONG_LEVER_TAP
