"""Articulated cabinet tasks: open a drawer, put an item in a drawer (mirror RLBench open_drawer /
put_item_in_drawer)."""

from __future__ import annotations

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
_DEPTH, _WIDTH = 0.11, 0.13  # cabinet half-extents in x (depth) and y (width)
_LEVEL_H = 0.06  # half-height of one drawer level
_TRAVEL = 0.2  # drawer slide range
_PULL = 0.15  # how far the expert opens a drawer
_OPENED = 0.1  # opening that counts as open
_HANDLE_OUT = 0.045  # handle bar distance in front of the drawer front


def cabinet_xml() -> str:
    """A cabinet whose front faces -x (the robot), with three drawers on slide joints.

    Cabinet walls collide with the robot only (contype 4 / conaffinity 2), drawers with everything but the
    cabinet: a drawer then slides freely inside it without any contact tuning, and still holds what is put in it."""
    wood = f'rgba="{WOOD_RGB[0]} {WOOD_RGB[1]} {WOOD_RGB[2]} 1"'
    wall = f'contype="4" conaffinity="2" {wood}'
    h = 3 * _LEVEL_H
    body = [
        '<body name="cabinet" pos="0 0 -1">',
        f'<geom type="box" size="0.01 {_WIDTH} {h}" pos="{_DEPTH - 0.01} 0 {h}" {wall}/>',
        f'<geom type="box" size="{_DEPTH} 0.01 {h}" pos="0 {_WIDTH - 0.01} {h}" {wall}/>',
        f'<geom type="box" size="{_DEPTH} 0.01 {h}" pos="0 {-_WIDTH + 0.01} {h}" {wall}/>',
        f'<geom type="box" size="{_DEPTH} {_WIDTH} 0.01" pos="0 0 {2 * h + 0.01}" {wall}/>',
    ]
    for i, name in enumerate(DRAWERS):
        zc = (2 * i + 1) * _LEVEL_H
        d, w, hh = _DEPTH - 0.02, _WIDTH - 0.025, _LEVEL_H - 0.012
        body += [
            f'<body name="drawer_{name}" pos="0 0 {zc}">',
            f'<joint name="slide_{name}" type="slide" axis="-1 0 0" range="0 {_TRAVEL}" damping="5"/>',
            f'<geom type="box" size="0.008 {_WIDTH - 0.012} {_LEVEL_H - 0.006}" pos="{-_DEPTH + 0.008} 0 0" '
            f'mass="0.3" {wood}/>',
            f'<geom type="box" size="{d} {w} 0.004" pos="-0.01 0 {-hh}" mass="0.2" {wood}/>',
            f'<geom type="box" size="{d} 0.004 {hh}" pos="-0.01 {w} 0" mass="0.1" {wood}/>',
            f'<geom type="box" size="{d} 0.004 {hh}" pos="-0.01 {-w} 0" mass="0.1" {wood}/>',
            f'<geom type="box" size="0.004 {w} {hh}" pos="{d - 0.01} 0 0" mass="0.1" {wood}/>',
            f'<body name="handle_{name}" pos="{-_DEPTH - _HANDLE_OUT} 0 0">',
            # A short vertical bar, gripped from above-in-front with the fingers closing sideways (see
            # open_drawer_keyposes for why).
            '<geom type="box" size="0.008 0.008 0.036" mass="0.05" rgba="0.75 0.75 0.78 1"/>',
            f'<geom type="box" size="{_HANDLE_OUT / 2} 0.006 0.005" pos="{_HANDLE_OUT / 2} 0 0.031" mass="0.01" '
            'rgba="0.75 0.75 0.78 1"/>',
            f'<geom type="box" size="{_HANDLE_OUT / 2} 0.006 0.005" pos="{_HANDLE_OUT / 2} 0 -0.031" mass="0.01" '
            'rgba="0.75 0.75 0.78 1"/>',
            "</body></body>",
        ]
    body.append("</body>")
    return "\n".join(body)


def place_cabinet(sim: Sim, rng: np.random.Generator) -> None:
    # Handles end up 0.3-0.38 m in front of the world origin: far enough for a comfortable reach.
    xy = rng.uniform((0.3, -0.15), (0.38, 0.15)) + [_DEPTH + _HANDLE_OUT, 0.0]
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


