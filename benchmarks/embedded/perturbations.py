"""COLOSSEUM-like perturbation factors of the embedded benchmark (docs/tasks.md, "Perturbations").

A factor is a seeded change of one aspect of a task's scene, applied after the task's own setup. Every factor
draws from its own generator, seeded by (task, variation, seed, factor), so that

- the unperturbed layout of an episode is identical under every factor (the task's generator is untouched),
- a factor's draw is the same whether it is applied alone or as part of ``all``,
- an episode is deterministic in (task, variation, seed, factor), like every embedded episode.

Factors follow COLOSSEUM's list (REFERENCE §3) and its ranges where it publishes them: object size
``scale_range`` [0.75, 1.15], light colour [0, 0.5]³ per light, table colour [0.25, 1]³, 2 distractor objects, camera
pose ±0.05 rad (Euler delta) and ±0.1 m on the static cameras (never the wrist). COLOSSEUM gives no default range
for friction and mass; ours are multipliers of the object's own values (``PerturbationConfig``).
"""

from __future__ import annotations

import zlib

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from benchmarks.colosseum.env import FACTORS as COLOSSEUM_FACTORS
from benchmarks.colosseum.env import PUBLISHED_FACTORS
from benchmarks.embedded.config import PerturbationConfig
from benchmarks.embedded.palette import COLOURS
from benchmarks.embedded.scene import STATIC_CAMERAS, TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks.base import Task
from benchmarks.protocol import Keypose

NONE, ALL = "none", "all"
# Single factors, in COLOSSEUM's index order (its index 13, "RLBench variations", has no counterpart: the embedded
# evaluation always draws every variation).
FACTORS: tuple[str, ...] = ("mo_colour", "ro_colour", "mo_texture", "ro_texture", "mo_size", "ro_size",
                            "light_colour", "table_colour", "table_texture", "distractor", "background_texture",
                            "camera_pose", "friction", "mass")
SUITE_FACTORS: tuple[str, ...] = (NONE, ALL, *FACTORS)  # the columns of the perturbation table
COLOSSEUM_INDEX: dict[str, int] = {
    NONE: 0, ALL: 1, "mo_colour": 2, "ro_colour": 3, "mo_texture": 4, "ro_texture": 5, "mo_size": 6, "ro_size": 7,
    "light_colour": 8, "table_colour": 9, "table_texture": 10, "distractor": 11, "background_texture": 12,
    "camera_pose": 14, "friction": 16, "mass": 17}
# Column names and the averaged columns are COLOSSEUM's own (benchmarks/colosseum): the published average is the
# plain mean of columns 1-14; friction and mass (16, 17) are reported but not averaged. Ours takes the same columns
# (13 of them: 13 has no counterpart).
COLOSSEUM_NAMES: dict[str, str] = {f: COLOSSEUM_FACTORS[i] for f, i in COLOSSEUM_INDEX.items()}
AVERAGED: tuple[str, ...] = tuple(f for f in SUITE_FACTORS if COLOSSEUM_INDEX[f] in PUBLISHED_FACTORS)

SEPARATOR = "@"  # perturbed task names: "<task>@<factor>"


# ---------------------------------------------------------------------------------------------------- the scene
# Procedural greyscale textures (MuJoCo builtins). A material multiplies its texture by the geom's colour, so a
# texture changes an object's pattern, never its colour: a textured red block is still the red block.
_TEXTURES = (
    'builtin="checker" rgb1="1 1 1" rgb2="0.35 0.35 0.35"',
    'builtin="gradient" rgb1="1 1 1" rgb2="0.3 0.3 0.3"',
    'builtin="flat" rgb1="1 1 1" mark="random" random="0.08" markrgb="0.25 0.25 0.25"',
    'builtin="flat" rgb1="1 1 1" mark="edge" markrgb="0.3 0.3 0.3"',
    'builtin="checker" rgb1="1 1 1" rgb2="0.65 0.65 0.65" mark="cross" markrgb="0.2 0.2 0.2"',
)
_REPEATS = (12, 35)  # pattern repeats per metre: coarse and fine
MATERIALS = tuple(f"perturb_mat{i}_{r}" for i in range(len(_TEXTURES)) for r in _REPEATS)
# Distractor objects: shapes no task uses (no box, no cylinder: blocks, jars and buttons are named by their colour,
# and a same-coloured distractor of their shape would make an instruction ambiguous), static, standing on the table
# (origin at the table top when placed).
DISTRACTORS: dict[str, str] = {
    "sphere": '<geom type="sphere" size="0.03" pos="0 0 0.03"/>',
    "pill": '<geom type="capsule" size="0.02 0.02" pos="0 0 0.04"/>',
    "egg": '<geom type="ellipsoid" size="0.04 0.026 0.02" pos="0 0 0.02"/>',
    "bar": '<geom type="capsule" size="0.015" fromto="-0.04 0 0.015 0.04 0 0.015"/>',
}
_PARKED = (0.0, 0.0, -1.0)  # under the floor: static bodies there touch nothing and are hidden by the floor


