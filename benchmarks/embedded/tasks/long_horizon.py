"""Level-4 test tasks: long-horizon tasks composed of trained skills (GemBench's L4 idea on our tasks), each with
its scripted expert and instructions. None is in the training catalogue (``tasks.TASKS``)."""

from __future__ import annotations

from itertools import permutations

import numpy as np

from benchmarks.embedded.palette import BLOCK_HALF, PLATFORM_RGB, SEEN_COLOURS
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    Task,
    block_xml,
    body_pos,
    kp,
    pad_xml,
    place_fixed,
    place_free,
    sample_points,
    set_colour,
    top_down,
)
from benchmarks.embedded.tasks.blocks import StackBlocks, stack_keyposes, stacked
from benchmarks.embedded.tasks.buttons import PRESSED, PushButtons, button_xml, press_keyposes
from benchmarks.embedded.tasks.drawers import (
    DRAWERS,
    ITEM_HALF,
    TRAIN_CABINET,
    PutInDrawer,
    cabinet_xml,
    drop_point,
    in_drawer,
    item_keyposes,
    open_then_release,
    place_cabinet,
)
from benchmarks.protocol import Keypose


class PushFourButtons(PushButtons):
    """Four buttons in a given order (training presses at most three)."""

    name = "push_buttons_4"
    mirrors = "GemBench L4 push_buttons4"
    N = 4
    LENGTHS = (4,)  # every order of the four colours: 24 variations
    manipulated = tuple(f"button{i}" for i in range(4))


class StackFourBlocks(StackBlocks):
    """A tower of four (training stacks two or three)."""

    name = "stack_blocks_4"
    mirrors = "GemBench L4 tower4"
    COUNTS = (4,)


class PutTwoInDrawer(PutInDrawer):
    """Open a drawer, then put two items into it, one after the other."""

    name = "put_two_in_drawer"
    mirrors = "GemBench L4 put_items_in_drawer"
    manipulated = ("item0", "item1")
    _LATERAL = 0.04  # the two items go this far either side of the drawer's middle

    def objects_xml(self) -> str:
        return cabinet_xml(self.CABINET) + "\n" + "\n".join(block_xml(f"item{i}", ITEM_HALF) for i in range(2))

    def instructions(self, variation: int) -> list[str]:
        d = DRAWERS[variation]
        return [f"put the two items in the {d} drawer", f"put both blocks away in the {d} drawer",
                f"open the {d} drawer and place both blocks inside it", f"leave the two blocks in the {d} drawer"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        place_cabinet(sim, rng, self.CABINET)
        cab = sim.model.body_pos[sim.body_id("cabinet")]
        side = rng.choice([-1.0, 1.0])  # item0 lies on this side of the cabinet, item1 on the other
        colours = rng.choice(len(SEEN_COLOURS), 2, replace=False)
        for i, sgn in enumerate((side, -side)):
            beside = rng.uniform(0.2, 0.28) + (self.CABINET.width - TRAIN_CABINET.width)
            xy = np.array([rng.uniform(0.05, 0.15), cab[1] + sgn * beside])
            place_free(sim, f"item{i}", xy, TABLE_TOP + ITEM_HALF, rng.uniform(-0.5, 0.5))
            set_colour(sim, f"item{i}", SEEN_COLOURS[int(colours[i])])
        self._drawer = DRAWERS[variation]

    def expert(self, sim: Sim) -> list[Keypose]:
        out = open_then_release(sim, self._drawer)
        frame = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)
        # Released 3 cm higher than a single item: off the drawer's middle, the long hand (fingers across the
        # drawer) reaches past the drawer's side walls, and must stay above them.
        drop = drop_point(sim, self._spec(sim), self._drawer, ITEM_HALF) + [0, 0, 0.03]
        # Up, turning the hand top-down, before going sideways to the items: an opened top drawer sits at hand
        # height, and a sideways sweep past its front can push it shut (the collision checker samples the path,
        # and the drawer front is thin).
        q_drop = top_down(np.arctan2(frame[1, 0], frame[0, 0]) + np.pi / 2)
        high = out[-1].position[2] + 0.12
        out.append(kp(out[-1].position + [0, 0, 0.12], q_drop, True))
        for i, sgn in enumerate((1.0, -1.0)):
            # Across at that height to above the item, then the usual pick and drop.
            item = body_pos(sim, f"item{i}")
            out.append(kp([item[0], item[1], high], q_drop, True))
            out += item_keyposes(sim, f"item{i}", drop + sgn * self._LATERAL * frame[:, 1], q_drop)
        return out

    def success(self, sim: Sim) -> bool:
        spec = self._spec(sim)
        return all(in_drawer(sim, spec, self._drawer, f"item{i}") for i in range(2)) and sim.gripper_open


