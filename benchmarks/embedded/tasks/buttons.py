"""Push buttons in a coloured order (mirrors RLBench push_buttons)."""

from __future__ import annotations

from itertools import permutations

import numpy as np

from benchmarks.embedded.palette import BUTTON_RADIUS, SEEN_COLOURS
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import Task, kp, place_fixed, sample_points, set_colour, top_down
from benchmarks.protocol import Keypose

_BASE_H = 0.012  # half-height of the fixed button housing
_CAP_H = 0.008
_TRAVEL = 0.02
PRESSED = -0.005  # cap displacement that counts as a press
_PRESS_DEPTH = 0.014  # how far the expert's fingertips go below the cap's top: +-9 mm of slack either way


def button_xml(i: int) -> str:
    """Button ``i``: a dark housing fixed to the table and a coloured cap ``cap{i}`` on a sprung slide joint."""
    return (
        f'<body name="button{i}" pos="0 0 -1">'
        # The housing collides with the robot only: MuJoCo does not filter contacts between a jointed body and a
        # parent welded to the world, and the cap must sink into its housing.
        f'<geom type="cylinder" size="{BUTTON_RADIUS + 0.01} {_BASE_H}" pos="0 0 {_BASE_H}" '
        'contype="4" conaffinity="2" rgba="0.2 0.2 0.2 1"/>'
        # A heavy, gravity-compensated cap on a weak spring: MuJoCo's contact stiffness scales with the lighter
        # body's mass, and the fingertips should push the cap rather than sink into it.
        f'<body name="cap{i}" pos="0 0 {2 * _BASE_H + _CAP_H}" gravcomp="1">'
        f'<joint name="press{i}" type="slide" axis="0 0 1" range="{-_TRAVEL} 0" stiffness="50" '
        'springref="0.01" damping="2"/>'
        f'<geom type="cylinder" size="{BUTTON_RADIUS} {_CAP_H}" mass="0.3" rgba="1 1 1 1"/>'
        f"</body></body>"
    )


def press_keyposes(sim: Sim, i: int) -> list[Keypose]:
    """Above button ``i``'s cap, then down onto it with closed fingers."""
    q = top_down(0.0)
    top = sim.data.xpos[sim.body_id(f"cap{i}")] + [0, 0, _CAP_H * sim.scale_of(f"button{i}")]
    # Closed fingertips end 3 mm below the TCP.
    press = top - [0, 0, _PRESS_DEPTH - 0.003]
    return [kp(top + [0, 0, 0.08], q, False), kp(press, q, False, ignore_collisions=True)]


class PushButtons(Task):
    name = "push_buttons"
    mirrors = "RLBench push_buttons"
    N = 3
    COLOURS = SEEN_COLOURS[:4]
    LENGTHS = (1, 2, 3)  # every ordered sequence of 1-3 distinct colours out of four: 4 + 12 + 24 = 40 variations
    manipulated = ("button0", "button1", "button2")
    colour_named = frozenset({"mo"})

    def __init__(self) -> None:
        self._sequences = [s for n in self.LENGTHS for s in permutations(self.COLOURS, n)]

    def objects_xml(self) -> str:
        return "\n".join(button_xml(i) for i in range(self.N))

    def num_variations(self) -> int:
        return len(self._sequences)

    def instructions(self, variation: int) -> list[str]:
        seq = self._sequences[variation]
        names = [f"the {c} button" for c in seq]
        chain = ", then ".join(names)
        return [f"push {chain}", f"press {chain}", f"push down {' and then '.join(names)}",
                f"press the buttons in this order: {', '.join(seq)}"]

    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        seq = list(self._sequences[variation])
        spare = [c for c in self.COLOURS if c not in seq]
        colours = seq + list(rng.choice(spare, self.N - len(seq), replace=False)) if len(seq) < self.N else seq
        order = rng.permutation(self.N)  # which button (position) gets which colour
        xy = sample_points(rng, self.N, (0.05, -0.25), (0.4, 0.25), 0.13)
        self._colour_of = {}
        for i in range(self.N):
            c = str(colours[order[i]])
            self._colour_of[i] = c
            place_fixed(sim, f"button{i}", xy[i])
            set_colour(sim, f"cap{i}", c)  # only the cap: the housing stays dark like RLBench's
        self._sequence = seq
        self._pressed: list[str] = []
        self._qadr = [sim.joint_qadr(f"press{i}") for i in range(self.N)]
        sim.no_grasp_bodies = frozenset(sim.body_id(f"cap{i}") for i in range(self.N))

    def expert(self, sim: Sim) -> list[Keypose]:
        out = []
        for c in self._sequence:
            out += press_keyposes(sim, next(k for k, v in self._colour_of.items() if v == c))
        return out

    def on_tick(self, sim: Sim) -> None:
        for i, a in enumerate(self._qadr):
            c = self._colour_of[i]
            if sim.data.qpos[a] < PRESSED and c not in self._pressed:
                self._pressed.append(c)

    def success(self, sim: Sim) -> bool:
        return self._pressed == self._sequence

    def acted_on(self, sim: Sim) -> bool:
        return bool(self._pressed)  # a pressed button springs back: only the press record shows it