class OpenDrawer(Task):
    name = "open_drawer"
    mirrors = "RLBench open_drawer"

    def objects_xml(self) -> str:
        return cabinet_xml()

    def num_variations(self) -> int:
        return len(DRAWERS)

    def instructions(self, variation: int) -> list[str]:
        d = DRAWERS[variation]
        return [f"open the {d} drawer", f"grip the {d} handle and pull the {d} drawer open",
                f"slide the {d} drawer open", f"pull the {d} drawer out"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        place_cabinet(sim, rng)
        self._drawer = DRAWERS[variation]

    def expert(self, sim: Sim) -> list[Keypose]:
        return open_drawer_keyposes(sim, self._drawer)

    def success(self, sim: Sim) -> bool:
        return drawer_opening(sim, self._drawer) > _OPENED


class PutInDrawer(Task):
    name = "put_in_drawer"
    mirrors = "RLBench put_item_in_drawer"

    def objects_xml(self) -> str:
        return cabinet_xml() + "\n" + block_xml("item", BLOCK_HALF * 0.8)

    def num_variations(self) -> int:
        return len(DRAWERS)

    def instructions(self, variation: int) -> list[str]:
        d = DRAWERS[variation]
        return [f"put the item in the {d} drawer", f"put the block away in the {d} drawer",
                f"open the {d} drawer and place the block inside it", f"leave the block in the {d} drawer"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        place_cabinet(sim, rng)
        cab = sim.model.body_pos[sim.body_id("cabinet")]
        # The item lies to one side of the cabinet, between it and the robot.
        side = rng.choice([-1.0, 1.0])
        xy = np.array([rng.uniform(0.05, 0.15), cab[1] + side * rng.uniform(0.2, 0.28)])
        place_free(sim, "item", xy, TABLE_TOP + BLOCK_HALF * 0.8, rng.uniform(-0.5, 0.5))
        set_colour(sim, "item", SEEN_COLOURS[int(rng.integers(len(SEEN_COLOURS)))])
        self._drawer = DRAWERS[variation]

    def expert(self, sim: Sim) -> list[Keypose]:
        out = open_drawer_keyposes(sim, self._drawer)
        axis = sim.data.xmat[sim.body_id("cabinet")].reshape(3, 3)[:, 0]
        # Pull, then let go in the same keypose (MoveArmThenGripper): a gripper-only keypose would merge with the
        # stop before it under the PerAct keyframe heuristic.
        pulled = out[-1]
        out[-1] = kp(pulled.position, pulled.quaternion, True, True)
        out.append(kp(pulled.position - 0.08 * axis + [0, 0, 0.05], pulled.quaternion, True))  # back off
        item = body_pos(sim, "item")
        x_axis = sim.data.xmat[sim.body_id("item")].reshape(3, 3)[:, 0]
        q_item = top_down(np.arctan2(x_axis[1], x_axis[0]))
        # Drop point: inside the pulled-out part of the drawer, above its floor (drawer centre moved by _PULL).
        drawer = body_pos(sim, f"drawer_{self._drawer}") - _PULL * axis
        drop = drawer - (_DEPTH - 0.045) * axis + [0, 0, -_LEVEL_H + 0.012 + BLOCK_HALF * 0.8 + 0.01]
        # Straight up to the carrying height first, so the item never sweeps across a drawer front.
        out += [kp(item + [0, 0, 0.12], q_item, True), kp(item, q_item, False, True),
                kp([item[0], item[1], drop[2] + 0.15], q_item, False)]
        # Fingers across the drawer: the hand's long side then lies along the drawer front, clear of the handles.
        q_drop = top_down(np.arctan2(axis[1], axis[0]) + np.pi / 2)
        return out + [kp(drop + [0, 0, 0.15], q_drop, False), kp(drop, q_drop, True, True),
                      kp(drop + [0, 0, 0.12], q_drop, True)]

    def success(self, sim: Sim) -> bool:
        d = sim.body_id(f"drawer_{self._drawer}")
        local = sim.data.xmat[d].reshape(3, 3).T @ (body_pos(sim, "item") - sim.data.xpos[d])
        inside = abs(local[0]) < _DEPTH - 0.02 and abs(local[1]) < _WIDTH - 0.03 and abs(local[2]) < _LEVEL_H
        return bool(inside and sim.gripper_open)