_PRESS_STACK_COLOURS = SEEN_COLOURS[:4]
# (button colour, block colour), the two different: 12 variations.
_PRESS_STACK = list(permutations(_PRESS_STACK_COLOURS, 2))


class PressThenStack(Task):
    """Push a button, then stack two blocks: the push_buttons and stack_blocks skills in one episode."""

    name = "press_then_stack"
    mirrors = "GemBench L4 (a sequence of trained skills)"
    N_BUTTONS, N_BLOCKS = 2, 3

    def objects_xml(self) -> str:
        buttons = "\n".join(button_xml(i) for i in range(self.N_BUTTONS))
        blocks = "\n".join(block_xml(f"block{i}", BLOCK_HALF) for i in range(self.N_BLOCKS))
        return buttons + "\n" + pad_xml("base", 0.045) + "\n" + blocks

    def num_variations(self) -> int:
        return len(_PRESS_STACK)

    def instructions(self, variation: int) -> list[str]:
        b, c = _PRESS_STACK[variation]
        return [f"push the {b} button, then stack two {c} blocks on the platform",
                f"press the {b} button and then put two {c} blocks on top of each other on the platform",
                f"first push the {b} button, then build a tower of two {c} blocks on the platform",
                f"press the {b} button, then pile two {c} blocks up on the platform"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        b, c = _PRESS_STACK[variation]
        others = [x for x in _PRESS_STACK_COLOURS if x not in (b, c)]
        # Two buttons, the platform and three blocks, all at least 12 cm apart.
        xy = sample_points(rng, self.N_BUTTONS + 1 + self.N_BLOCKS, (0.02, -0.27), (0.42, 0.27), 0.12)
        self._colour_of = {0: b, 1: str(rng.choice(others))}
        for i in range(self.N_BUTTONS):
            place_fixed(sim, f"button{i}", xy[i])
            set_colour(sim, f"cap{i}", self._colour_of[i])
        sim.model.geom_rgba[sim.model.geom_bodyid == sim.body_id("base")] = [*PLATFORM_RGB, 1.0]
        place_fixed(sim, "base", xy[self.N_BUTTONS])
        yaw = rng.uniform(-np.pi / 4, np.pi / 4, self.N_BLOCKS)
        for i in range(self.N_BLOCKS):  # blocks 0 and 1 are the tower; block 2 has another colour
            set_colour(sim, f"block{i}", c if i < 2 else str(rng.choice([x for x in SEEN_COLOURS if x != c])))
            place_free(sim, f"block{i}", xy[self.N_BUTTONS + 1 + i], TABLE_TOP + BLOCK_HALF, yaw[i])
        self._button = b
        self._pressed: list[str] = []
        self._qadr = [sim.joint_qadr(f"press{i}") for i in range(self.N_BUTTONS)]
        sim.no_grasp_bodies = frozenset(sim.body_id(f"cap{i}") for i in range(self.N_BUTTONS))

    def expert(self, sim: Sim) -> list[Keypose]:
        return press_keyposes(sim, 0) + stack_keyposes(sim, 2)

    def on_tick(self, sim: Sim) -> None:
        for i, a in enumerate(self._qadr):
            c = self._colour_of[i]
            if sim.data.qpos[a] < PRESSED and c not in self._pressed:
                self._pressed.append(c)

    def success(self, sim: Sim) -> bool:
        return self._pressed == [self._button] and stacked(sim, 2)
