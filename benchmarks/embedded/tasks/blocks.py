"""Block tasks: pick and lift, slide to a coloured target, stack blocks of a colour."""

from __future__ import annotations

import numpy as np

from benchmarks.embedded.palette import BLOCK_HALF, PLATFORM_RGB, SEEN_COLOURS, TARGET_HALF, WOOD_RGB
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    SHAPE_PERIOD,
    Task,
    block_xml,
    body_pos,
    hexprism_asset,
    kp,
    pad_xml,
    place_fixed,
    place_free,
    sample_points,
    set_colour,
    top_down,
)
from benchmarks.protocol import Keypose

_REGION_LO, _REGION_HI = (0.02, -0.25), (0.4, 0.25)
_BLOCK_Z = TABLE_TOP + BLOCK_HALF


def _block_yaw(sim: Sim, body: str, period: float = np.pi / 2) -> float:
    """Yaw of a block folded into [-period/2, period/2): a cube looks the same every quarter turn (a cylinder
    always: period 0 gives yaw 0)."""
    if period == 0:
        return 0.0
    x_axis = sim.data.xmat[sim.body_id(body)].reshape(3, 3)[:, 0]
    yaw = np.arctan2(x_axis[1], x_axis[0])
    return (yaw + period / 2) % period - period / 2


def _grasp_keyposes(sim: Sim, body: str, lift: float = 0.12, period: float = np.pi / 2) -> list[Keypose]:
    """Above the block (open), down to it and close. Keyposes that make contact on purpose (grasping, placing,
    pressing, pushing) ignore collisions, as RLBench's demonstrations label them."""
    p = body_pos(sim, body)
    q = top_down(_block_yaw(sim, body, period))
    return [kp(p + [0, 0, lift], q, True), kp(p, q, False, ignore_collisions=True)]


class _Shaped:
    """Rigid objects of one shape: the training tasks use cubes; GemBench-like level-2 tasks other shapes."""

    SHAPE = "box"
    NOUNS = ("block", "cube")  # instruction words for the object: the main one and an alternative

    def assets_xml(self) -> str:
        return hexprism_asset(BLOCK_HALF) if self.SHAPE == "hexprism" else ""

    def _object_xml(self, name: str, **kw) -> str:
        return block_xml(name, BLOCK_HALF, shape=self.SHAPE, **kw)


