"""Turn the left or right handle of a tap (mirrors RLBench turn_tap; articulated, hinge). The tap's dimensions and
handle shape are a ``TapSpec``: training uses ``TRAIN_TAP``; GemBench-like level-3 tasks other instances."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class TapSpec:
    """One tap model: a base, two stems and a hinged handle on each."""

    stem_h: float = 0.05  # half-height of a stem
    handle_y: float = 0.1  # stem distance from the tap's centre
    handle: str = "lever"  # "lever": a bar over a hub; "knob": a round knob with a small pointer
    lever_half: float = 0.05  # half-length of the lever bar
    knob_radius: float = 0.022

    def __post_init__(self) -> None:
        if self.handle not in ("lever", "knob"):
            raise ValueError(f"handle must be 'lever' or 'knob', got {self.handle!r}")


TRAIN_TAP = TapSpec()


class TurnTap(Task):
    name = "turn_tap"
    mirrors = "RLBench turn_tap"
    TAP = TRAIN_TAP
    manipulated = ("tap",)

    def objects_xml(self) -> str:
        t = self.TAP
        m = f'rgba="{METAL_RGB[0]} {METAL_RGB[1]} {METAL_RGB[2]} 1"'
        if t.handle == "lever":
            grip = (f'<geom type="box" size="{t.lever_half} 0.01 0.008" mass="0.05" rgba="0.8 0.15 0.15 1"/>'
                    f'<geom type="cylinder" size="0.016 0.01" mass="0.02" {m}/>')
        else:  # the pointer (along the handle's x, like a lever) shows which way the knob is turned
            grip = (f'<geom type="cylinder" size="{t.knob_radius} 0.012" mass="0.05" rgba="0.8 0.15 0.15 1"/>'
                    f'<geom type="box" size="0.012 0.004 0.003" pos="{round(t.knob_radius - 0.006, 6)} 0 0.013" '
                    f'mass="0.005" {m}/>')
        handles = []
        for side, y in (("left", t.handle_y), ("right", -t.handle_y)):
            handles.append(
                # Stems collide with the robot only, so the hinged handle on top turns without rubbing on them.
                f'<geom type="cylinder" size="0.012 {t.stem_h}" pos="0 {y} {t.stem_h}" contype="4" conaffinity="2" '
                f'{m}/>'
                f'<body name="handle_{side}" pos="0 {y} {2 * t.stem_h + 0.008}">'
                f'<joint name="turn_{side}" type="hinge" axis="0 0 1" range="-2 2" damping="0.5"/>'
                + grip + "</body>"
            )
        # (Rounded so that the training tap's XML holds exactly the literals it always had.)
        base_y, col, spout = round(t.handle_y + 0.04, 6), round(t.stem_h + 0.015, 6), round(2 * t.stem_h + 0.02, 6)
        return (
            '<body name="tap" pos="0 0 -1">'
            f'<geom type="box" size="0.03 {base_y} 0.02" pos="0 0 0.02" {m}/>'
            # Column and spout stay below the handles' height so the hand can straddle a lever from above.
            f'<geom type="cylinder" size="0.015 {col}" pos="0 0 {col}" {m}/>'
            f'<geom type="capsule" fromto="0 0 {spout} -0.09 0 {spout}" size="0.012" {m}/>'
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
