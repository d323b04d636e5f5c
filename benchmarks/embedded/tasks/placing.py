"""Precise placing: a square ring onto a coloured peg (mirrors RLBench insert_onto_square_peg), a lid onto a
coloured jar (mirrors RLBench close_jar, without the screwing)."""

from __future__ import annotations

import numpy as np

from benchmarks.embedded.palette import PEG_RADIUS, SEEN_COLOURS
from benchmarks.embedded.robot import FINGER_OPEN
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import (
    Task,
    body_pos,
    kp,
    place_fixed,
    place_free,
    sample_points,
    set_colour,
    top_down,
)
from benchmarks.protocol import Keypose

_RING_OUT, _RING_BAR, _RING_H = 0.045, 0.01, 0.01  # outer half-size, bar half-width, half-height
_FINGER_SPAN = FINGER_OPEN + 0.012  # TCP -> the outer face of an open finger (fingers are 12 mm thick)
_PEG_H = 0.03  # peg half-height: the top stays below the hand when the ring is lowered around it
_JAR_R, _JAR_H = 0.035, 0.045
_LID_R, _LID_H, _KNOB = 0.042, 0.008, 0.012


def _yaw(sim: Sim, body: str) -> float:
    x = sim.data.xmat[sim.body_id(body)].reshape(3, 3)[:, 0]
    return float(np.arctan2(x[1], x[0]))


def _pick_and_place(grasp: np.ndarray, q: np.ndarray, place: np.ndarray, lift: float = 0.2) -> list[Keypose]:
    """Above, grasp, straight up, above the place, down and release: the shape of every placing expert."""
    high = max(grasp[2], place[2]) + lift
    return [kp(grasp + [0, 0, 0.1], q, True), kp(grasp, q, False, True), kp([grasp[0], grasp[1], high], q, False),
            kp([place[0], place[1], high], q, False), kp(place, q, True, True)]