class LiftBlock(_Shaped, Task):
    name = "lift_block"
    mirrors = "GemBench pick_and_lift / RLBench pick_and_lift"
    N_BLOCKS = 3
    COLOURS = SEEN_COLOURS
    manipulated = ("block0",)
    colour_named = frozenset({"mo"})

    def objects_xml(self) -> str:
        return "\n".join(self._object_xml(f"block{i}") for i in range(self.N_BLOCKS))

    def num_variations(self) -> int:
        return len(self.COLOURS)

    def instructions(self, variation: int) -> list[str]:
        c, (n, alt) = self.COLOURS[variation], self.NOUNS
        return [f"pick up the {c} {n} and lift it up", f"grasp the {c} {n} and raise it",
                f"lift the {c} {alt} off the table", f"pick the {c} {n} up"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        others = [c for c in self.COLOURS if c != self.COLOURS[variation]]
        colours = [self.COLOURS[variation], *rng.choice(others, self.N_BLOCKS - 1, replace=False)]
        xy = sample_points(rng, self.N_BLOCKS, _REGION_LO, _REGION_HI, 0.12)
        yaw = rng.uniform(-np.pi / 4, np.pi / 4, self.N_BLOCKS)
        for i in range(self.N_BLOCKS):
            set_colour(sim, f"block{i}", str(colours[i]))
            place_free(sim, f"block{i}", xy[i], _BLOCK_Z, yaw[i])

    def expert(self, sim: Sim) -> list[Keypose]:
        grasp = _grasp_keyposes(sim, "block0", period=SHAPE_PERIOD[self.SHAPE])
        return grasp + [kp(grasp[1].position + [0, 0, 0.2], grasp[1].quaternion, False)]

    def success(self, sim: Sim) -> bool:
        held = sim.grasp is not None and sim.grasp.body == sim.body_id("block0")
        return held and body_pos(sim, "block0")[2] > _BLOCK_Z + 0.12


class SlideBlock(_Shaped, Task):
    name = "slide_block"
    mirrors = "RLBench slide_block_to_color_target"
    N_TARGETS = 4
    SPACING = 0.15  # block-to-target distance
    COLOURS = SEEN_COLOURS[:4]  # target i has colour COLOURS[i]
    manipulated = ("block",)
    receivers = tuple(f"target{i}" for i in range(N_TARGETS))
    colour_named = frozenset({"ro"})

    def objects_xml(self) -> str:
        pads = "\n".join(pad_xml(f"target{i}", TARGET_HALF / 1.5) for i in range(self.N_TARGETS))
        return pads + "\n" + self._object_xml("block", mass=0.05, friction=0.5, rgb=WOOD_RGB)

    def num_variations(self) -> int:
        return self.N_TARGETS

    def instructions(self, variation: int) -> list[str]:
        c, n = self.COLOURS[variation], self.NOUNS[0]
        return [f"slide the {n} to the {c} target", f"push the {n} onto the {c} square",
                f"slide the {n} until it is on top of the {c} plane", f"move the {n} to the {c} target area"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        centre = rng.uniform((0.13, -0.08), (0.27, 0.08))
        dirs = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        # Target i has colour COLOURS[i]; which side of the block it lies on is random.
        order = rng.permutation(self.N_TARGETS)
        for i in range(self.N_TARGETS):
            set_colour(sim, f"target{i}", self.COLOURS[i])
            place_fixed(sim, f"target{i}", centre + self.SPACING * dirs[order[i]])
        place_free(sim, "block", centre, _BLOCK_Z, 0.0)
        self._target = f"target{variation}"

    def expert(self, sim: Sim) -> list[Keypose]:
        block = body_pos(sim, "block")[:2]
        goal = sim.model.body_pos[sim.body_id(self._target)][:2].copy()
        u = (goal - block) / np.linalg.norm(goal - block)
        q = top_down(np.arctan2(u[1], u[0]) + np.pi / 2)  # fingers side by side across the push direction
        start = block - 0.075 * u
        half = BLOCK_HALF * sim.scale_of("block")
        end = goal - (half + 0.011) * u  # the finger face (1 cm ahead of the TCP) leaves the block on the goal
        z = TABLE_TOP + 0.02
        return [kp([*start, z + 0.1], q, False), kp([*start, z], q, False),
                kp([*end, z], q, False, ignore_collisions=True)]

    def success(self, sim: Sim) -> bool:
        block = body_pos(sim, "block")[:2]
        goal = sim.model.body_pos[sim.body_id(self._target)][:2]
        return bool(np.max(np.abs(block - goal)) < TARGET_HALF / 1.5 * sim.scale_of(self._target))

    def placement(self) -> tuple[str, str, tuple[str, ...]]:
        return "block", self._target, self.receivers


class StackBlocks(_Shaped, Task):
    name = "stack_blocks"
    mirrors = "RLBench stack_blocks"
    N_BLOCKS = 5
    COLOURS = SEEN_COLOURS[:4]
    COUNTS = (2, 3)
    manipulated = tuple(f"block{i}" for i in range(N_BLOCKS))
    receivers = ("base",)
    colour_named = frozenset({"mo"})

    def objects_xml(self) -> str:
        return pad_xml("base", 0.045) + "\n" + "\n".join(self._object_xml(f"block{i}")
                                                       for i in range(self.N_BLOCKS))

    def num_variations(self) -> int:
        return len(self.COLOURS) * len(self.COUNTS)

    def _spec(self, variation: int) -> tuple[str, int]:
        return self.COLOURS[variation % len(self.COLOURS)], self.COUNTS[variation // len(self.COLOURS)]

    def instructions(self, variation: int) -> list[str]:
        c, n = self._spec(variation)
        w = {2: "two", 3: "three", 4: "four"}[n]
        b, alt = self.NOUNS[0] + "s", self.NOUNS[1] + "s"
        # The platform is never named by its colour: a perturbation may recolour it.
        return [f"stack {w} {c} {b} on the platform", f"place {w} of the {c} {alt} on top of each other",
                f"build a tower of {w} {c} {b} on the platform", f"pile {w} {c} {b} up on the platform"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        colour, n = self._spec(variation)
        # Block i < n is a target block; the rest are distractors of other colours (never the target colour).
        others = [c for c in self.COLOURS if c != colour]
        xy = sample_points(rng, self.N_BLOCKS + 1, _REGION_LO, _REGION_HI, 0.11)
        sim.model.geom_rgba[sim.model.geom_bodyid == sim.body_id("base")] = [*PLATFORM_RGB, 1.0]
        place_fixed(sim, "base", xy[-1])
        yaw = rng.uniform(-np.pi / 4, np.pi / 4, self.N_BLOCKS)
        for i in range(self.N_BLOCKS):
            set_colour(sim, f"block{i}", colour if i < n else str(rng.choice(others)))
            place_free(sim, f"block{i}", xy[i], _BLOCK_Z, yaw[i])
        self._n = n

    def expert(self, sim: Sim) -> list[Keypose]:
        return stack_keyposes(sim, self._n, SHAPE_PERIOD[self.SHAPE])

    def success(self, sim: Sim) -> bool:
        return stacked(sim, self._n)


def stack_keyposes(sim: Sim, n: int, period: float = np.pi / 2) -> list[Keypose]:
    """Blocks ``block0`` .. ``block{n-1}`` one by one onto the platform ``base``."""
    base = sim.model.body_pos[sim.body_id("base")].copy()
    out: list[Keypose] = []
    half = BLOCK_HALF * sim.scale_of("block0")  # the size factor resizes all blocks alike
    for i in range(n):
        grasp = _grasp_keyposes(sim, f"block{i}", period=period)
        # Drop the block 5 mm above the current top of the stack, square with the table axes.
        place = base + [0, 0, half + 2 * half * i + 0.005]
        q = top_down(0.0)
        # Release, then retreat straight up so that the open fingers never brush the stack sideways.
        out += grasp + [kp(place + [0, 0, 0.1], q, False), kp(place, q, True, True),
                         kp(place + [0, 0, 0.1], q, True)]
    return out


def stacked(sim: Sim, n: int) -> bool:
    """``block0`` .. ``block{n-1}`` stand in a tower on the platform and the gripper has let go."""
    base = sim.model.body_pos[sim.body_id("base")]
    pts = np.stack([body_pos(sim, f"block{i}") for i in range(n)])
    on_base = np.max(np.abs(pts[:, :2] - base[:2]), axis=1) < 0.035
    heights = np.sort(pts[:, 2] - TABLE_TOP)
    half = BLOCK_HALF * sim.scale_of("block0")
    levels = np.allclose(heights, half + 2 * half * np.arange(n), atol=0.01)
    return bool(on_base.all() and levels and sim.gripper_open)
