"""What every embedded task provides, and the small helpers their scenes and experts share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import mujoco
import numpy as np

from benchmarks.embedded.palette import rgba
from benchmarks.embedded.scene import TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.protocol import Keypose


class Task(ABC):
    """A tabletop task: its objects (MJCF), variations, instructions, initial-state sampler, expert and success."""

    name: ClassVar[str]
    mirrors: ClassVar[str]  # the RLBench / GemBench task it is modelled on
    # COLOSSEUM's object roles, as root bodies (a role's factor acts on every geom and body below them):
    # the manipulated object(s) and the receiver object(s) the manipulated one goes to (none: no receiver).
    manipulated: ClassVar[tuple[str, ...]] = ()
    receivers: ClassVar[tuple[str, ...]] = ()
    # Roles ("mo", "ro") whose colour the instructions name ("the red block"): recolouring them would change the
    # goal, so that role's colour factor is not defined for the task (its cell is excluded, not failed).
    colour_named: ClassVar[frozenset[str]] = frozenset()

    def assets_xml(self) -> str:
        """Extra <asset> entries the objects need (meshes); most tasks need none."""
        return ""

    @abstractmethod
    def objects_xml(self) -> str:
        """Bodies for <worldbody>: every object any variation needs (variations recolour and move them)."""

    @abstractmethod
    def num_variations(self) -> int: ...

    @abstractmethod
    def instructions(self, variation: int) -> list[str]:
        """Several phrasings of the variation's goal, RLBench style; [0] is the canonical one."""

    @abstractmethod
    def setup(self, sim: Sim, variation: int, rng: np.random.Generator) -> None:
        """Place and colour the objects for a new episode (the robot is already at its ready pose)."""

    @abstractmethod
    def expert(self, sim: Sim) -> list[Keypose]:
        """The scripted demonstration from the state ``setup`` produced."""

    @abstractmethod
    def success(self, sim: Sim) -> bool: ...

    def keep_clear(self, sim: Sim) -> np.ndarray:
        """(K, 2, 2) table-plane segments, beyond the expert's own keypose path, that a distractor must keep away
        from (e.g. where a held tool sweeps). Called after ``expert``."""
        return np.zeros((0, 2, 2))

    def on_tick(self, sim: Sim) -> None:
        """Called after every control tick (tasks that must see an order of events, e.g. button presses)."""
        return None  # noqa: B027 - deliberately optional

    def acted_on(self, sim: Sim) -> bool:
        """Whether the episode changed the task's objects in a way their poses no longer show (a button pressed and
        sprung back): the environment's failure diagnosis counts it as the task's objects moved."""
        return False

    def placement(self) -> tuple[str, str, tuple[str, ...]] | None:
        """For a task whose goal is one object brought to one of several look-alike places ("slide the block to the
        red target"): ``(object, goal, places)`` as body names, ``goal`` among ``places``, for the variation ``setup``
        last placed. The failure diagnosis uses it to tell the right object taken to the wrong place (grounding)
        from the right place missed (precision). ``None``: the task has no such choice of place."""
        return None


# ------------------------------------------------------------------------- helpers
def quat_xyzw_from_matrix(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot, dtype=np.float64).reshape(9))
    if q[0] < 0:
        q = -q
    return np.array([q[1], q[2], q[3], q[0]])


def matrix_from_quat_xyzw(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.array([q[3], q[0], q[1], q[2]], dtype=np.float64))
    return m.reshape(3, 3)