class RingOnPeg(Task):
    name = "ring_on_peg"
    mirrors = "RLBench insert_onto_square_peg"
    N_PEGS = 3
    COLOURS = SEEN_COLOURS
    manipulated = ("ring",)
    receivers = tuple(f"peg{i}" for i in range(N_PEGS))
    colour_named = frozenset({"ro"})

    def objects_xml(self) -> str:
        c = _RING_OUT - _RING_BAR
        bars = [(c, 0, _RING_BAR, _RING_OUT), (-c, 0, _RING_BAR, _RING_OUT),
                (0, c, _RING_OUT - 2 * _RING_BAR, _RING_BAR), (0, -c, _RING_OUT - 2 * _RING_BAR, _RING_BAR)]
        ring = "".join(f'<geom type="box" size="{hx} {hy} {_RING_H}" pos="{x} {y} 0" mass="0.02" rgba="0.3 0.3 0.3 1"/>'
                       for x, y, hx, hy in bars)
        pegs = "".join(f'<body name="peg{i}" pos="0 0 -1"><geom type="box" size="0.04 0.04 0.006" pos="0 0 0.006" '
                       f'rgba="0.3 0.3 0.3 1"/><geom type="cylinder" size="{PEG_RADIUS} {_PEG_H}" pos="0 0 {_PEG_H}" '
                       'rgba="1 1 1 1"/></body>' for i in range(self.N_PEGS))
        return f'<body name="ring" pos="0 0 -1"><freejoint/>{ring}</body>' + pegs

    def num_variations(self) -> int:
        return len(self.COLOURS)

    def instructions(self, variation: int) -> list[str]:
        c = self.COLOURS[variation]
        return [f"put the ring on the {c} spoke", f"slide the ring onto the {c} peg",
                f"place the square ring around the {c} peg", f"put the ring on the {c} pole"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        others = [c for c in self.COLOURS if c != self.COLOURS[variation]]
        colours = [self.COLOURS[variation], *rng.choice(others, self.N_PEGS - 1, replace=False)]
        xy = sample_points(rng, self.N_PEGS + 1, (0.05, -0.25), (0.4, 0.25), 0.13)
        for i in range(self.N_PEGS):
            set_colour(sim, f"peg{i}", str(colours[i]))
            # Only the pole carries the colour; the foot stays grey.
            foot = np.flatnonzero(sim.model.geom_bodyid == sim.body_id(f"peg{i}"))[0]
            sim.model.geom_rgba[foot] = [0.3, 0.3, 0.3, 1.0]
            place_fixed(sim, f"peg{i}", xy[i])
        place_free(sim, "ring", xy[-1], TABLE_TOP + _RING_H, rng.uniform(-np.pi / 4, np.pi / 4))

    def expert(self, sim: Sim) -> list[Keypose]:
        ring = body_pos(sim, "ring")
        yaw = _yaw(sim, "ring")
        side = np.array([-np.sin(yaw), np.cos(yaw), 0.0])  # ring +y: the bar the gripper takes
        s = sim.scale_of("ring")
        bar = (_RING_OUT - _RING_BAR) * s  # ring centre -> the middle of a bar
        if 2 * _RING_OUT * s <= 2 * FINGER_OPEN - 0.005:
            # A small (resized) ring fits between the open fingers: take it across, by two opposite bars.
            aim = held = 0.0
        else:
            # One bar, fingers across it. The inner open finger descends into the ring's hole: on a slightly small
            # ring it would land on the opposite bar, so the TCP aims further out, but still inside the bar (else
            # the outer finger never touches it); closing then centres the bar between the fingers.
            inside_hole = _FINGER_SPAN - (2 * _RING_OUT - 3 * _RING_BAR) * s  # least outward shift
            out = (inside_hole + _RING_BAR * s) / 2 if inside_hole > 0 else 0.0
            aim, held = bar + out, bar
        grasp = ring + aim * side
        peg = sim.model.body_pos[sim.body_id("peg0")]
        # Keep the ring's yaw: the TCP goes where the held point must be when the ring is centred on the peg.
        place = np.array([peg[0], peg[1], TABLE_TOP + 0.03]) + held * side
        return _pick_and_place(grasp, top_down(yaw + np.pi / 2), place)

    def success(self, sim: Sim) -> bool:
        ring, peg = body_pos(sim, "ring"), sim.model.body_pos[sim.body_id("peg0")]
        below_top = ring[2] < TABLE_TOP + 2 * _PEG_H * sim.scale_of("peg0")
        return bool(np.linalg.norm(ring[:2] - peg[:2]) < 0.02 and below_top and sim.gripper_open)

    def placement(self) -> tuple[str, str, tuple[str, ...]]:
        return "ring", "peg0", self.receivers  # setup gives peg0 the named colour


class LidOnJar(Task):
    name = "lid_on_jar"
    mirrors = "RLBench close_jar"
    N_JARS = 2
    COLOURS = SEEN_COLOURS
    manipulated = ("lid",)
    receivers = tuple(f"jar{i}" for i in range(N_JARS))
    colour_named = frozenset({"ro"})

    def objects_xml(self) -> str:
        jars = "".join(f'<body name="jar{i}" pos="0 0 -1"><geom type="cylinder" size="{_JAR_R} {_JAR_H}" '
                       f'pos="0 0 {_JAR_H}" rgba="1 1 1 1"/></body>' for i in range(self.N_JARS))
        lid = (f'<body name="lid" pos="0 0 -1"><freejoint/>'
               f'<geom type="cylinder" size="{_LID_R} {_LID_H}" mass="0.03" rgba="0.85 0.85 0.85 1"/>'
               f'<geom type="box" size="{_KNOB} {_KNOB} {_KNOB}" pos="0 0 {_LID_H + _KNOB}" mass="0.01" '
               'rgba="0.85 0.85 0.85 1"/></body>')
        return jars + lid

    def num_variations(self) -> int:
        return len(self.COLOURS)

    def instructions(self, variation: int) -> list[str]:
        c = self.COLOURS[variation]
        return [f"close the {c} jar", f"put the lid on the {c} jar", f"close the {c} jar with the lid",
                f"place the lid on top of the {c} jar"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        other = rng.choice([c for c in self.COLOURS if c != self.COLOURS[variation]])
        xy = sample_points(rng, self.N_JARS + 1, (0.05, -0.25), (0.4, 0.25), 0.14)
        for i, c in enumerate([self.COLOURS[variation], str(other)]):
            set_colour(sim, f"jar{i}", c)
            place_fixed(sim, f"jar{i}", xy[i])
        place_free(sim, "lid", xy[-1], TABLE_TOP + _LID_H, rng.uniform(-np.pi / 4, np.pi / 4))

    def expert(self, sim: Sim) -> list[Keypose]:
        lid = body_pos(sim, "lid")
        s_lid, s_jar = sim.scale_of("lid"), sim.scale_of("jar0")
        knob = lid + [0, 0, (_LID_H + _KNOB) * s_lid]
        jar = sim.model.body_pos[sim.body_id("jar0")]
        # The lid's centre 4 mm above where it rests on the jar; the TCP is on the knob above it.
        place = np.array([jar[0], jar[1], TABLE_TOP + 2 * _JAR_H * s_jar + _LID_H * s_lid + 0.004 + _LID_H * s_lid
                          + _KNOB * s_lid])
        return _pick_and_place(knob, top_down(_yaw(sim, "lid")), place)

    def success(self, sim: Sim) -> bool:
        lid, jar = body_pos(sim, "lid"), sim.model.body_pos[sim.body_id("jar0")]
        on_top = abs(lid[2] - (TABLE_TOP + 2 * _JAR_H * sim.scale_of("jar0") + _LID_H * sim.scale_of("lid"))) < 0.01
        return bool(np.linalg.norm(lid[:2] - jar[:2]) < 0.015 and on_top and sim.gripper_open)

    def placement(self) -> tuple[str, str, tuple[str, ...]]:
        return "lid", "jar0", self.receivers  # setup gives jar0 the named colour
