"""Turn the left or right handle of a tap (mirrors RLBench turn_tap; articulated, hinge)."""

from __future__ import annotations

import numpy as np

from benchmarks.embedded.palette import METAL_RGB
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    Task,
    body_pos,
    kp,
    matrix_from_quat_xyzw,
    place_fixed,
    quat_xyzw_from_matrix,
    top_down,
)
from benchmarks.protocol import Keypose

SIDES = ("left", "right")
_TURNED = 1.2  # rad of handle rotation that counts as turned (the expert turns a quarter turn)
_STEM_H = 0.05
_HANDLE_Y = 0.1


class TurnTap(Task):
    name = "turn_tap"
    mirrors = "RLBench turn_tap"

    def objects_xml(self) -> str:
        m = f'rgba="{METAL_RGB[0]} {METAL_RGB[1]} {METAL_RGB[2]} 1"'
        handles = []
        for side, y in (("left", _HANDLE_Y), ("right", -_HANDLE_Y)):
            handles.append(
                # Stems collide with the robot only, so the hinged handle on top turns without rubbing on them.
                f'<geom type="cylinder" size="0.012 {_STEM_H}" pos="0 {y} {_STEM_H}" contype="4" conaffinity="2" {m}/>'
                f'<body name="handle_{side}" pos="0 {y} {2 * _STEM_H + 0.008}">'
                f'<joint name="turn_{side}" type="hinge" axis="0 0 1" range="-2 2" damping="0.5"/>'
                f'<geom type="box" size="0.05 0.01 0.008" mass="0.05" rgba="0.8 0.15 0.15 1"/>'
                f'<geom type="cylinder" size="0.016 0.01" mass="0.02" {m}/>'
                "</body>"
            )
        return (
            '<body name="tap" pos="0 0 -1">'
            f'<geom type="box" size="0.03 0.14 0.02" pos="0 0 0.02" {m}/>'
            # Column and spout stay below the handles' height so the hand can straddle a lever from above.
            f'<geom type="cylinder" size="0.015 0.065" pos="0 0 0.065" {m}/>'
            f'<geom type="capsule" fromto="0 0 0.12 -0.09 0 0.12" size="0.012" {m}/>'
            + "".join(handles) + "</body>"
        )

    def num_variations(self) -> int:
        return len(SIDES)

    def instructions(self, variation: int) -> list[str]:
        s = SIDES[variation]
        return [f"turn {s} tap", f"rotate the {s} tap", f"grasp the {s} tap handle and turn it",
                f"turn the {s} handle of the tap"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        # The spout points at the robot (-x); yaw varies a little, position a lot.
        xy = rng.uniform((0.15, -0.15), (0.35, 0.15))
        place_fixed(sim, "tap", xy, TABLE_TOP, rng.uniform(-0.4, 0.4))
        self._side = SIDES[variation]
        self._qadr = sim.joint_qadr(f"turn_{self._side}")

    def expert(self, sim: Sim) -> list[Keypose]:
        handle = body_pos(sim, f"handle_{self._side}")
        lever = sim.data.xmat[sim.body_id(f"handle_{self._side}")].reshape(3, 3)[:, 0]
        q_grasp = top_down(np.arctan2(lever[1], lever[0]) + np.pi / 2)  # fingers across the lever bar
        # A quarter turn about the vertical, in whichever direction keeps the wrist inside its range.
        r = matrix_from_quat_xyzw(q_grasp)
        yaw = np.arctan2(r[1, 1], r[0, 1])
        turn = -np.pi / 2 if yaw >= 0 else np.pi / 2
        c, s = np.cos(turn), np.sin(turn)
        q_turn = quat_xyzw_from_matrix(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ r)
        return [kp(handle + [0, 0, 0.1], q_grasp, True), kp(handle, q_grasp, False, True),
                kp(handle, q_turn, False, ignore_collisions=True)]

    def success(self, sim: Sim) -> bool:
        return abs(float(sim.data.qpos[self._qadr])) > _TURNED

