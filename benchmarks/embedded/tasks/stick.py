"""Reach for a stick and drag a cube onto a coloured target with it (mirrors RLBench reach_and_drag)."""

from __future__ import annotations

import numpy as np

from benchmarks.embedded.palette import BLOCK_HALF, SEEN_COLOURS, TARGET_HALF, WOOD_RGB
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    Task,
    block_xml,
    body_pos,
    kp,
    matrix_from_quat_xyzw,
    pad_xml,
    place_fixed,
    place_free,
    set_colour,
    top_down,
)
from benchmarks.protocol import Keypose

_STICK_HALF, _STICK_W = 0.16, 0.012  # half-length, half-thickness (tall enough that the cube never rides over it)
_GRIP = 0.1  # grasp point: this far from the stick's centre along its axis
_REACH = 0.16  # TCP -> the stick point that pushes the cube (the far part of the stick)
_N_TARGETS = 4
_PAD = TARGET_HALF / 1.5


class DragStick(Task):
    name = "drag_stick"
    mirrors = "RLBench reach_and_drag"
    COLOURS = SEEN_COLOURS[:_N_TARGETS]  # target i has colour COLOURS[i]
    manipulated = ("stick",)
    receivers = ("cube",)  # COLOSSEUM's reach_and_drag: the stick is manipulated, the cube receives it
    colour_named = frozenset()

    def objects_xml(self) -> str:
        r, g, b = WOOD_RGB
        stick = (f'<body name="stick" pos="0 0 -1"><freejoint/><geom type="box" size="{_STICK_HALF} {_STICK_W} '
                 f'{_STICK_W}" mass="0.05" rgba="{r} {g} {b} 1"/></body>')
        pads = "".join(pad_xml(f"target{i}", _PAD) for i in range(_N_TARGETS))
        cube = block_xml("cube", BLOCK_HALF * 0.9, mass=0.05, friction=0.4, rgb=(0.2, 0.2, 0.25))
        return stick + pads + cube

    def num_variations(self) -> int:
        return _N_TARGETS

    def instructions(self, variation: int) -> list[str]:
        c = self.COLOURS[variation]
        return [f"use the stick to drag the cube onto the {c} target", f"pick up the stick and use it to drag "
                f"the cube to the {c} square", f"drag the block towards the {c} target with the stick",
                f"grab the stick and pull the cube onto the {c} area"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        # Cube far from the robot, targets in a row nearer to it, stick lying across the near side.
        cube = rng.uniform((0.3, -0.08), (0.36, 0.08))
        place_free(sim, "cube", cube, TABLE_TOP + BLOCK_HALF * 0.9, rng.uniform(-0.3, 0.3))
        ys = cube[1] + np.array([-1.5, -0.5, 0.5, 1.5]) * 0.11
        order = rng.permutation(_N_TARGETS)
        for i in range(_N_TARGETS):
            set_colour(sim, f"target{i}", self.COLOURS[i])
            place_fixed(sim, f"target{i}", np.array([cube[0] - 0.17, ys[order[i]]]))
        stick = np.array([rng.uniform(0.0, 0.05), rng.uniform(-0.12, 0.12)])
        place_free(sim, "stick", stick, TABLE_TOP + _STICK_W, np.pi / 2 + rng.uniform(-0.3, 0.3))
        self._target = f"target{variation}"

    def expert(self, sim: Sim) -> list[Keypose]:
        stick = body_pos(sim, "stick")
        s_stick, cube_half = sim.scale_of("stick"), BLOCK_HALF * 0.9 * sim.scale_of("cube")
        stick_w = _STICK_W * s_stick
        axis = sim.data.xmat[sim.body_id("stick")].reshape(3, 3)[:, 0]
        q_grasp = top_down(np.arctan2(axis[1], axis[0]) + np.pi / 2)  # fingers across the stick
        # We hold the stick at the end lying on the hand's +x side.
        hand_x = matrix_from_quat_xyzw(q_grasp)[:, 0]
        grasp = stick + _GRIP * s_stick * np.sign(np.dot(hand_x, axis)) * axis
        cube = body_pos(sim, "cube")
        goal = sim.model.body_pos[sim.body_id(self._target)].copy()
        u = (goal - cube)[:2] / np.linalg.norm((goal - cube)[:2])
        # Fingers along the drag so the stick lies across it; of the two such grips, the one holding the stick's
        # free part on the far side keeps the hand nearer the robot.
        q_drag = top_down(np.arctan2(u[1], u[0]), fold=False)
        if matrix_from_quat_xyzw(q_drag)[0, 0] > 0:
            q_drag = top_down(np.arctan2(u[1], u[0]) + np.pi, fold=False)
        # The stick runs from the grasp towards -hand_x (the stick's centre is _GRIP behind the TCP along it).
        back = -matrix_from_quat_xyzw(q_drag)[:, 0]
        z = TABLE_TOP + stick_w + 0.008  # the stick skims 8 mm above the table
        reach = _REACH * s_stick
        start = np.array([*(cube[:2] - u * (cube_half + stick_w + 0.03)), z]) - reach * back
        end = np.array([*(goal[:2] - u * (cube_half + stick_w)), z]) - reach * back
        return [kp(grasp + [0, 0, 0.1], q_grasp, True), kp(grasp, q_grasp, False, True),
                kp(grasp + [0, 0, 0.12], q_grasp, False), kp(start + [0, 0, 0.1], q_drag, False),
                kp(start, q_drag, False, ignore_collisions=True), kp(end, q_drag, False, ignore_collisions=True)]

    def success(self, sim: Sim) -> bool:
        cube = body_pos(sim, "cube")[:2]
        goal = sim.model.body_pos[sim.body_id(self._target)][:2]
        return bool(np.max(np.abs(cube - goal)) < _PAD)

    def placement(self) -> tuple[str, str, tuple[str, ...]]:
        # The stick is the manipulated object, but the place that counts is the cube's.
        return "cube", self._target, tuple(f"target{i}" for i in range(_N_TARGETS))