def scene_extras() -> tuple[str, str]:
    """(<asset> entries, <worldbody> bodies) that perturbed scenes add: the texture bank and the distractors."""
    assets = []
    for i, spec in enumerate(_TEXTURES):
        assets.append(f'<texture name="perturb_tex{i}" type="2d" width="64" height="64" {spec}/>')
        for r in _REPEATS:
            assets.append(f'<material name="perturb_mat{i}_{r}" texture="perturb_tex{i}" texuniform="true" '
                          f'texrepeat="{r} {r}"/>')
    bodies = [f'<body name="distractor_{n}" pos="{_PARKED[0]} {_PARKED[1]} {_PARKED[2]}">{g}</body>'
              for n, g in DISTRACTORS.items()]
    return "\n".join(assets), "\n".join(bodies)


# ------------------------------------------------------------------------------------------------------- cells
def split_name(name: str) -> tuple[str, str]:
    """``"lift_block@mo_size"`` -> ("lift_block", "mo_size"); a plain task name -> (name, "none")."""
    task, sep, factor = name.partition(SEPARATOR)
    if not sep:
        return name, NONE
    if factor not in SUITE_FACTORS:
        raise ValueError(f"perturbation factor {factor!r} unknown (in {name!r}); available: {list(SUITE_FACTORS)}")
    return task, factor


def cell_name(task: str, factor: str) -> str:
    return task if factor == NONE else f"{task}{SEPARATOR}{factor}"


def excluded(task: type[Task] | Task, factor: str) -> str | None:
    """Why ``factor`` is not defined for ``task`` (its cell is excluded from the table), or None."""
    role = factor[:2]
    if factor in ("mo_colour", "mo_texture", "mo_size", "ro_colour", "ro_texture", "ro_size"):
        bodies = task.manipulated if role == "mo" else task.receivers
        if not bodies:
            return "the task has no receiver object" if role == "ro" else "the task has no manipulated object"
        if factor.endswith("colour") and role in task.colour_named:
            return "the instruction names this object by its colour"
    return None


def active_factors(task: type[Task] | Task, factor: str) -> tuple[str, ...]:
    """The single factors a cell applies: one, or for ``all`` every factor defined for the task."""
    if factor == NONE:
        return ()
    if factor == ALL:
        return tuple(f for f in FACTORS if excluded(task, f) is None)
    if (why := excluded(task, factor)) is not None:
        raise ValueError(f"factor {factor!r} is not defined for task {task.name!r}: {why}")
    return (factor,)


def factor_rng(task: str, variation: int, seed: int, factor: str) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(task.encode()), variation, seed, zlib.crc32(factor.encode())])


# --------------------------------------------------------------------------------------------------- applying
def perturb(sim: Sim, task: Task, factors: tuple[str, ...], variation: int, seed: int,
            cfg: PerturbationConfig) -> None:
    """Apply every factor in ``factors`` except ``distractor`` (placed after the expert is planned, see
    ``place_distractors``). The scene must come from a perturbed scene (``scene_extras``)."""
    for f in factors:
        if f == "distractor":
            continue
        rng = factor_rng(task.name, variation, seed, f)
        _APPLY[f](sim, task, rng, cfg)
    if {"mo_size", "ro_size", "mass"} & set(factors):
        sim.refresh_constants()
    mujoco.mj_forward(sim.model, sim.data)


