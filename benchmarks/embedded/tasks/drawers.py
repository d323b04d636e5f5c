"""Articulated cabinet tasks: open a drawer, put an item in a drawer (mirror RLBench open_drawer /
put_item_in_drawer). The cabinet's dimensions and handle shape are a ``CabinetSpec``: the training tasks use
``TRAIN_CABINET``; GemBench-like level-3 tasks use other instances (levels.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.embedded.palette import BLOCK_HALF, SEEN_COLOURS, WOOD_RGB
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    Task,
    block_xml,
    body_pos,
    gripper_rotation,
    kp,
    place_fixed,
    place_free,
    quat_xyzw_from_matrix,
    set_colour,
    top_down,
)
from benchmarks.protocol import Keypose

DRAWERS = ("bottom", "middle", "top")
_PULL = 0.15  # how far the expert opens a drawer
_OPENED = 0.1  # opening that counts as open
ITEM_HALF = BLOCK_HALF * 0.8


@dataclass(frozen=True)
class CabinetSpec:
    """One cabinet model: three drawers stacked, front facing -x (the robot)."""

    depth: float = 0.11  # half-extent in x
    width: float = 0.13  # half-extent in y
    level: float = 0.06  # half-height of one drawer level
    travel: float = 0.2  # drawer slide range
    handle_out: float = 0.045  # handle bar distance in front of the drawer front
    handle_shape: str = "box"  # the vertical bar: "box" (square section) or "cylinder" (round)
    handle_half: float = 0.036  # half-length of the vertical bar
    handle_thick: float = 0.008  # half-thickness (box) or radius (cylinder) of the bar

    def __post_init__(self) -> None:
        if self.handle_shape not in ("box", "cylinder"):
            raise ValueError(f"handle_shape must be 'box' or 'cylinder', got {self.handle_shape!r}")
        if not 0 < self.handle_half < self.level:
            raise ValueError(f"handle_half must be in (0, level), got {self.handle_half}")
        if self.travel < _PULL:
            raise ValueError(f"travel must be >= the expert's pull {_PULL}, got {self.travel}")

    def scaled(self, s: float) -> CabinetSpec:
        """The same cabinet resized by ``s`` (a size perturbation resizes the whole model)."""
        return CabinetSpec(self.depth * s, self.width * s, self.level * s, self.travel * s, self.handle_out * s,
                           self.handle_shape, self.handle_half * s, self.handle_thick * s)


TRAIN_CABINET = CabinetSpec()


def cabinet_xml(spec: CabinetSpec = TRAIN_CABINET) -> str:
    """A cabinet whose front faces -x (the robot), with three drawers on slide joints.

    Cabinet walls collide with the robot only (contype 4 / conaffinity 2), drawers with everything but the
    cabinet: a drawer then slides freely inside it without any contact tuning, and still holds what is put in it."""
    wood = f'rgba="{WOOD_RGB[0]} {WOOD_RGB[1]} {WOOD_RGB[2]} 1"'
    wall = f'contype="4" conaffinity="2" {wood}'
    dep, wid, lev = spec.depth, spec.width, spec.level
    h = 3 * lev
    body = [
        '<body name="cabinet" pos="0 0 -1">',
        f'<geom type="box" size="0.01 {wid} {h}" pos="{dep - 0.01} 0 {h}" {wall}/>',
        f'<geom type="box" size="{dep} 0.01 {h}" pos="0 {wid - 0.01} {h}" {wall}/>',
        f'<geom type="box" size="{dep} 0.01 {h}" pos="0 {-wid + 0.01} {h}" {wall}/>',
        f'<geom type="box" size="{dep} {wid} 0.01" pos="0 0 {2 * h + 0.01}" {wall}/>',
    ]
    metal = 'rgba="0.75 0.75 0.78 1"'
    t, hh_bar = spec.handle_thick, spec.handle_half
    bar = (f'<geom type="box" size="{t} {t} {hh_bar}" mass="0.05" {metal}/>' if spec.handle_shape == "box" else
           f'<geom type="cylinder" size="{t} {hh_bar}" mass="0.05" {metal}/>')
    out = spec.handle_out
    for i, name in enumerate(DRAWERS):
        zc = (2 * i + 1) * lev
        d, w, hh = dep - 0.02, wid - 0.025, lev - 0.012
        arm_z = round(hh_bar - 0.005, 6)  # the connecting arms sit 5 mm inside the bar's ends
        body += [
            f'<body name="drawer_{name}" pos="0 0 {zc}">',
            f'<joint name="slide_{name}" type="slide" axis="-1 0 0" range="0 {spec.travel}" damping="5"/>',
            f'<geom type="box" size="0.008 {wid - 0.012} {lev - 0.006}" pos="{-dep + 0.008} 0 0" '
            f'mass="0.3" {wood}/>',
            f'<geom type="box" size="{d} {w} 0.004" pos="-0.01 0 {-hh}" mass="0.2" {wood}/>',
            f'<geom type="box" size="{d} 0.004 {hh}" pos="-0.01 {w} 0" mass="0.1" {wood}/>',
            f'<geom type="box" size="{d} 0.004 {hh}" pos="-0.01 {-w} 0" mass="0.1" {wood}/>',
            f'<geom type="box" size="0.004 {w} {hh}" pos="{d - 0.01} 0 0" mass="0.1" {wood}/>',
            f'<body name="handle_{name}" pos="{-dep - out} 0 0">',
            # A short vertical bar, gripped from above-in-front with the fingers closing sideways (see
            # open_drawer_keyposes for why).
            bar,
            f'<geom type="box" size="{out / 2} 0.006 0.005" pos="{out / 2} 0 {arm_z}" mass="0.01" {metal}/>',
            f'<geom type="box" size="{out / 2} 0.006 0.005" pos="{out / 2} 0 {-arm_z}" mass="0.01" {metal}/>',
            "</body></body>",
        ]
    body.append("</body>")
    return "\n".join(body)


def place_cabinet(sim: Sim, rng: np.random.Generator, spec: CabinetSpec = TRAIN_CABINET) -> None:
    # Handles end up 0.3-0.38 m in front of the world origin: far enough for a comfortable reach.
    xy = rng.uniform((0.3, -0.15), (0.38, 0.15)) + [spec.depth + spec.handle_out, 0.0]
    place_fixed(sim, "cabinet", xy, TABLE_TOP + 0.002, rng.uniform(-0.25, 0.25))


def drawer_opening(sim: Sim, name: str) -> float:
    return float(sim.data.qpos[sim.joint_qadr(f"slide_{name}")])


def open_drawer_keyposes(sim: Sim, name: str) -> list[Keypose]:
    """Approach the handle from above-in-front, close on it, pull it straight out along the drawer's axis.

    The approach points 60 degrees below horizontal: a level approach to a handle this low needs the Panda's
    joint 6 beyond its limit, while at 60 degrees every handle position is reached with ample joint margins."""
    handle = body_pos(sim, f"handle_{name}")
    frame = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)
    axis = frame[:, 0]  # cabinet +x points away from the robot
    approach = 0.5 * axis + np.array([0.0, 0.0, -np.sqrt(3) / 2])
    q = quat_xyzw_from_matrix(gripper_rotation(approach, -frame[:, 1]))
    # The TCP goes 1 cm past the bar: the bar then sits well inside the finger pads, not at their tips.
    grasp = handle + 0.01 * approach
    return [kp(grasp - 0.1 * approach, q, True), kp(grasp, q, False, True), kp(grasp - _PULL * axis, q, False, True)]


class _Cabinet:
    """Tasks on one cabinet model (``CABINET``); a size perturbation scales it as a whole (``sim.scales``)."""

    CABINET = TRAIN_CABINET

    def _spec(self, sim: Sim) -> CabinetSpec:
        return self.CABINET.scaled(sim.scale_of("cabinet"))


class OpenDrawer(_Cabinet, Task):
    name = "open_drawer"
    mirrors = "RLBench open_drawer"
    manipulated = ("cabinet",)

    def objects_xml(self) -> str:
        return cabinet_xml(self.CABINET)

    def num_variations(self) -> int:
        return len(DRAWERS)

    def instructions(self, variation: int) -> list[str]:
        d = DRAWERS[variation]
        return [f"open the {d} drawer", f"grip the {d} handle and pull the {d} drawer open",
                f"slide the {d} drawer open", f"pull the {d} drawer out"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        place_cabinet(sim, rng, self.CABINET)
        self._drawer = DRAWERS[variation]

    def expert(self, sim: Sim) -> list[Keypose]:
        return open_drawer_keyposes(sim, self._drawer)

    def success(self, sim: Sim) -> bool:
        return drawer_opening(sim, self._drawer) > _OPENED


def drop_point(sim: Sim, spec: CabinetSpec, drawer: str, item_half: float) -> np.ndarray:
    """Where an item is released: inside the pulled-out part of the drawer, 1 cm above its floor."""
    axis = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)[:, 0]
    centre = body_pos(sim, f"drawer_{drawer}") - _PULL * axis  # drawer centre once pulled
    return centre - (spec.depth - 0.045) * axis + [0, 0, -spec.level + 0.012 + item_half + 0.01]


def in_drawer(sim: Sim, spec: CabinetSpec, drawer: str, item: str) -> bool:
    d = sim.body_id(f"drawer_{drawer}")
    local = sim.data.xmat[d].reshape(3, 3).T @ (body_pos(sim, item) - sim.data.xpos[d])
    return bool(abs(local[0]) < spec.depth - 0.02 and abs(local[1]) < spec.width - 0.03
                and abs(local[2]) < spec.level)


def item_keyposes(sim: Sim, item: str, drop: np.ndarray, q_drop: np.ndarray) -> list[Keypose]:
    """Pick ``item`` from the table and release it at ``drop``."""
    p = body_pos(sim, item)
    x_axis = sim.data.xmat[sim.body_id(item)].reshape(3, 3)[:, 0]
    q_item = top_down(np.arctan2(x_axis[1], x_axis[0]))
    # Straight up to the carrying height first, so the item never sweeps across a drawer front.
    return [kp(p + [0, 0, 0.12], q_item, True), kp(p, q_item, False, True),
            kp([p[0], p[1], drop[2] + 0.15], q_item, False),
            kp(drop + [0, 0, 0.15], q_drop, False), kp(drop, q_drop, True, True),
            kp(drop + [0, 0, 0.12], q_drop, True)]


def open_then_release(sim: Sim, drawer: str) -> list[Keypose]:
    """Open the drawer and let go of the handle in the same keypose, then back off."""
    out = open_drawer_keyposes(sim, drawer)
    axis = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)[:, 0]
    # Pull, then let go in the same keypose (MoveArmThenGripper): a gripper-only keypose would merge with the
    # stop before it under the PerAct keyframe heuristic.
    pulled = out[-1]
    out[-1] = kp(pulled.position, pulled.quaternion, True, True)
    out.append(kp(pulled.position - 0.08 * axis + [0, 0, 0.05], pulled.quaternion, True))  # back off
    return out


class PutInDrawer(_Cabinet, Task):
    name = "put_in_drawer"
    mirrors = "RLBench put_item_in_drawer"
    manipulated = ("item",)
    receivers = ("cabinet",)

    def objects_xml(self) -> str:
        return cabinet_xml(self.CABINET) + "\n" + block_xml("item", ITEM_HALF)

    def num_variations(self) -> int:
        return len(DRAWERS)

    def instructions(self, variation: int) -> list[str]:
        d = DRAWERS[variation]
        return [f"put the item in the {d} drawer", f"put the block away in the {d} drawer",
                f"open the {d} drawer and place the block inside it", f"leave the block in the {d} drawer"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        place_cabinet(sim, rng, self.CABINET)
        cab = sim.model.body_pos[sim.body_id("cabinet")]
        # The item lies to one side of the cabinet, between it and the robot.
        side = rng.choice([-1.0, 1.0])
        # 7-15 cm beside the cabinet's side wall (the sum keeps the training cabinet's draws bit-identical).
        x = rng.uniform(0.05, 0.15)
        beside = rng.uniform(0.2, 0.28) + (self.CABINET.width - TRAIN_CABINET.width)
        xy = np.array([x, cab[1] + side * beside])
        place_free(sim, "item", xy, TABLE_TOP + ITEM_HALF, rng.uniform(-0.5, 0.5))
        set_colour(sim, "item", SEEN_COLOURS[int(rng.integers(len(SEEN_COLOURS)))])
        self._drawer = DRAWERS[variation]

    def expert(self, sim: Sim) -> list[Keypose]:
        out = open_then_release(sim, self._drawer)
        axis = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)[:, 0]
        drop = drop_point(sim, self._spec(sim), self._drawer, ITEM_HALF * sim.scale_of("item"))
        # Fingers across the drawer: the hand's long side then lies along the drawer front, clear of the handles.
        q_drop = top_down(np.arctan2(axis[1], axis[0]) + np.pi / 2)
        return out + item_keyposes(sim, "item", drop, q_drop)

    def success(self, sim: Sim) -> bool:
        return in_drawer(sim, self._spec(sim), self._drawer, "item") and sim.gripper_open