def gripper_rotation(approach: np.ndarray, fingers: np.ndarray) -> np.ndarray:
    """TCP rotation whose z (approach) and y (finger axis) are the given world directions (made orthogonal)."""
    z = np.asarray(approach, float) / np.linalg.norm(approach)
    y = np.asarray(fingers, float) - np.dot(fingers, z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


def top_down(yaw: float, fold: bool = True) -> np.ndarray:
    """Quaternion (xyzw) of a gripper pointing down, fingers closing along world direction (cos yaw, sin yaw).

    Yaw is folded into [-pi/2, pi/2): the parallel gripper is symmetric, and that half-turn is the one the arm
    reaches from its ready pose without running into joint 7's limits."""
    if fold:
        yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return quat_xyzw_from_matrix(gripper_rotation(np.array([0.0, 0.0, -1.0]),
                                                  np.array([np.cos(yaw), np.sin(yaw), 0.0])))


def kp(pos, quat, gripper_open: bool, ignore_collisions: bool = False) -> Keypose:
    return Keypose(np.asarray(pos, float), np.asarray(quat, float), gripper_open, ignore_collisions)


def sample_points(rng: np.random.Generator, n: int, lo: tuple[float, float], hi: tuple[float, float],
                  min_dist: float, avoid: np.ndarray | None = None, tries: int = 200) -> np.ndarray:
    """``n`` table positions (x, y) in the box, pairwise (and from ``avoid``) at least ``min_dist`` apart.

    Rejection sampling of whole layouts: one vectorised distance check per try, deterministic in ``rng``."""
    avoid = np.zeros((0, 2)) if avoid is None else np.asarray(avoid, float).reshape(-1, 2)
    for _ in range(tries):
        pts = rng.uniform(lo, hi, size=(n, 2))
        allp = np.concatenate([pts, avoid])
        dist = np.linalg.norm(allp[:, None] - allp[None], axis=-1)
        dist[np.arange(len(allp)), np.arange(len(allp))] = np.inf
        if dist[:n].min() >= min_dist:
            return pts
    raise RuntimeError(f"could not place {n} objects {min_dist} m apart in {lo}-{hi}")


def set_colour(sim: Sim, body: str, colour: str) -> None:
    """Recolour every geom of a body (the model is per environment, so this is per-episode state)."""
    b = sim.body_id(body)
    sim.model.geom_rgba[sim.model.geom_bodyid == b] = rgba(colour)


def place_fixed(sim: Sim, body: str, xy: np.ndarray, z: float = TABLE_TOP, yaw: float = 0.0) -> None:
    """Move a body without joints (a target pad, a peg, a cabinet)."""
    b = sim.body_id(body)
    sim.model.body_pos[b] = [xy[0], xy[1], z]
    sim.model.body_quat[b] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]


def place_free(sim: Sim, body: str, xy: np.ndarray, z: float, yaw: float = 0.0) -> None:
    sim.set_free_body(sim.body_id(body), np.array([xy[0], xy[1], z]),
                      np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]))


def body_pos(sim: Sim, body: str) -> np.ndarray:
    return sim.data.xpos[sim.body_id(body)].copy()


# Rigid object shapes: how the geom is written, and the yaw period of the shape's grasp (a cube looks the same
# every quarter turn, a hexagonal prism every sixth, a cylinder always).
SHAPES = ("box", "cylinder", "hexprism")
SHAPE_PERIOD = {"box": np.pi / 2, "cylinder": 0.0, "hexprism": np.pi / 3}
HEXPRISM_MESH = "hexprism"


def hexprism_asset(apothem: float) -> str:
    """A hexagonal prism mesh of half-height ``apothem``, flats facing +-x (so fingers closing along the body's
    x axis grip two parallel flats, as on a cube)."""
    angles = np.pi / 6 + np.arange(6) * np.pi / 3
    r = apothem / np.cos(np.pi / 6)  # circumradius
    ring = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)
    verts = np.concatenate([np.c_[ring, np.full(6, -apothem)], np.c_[ring, np.full(6, apothem)]])
    return f'<mesh name="{HEXPRISM_MESH}" vertex="{" ".join(f"{v:.6f}" for v in verts.ravel())}"/>'


def block_xml(name: str, half: float, mass: float = 0.1, friction: float | None = None,
              rgb: tuple[float, float, float] = (1.0, 1.0, 1.0), shape: str = "box") -> str:
    """A free cube (or cylinder / hexagonal prism of the same width and height). ``friction`` (with contact
    priority, so it wins over the table's) makes a block that is pushed rather than carried slide instead of
    tipping: a push at height h tips a cube once friction * h exceeds its half-width."""
    fr = "" if friction is None else f'friction="{friction} 0.01 0.001" priority="1"'
    geometry = {"box": f'type="box" size="{half} {half} {half}"', "cylinder": f'type="cylinder" size="{half} {half}"',
                "hexprism": f'type="mesh" mesh="{HEXPRISM_MESH}"'}
    if shape not in geometry:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    return (f'<body name="{name}" pos="0 0 -1"><freejoint/>'
            f'<geom {geometry[shape]} mass="{mass}" rgba="{rgb[0]} {rgb[1]} {rgb[2]} 1" {fr}/>'
            "</body>")


def pad_xml(name: str, half: float) -> str:
    """A flat coloured square on the table that nothing collides with (a target area)."""
    return (f'<body name="{name}" pos="0 0 -1"><geom type="box" size="{half} {half} 0.001" pos="0 0 0.001" '
            f'contype="0" conaffinity="0" rgba="1 1 1 1"/></body>')