def _roots(sim: Sim, task: Task, role: str) -> list[int]:
    return [sim.body_id(b) for b in (task.manipulated if role == "mo" else task.receivers)]


def _role_geoms(sim: Sim, root: int) -> np.ndarray:
    return np.flatnonzero(np.isin(sim.model.geom_bodyid, sim.subtree(root)))


def _colour(sim: Sim, task: Task, rng: np.random.Generator, role: str) -> None:
    """Each object of the role gets one palette colour (its whole body tree), different from its own."""
    names = sorted(COLOURS)
    for root in _roots(sim, task, role):
        geoms = _role_geoms(sim, root)
        own = sim.model.geom_rgba[geoms[0], :3]
        choices = [n for n in names if not np.allclose(COLOURS[n], own, atol=1e-3)]
        sim.model.geom_rgba[geoms, :3] = COLOURS[choices[int(rng.integers(len(choices)))]]


def _material_ids(sim: Sim) -> np.ndarray:
    ids = np.array([mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_MATERIAL, n) for n in MATERIALS])
    if np.any(ids < 0):
        raise ValueError("texture factors need a perturbed scene (scene_extras); this one has no texture bank")
    return ids


def _texture(sim: Sim, task: Task, rng: np.random.Generator, role: str) -> None:
    mats = _material_ids(sim)
    for root in _roots(sim, task, role):
        sim.model.geom_matid[_role_geoms(sim, root)] = mats[int(rng.integers(len(mats)))]


def scale_subtree(sim: Sim, root: int, s: float) -> None:
    """Resize a body and everything below it by ``s`` about the body's lowest point, which stays where it is (an
    object on the table stays on the table). Masses are unchanged (the mass factor is separate); inertias scale
    by s² accordingly."""
    m = sim.model
    bodies = sim.subtree(root)
    geoms = np.flatnonzero(np.isin(m.geom_bodyid, bodies))
    if np.any(np.isin(m.geom_type[geoms], [mujoco.mjtGeom.mjGEOM_MESH, mujoco.mjtGeom.mjGEOM_HFIELD])):
        raise ValueError(f"body {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, root)!r} has mesh geoms, which "
                         "cannot be resized at run time")
    mujoco.mj_kinematics(m, sim.data)
    # Lowest point of the tree: each geom's bounding box (geom_aabb: centre, half-sizes in the geom frame) in world.
    rot = sim.data.geom_xmat[geoms].reshape(-1, 3, 3)
    centre = sim.data.geom_xpos[geoms] + np.einsum("gij,gj->gi", rot, m.geom_aabb[geoms, :3])
    half_z = np.einsum("gj,gj->g", np.abs(rot[:, 2, :]), m.geom_aabb[geoms, 3:])
    bottom = float(np.min(centre[:, 2] - half_z))
    children = bodies[bodies != root]
    m.body_pos[children] *= s
    m.body_ipos[bodies] *= s
    m.body_inertia[bodies] *= s * s
    m.geom_pos[geoms] *= s
    m.geom_size[geoms] *= s  # every primitive's size entries are lengths (unused entries are 0)
    m.geom_rbound[geoms] *= s
    m.geom_aabb[geoms] *= s
    joints = np.flatnonzero(np.isin(m.jnt_bodyid, bodies))
    m.jnt_pos[joints] *= s
    slides = joints[m.jnt_type[joints] == mujoco.mjtJoint.mjJNT_SLIDE]
    m.jnt_range[slides] *= s
    m.qpos_spring[m.jnt_qposadr[slides]] *= s
    m.site_pos[np.isin(m.site_bodyid, bodies)] *= s
    # Keep the lowest point: the root's origin moves towards it by the same factor.
    if m.body_jntnum[root] and m.jnt_type[m.body_jntadr[root]] == mujoco.mjtJoint.mjJNT_FREE:
        a = m.jnt_qposadr[m.body_jntadr[root]]
        sim.data.qpos[a + 2] = bottom + s * (sim.data.qpos[a + 2] - bottom)
    else:
        world_z = sim.data.xpos[root, 2]
        m.body_pos[root, 2] += (bottom + s * (world_z - bottom)) - world_z
    sim.scales[mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, root)] = s


def _size(sim: Sim, task: Task, rng: np.random.Generator, role: str, cfg: PerturbationConfig) -> None:
    """One scale per role (all its objects alike, so that e.g. a tower of blocks stays a tower of equal blocks)."""
    s = float(rng.uniform(*cfg.size_range))
    for root in _roots(sim, task, role):
        scale_subtree(sim, root, s)


def _light_colour(sim: Sim, task: Task, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    """Each of the three lights (two scene lights and the headlight) gets its own diffuse colour."""
    lo, hi = np.array(cfg.light_colour_lo), np.array(cfg.light_colour_hi)
    colours = rng.uniform(lo, hi, size=(sim.model.nlight + 1, 3))
    sim.model.light_diffuse[:] = colours[:-1]
    sim.model.vis.headlight.diffuse[:] = colours[-1]


def _geom(sim: Sim, name: str) -> int:
    return mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, name)


def _table_colour(sim: Sim, task: Task, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    sim.model.geom_rgba[_geom(sim, "table"), :3] = rng.uniform(cfg.table_colour_lo, cfg.table_colour_hi)


def _surface_texture(sim: Sim, geom: str, rng: np.random.Generator) -> None:
    mats = _material_ids(sim)
    sim.model.geom_matid[_geom(sim, geom)] = mats[int(rng.integers(len(mats)))]


def _background(sim: Sim, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    """The floor around the table (all the cameras see of the background) gets a textured light colour: the dark
    default floor multiplied by a pattern would barely change (COLOSSEUM's background textures are coloured
    images)."""
    _surface_texture(sim, "floor", rng)
    sim.model.geom_rgba[_geom(sim, "floor"), :3] = rng.uniform(cfg.table_colour_lo, cfg.table_colour_hi)


def _camera_pose(sim: Sim, task: Task, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    """Static cameras only: a position offset and an Euler-angle (xyz, world frame) rotation offset each. The
    wrist camera rides on the hand and is left alone; intrinsics (field of view) never change."""
    m = sim.model
    for name in STATIC_CAMERAS:
        cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
        m.cam_pos[cam] += rng.uniform(-cfg.camera_position, cfg.camera_position, 3)
        # Extrinsic x-y-z Euler angles: a small rotation in the world frame, applied on top of the camera's own.
        dx, dy, dz, dw = Rotation.from_euler("xyz", rng.uniform(-cfg.camera_euler, cfg.camera_euler, 3)).as_quat()
        out = np.zeros(4)
        mujoco.mju_mulQuat(out, np.array([dw, dx, dy, dz]), m.cam_quat[cam])  # MuJoCo quaternions are wxyz
        m.cam_quat[cam] = out


def _friction(sim: Sim, task: Task, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    """Manipulated and receiver objects: sliding friction times a factor per object; contact priority makes the
    object's own coefficient the one its contacts use (MuJoCo otherwise takes the larger of the two)."""
    m = sim.model
    for role in ("mo", "ro"):
        for root in _roots(sim, task, role):
            geoms = _role_geoms(sim, root)
            m.geom_friction[geoms, 0] *= rng.uniform(*cfg.friction_range)
            m.geom_priority[geoms] = np.maximum(m.geom_priority[geoms], 2)


def _mass(sim: Sim, task: Task, rng: np.random.Generator, cfg: PerturbationConfig) -> None:
    m = sim.model
    for role in ("mo", "ro"):
        for root in _roots(sim, task, role):
            bodies = sim.subtree(root)
            k = rng.uniform(*cfg.mass_range)
            m.body_mass[bodies] *= k
            m.body_inertia[bodies] *= k


_APPLY = {
    "mo_colour": lambda sim, t, rng, cfg: _colour(sim, t, rng, "mo"),
    "ro_colour": lambda sim, t, rng, cfg: _colour(sim, t, rng, "ro"),
    "mo_texture": lambda sim, t, rng, cfg: _texture(sim, t, rng, "mo"),
    "ro_texture": lambda sim, t, rng, cfg: _texture(sim, t, rng, "ro"),
    "mo_size": lambda sim, t, rng, cfg: _size(sim, t, rng, "mo", cfg),
    "ro_size": lambda sim, t, rng, cfg: _size(sim, t, rng, "ro", cfg),
    "light_colour": _light_colour,
    "table_colour": _table_colour,
    "table_texture": lambda sim, t, rng, cfg: _surface_texture(sim, "table", rng),
    "background_texture": lambda sim, t, rng, cfg: _background(sim, rng, cfg),
    "camera_pose": _camera_pose,
    "friction": _friction,
    "mass": _mass,
}


# ------------------------------------------------------------------------------------------------- distractors
_REGION_LO, _REGION_HI = (0.0, -0.42), (0.6, 0.42)  # free table space the distractors may take, seen by the cameras
_CANDIDATES = 512  # candidate spots drawn per try (one vectorised check each)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point p (N, 2) to each segment a-b (K, 2): (N, K)."""
    ab = b - a
    t = np.einsum("nkj,kj->nk", p[:, None] - a[None], ab) / np.maximum(np.einsum("kj,kj->k", ab, ab), 1e-12)
    closest = a[None] + np.clip(t, 0, 1)[..., None] * ab[None]
    return np.linalg.norm(p[:, None] - closest, axis=-1)


def keep_clear_segments(plan: list[Keypose]) -> np.ndarray:
    """(K, 2, 2) table-plane segments between consecutive expert keyposes (and each keypose itself)."""
    xy = np.array([k.position[:2] for k in plan]).reshape(-1, 2)
    return np.stack([np.concatenate([xy[:1], xy[:-1]]), xy], axis=1)


def place_distractors(sim: Sim, task: Task, plan: list[Keypose], variation: int, seed: int,
                      cfg: PerturbationConfig, tries: int = 8) -> list[str]:
    """Put ``cfg.distractors`` distractor objects on free table space: clear of every task object's footprint, of
    the expert's path (its keyposes and the straight lines between them, widened by ``task.keep_clear``), and of
    each other. Returns the distractors placed (names without the prefix)."""
    m, d = sim.model, sim.data
    rng = factor_rng(task.name, variation, seed, "distractor")
    names = list(DISTRACTORS)
    chosen = [names[i] for i in rng.choice(len(names), cfg.distractors, replace=False)]
    mujoco.mj_kinematics(m, d)
    ids = {n: sim.body_id(f"distractor_{n}") for n in names}
    # Footprints of the task's objects: every geom that is not robot, floor, table or distractor.
    fixed = np.isin(m.geom_bodyid, [0, *ids.values()]) | sim.robot_geom
    geoms = np.flatnonzero(~fixed)
    rot = d.geom_xmat[geoms].reshape(-1, 3, 3)
    centre = (d.geom_xpos[geoms] + np.einsum("gij,gj->gi", rot, m.geom_aabb[geoms, :3]))[:, :2]
    radius = np.linalg.norm(np.einsum("gij,gj->gi", np.abs(rot), m.geom_aabb[geoms, 3:])[:, :2], axis=1)
    segments = np.concatenate([keep_clear_segments(plan), task.keep_clear(sim)])
    placed: list[tuple[np.ndarray, float]] = []
    for name in chosen:
        b = ids[name]
        own = np.flatnonzero(m.geom_bodyid == b)
        r = float(np.max(np.linalg.norm(m.geom_pos[own, :2], axis=1) + m.geom_rbound[own]))
        for _ in range(tries):
            p = rng.uniform(_REGION_LO, _REGION_HI, size=(_CANDIDATES, 2))
            ok = np.all(np.linalg.norm(p[:, None] - centre[None], axis=-1) >= radius + r + 0.03, axis=1)
            ok &= np.all(_segment_distance(p, segments[:, 0], segments[:, 1]) >= r + 0.07, axis=1)
            for q, rq in placed:
                ok &= np.linalg.norm(p - q, axis=1) >= rq + r + 0.03
            if ok.any():
                break
        else:
            raise RuntimeError(f"no free table space for distractor {name!r} in {task.name} (variation "
                               f"{variation}, seed {seed})")
        xy = p[int(np.argmax(ok))]
        yaw = rng.uniform(-np.pi, np.pi)
        m.body_pos[b] = [xy[0], xy[1], TABLE_TOP]
        m.body_quat[b] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        m.geom_rgba[own, :3] = COLOURS[sorted(COLOURS)[int(rng.integers(len(COLOURS)))]]
        placed.append((xy, r))
    mujoco.mj_forward(m, d)
    return chosen
