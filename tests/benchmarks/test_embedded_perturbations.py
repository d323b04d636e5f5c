"""Perturbation factors: each changes what it claims and nothing else, deterministically per seed, and the expert
still succeeds under them."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmarks.embedded import CAMERA_NAMES, EmbeddedConfig, EmbeddedEnv
from benchmarks.embedded import perturbations as pert
from benchmarks.embedded.config import PerturbationConfig
from benchmarks.embedded.scene import STATIC_CAMERAS, TABLE_TOP
from benchmarks.embedded.sim import Sim
from benchmarks.embedded.tasks import TASKS

# drag_stick has every factor: the stick is the manipulated object, the cube the receiver, neither named by colour.
TASK, VARIATION, SEED = "drag_stick", 1, 3


@pytest.fixture(scope="module")
def env():
    e = EmbeddedEnv()
    yield e
    e.close()


def snapshot(env: EmbeddedEnv, name: str) -> dict:
    obs = env.reset(name, VARIATION, SEED)
    m, d = env._sim.model, env._sim.data
    return {
        "obs": obs, "sim": env._sim, "rgba": m.geom_rgba.copy(), "matid": m.geom_matid.copy(),
        "size": m.geom_size.copy(), "geom_xpos": d.geom_xpos.copy(), "xpos": d.xpos.copy(),
        "friction": m.geom_friction.copy(), "mass": m.body_mass.copy(), "light": m.light_diffuse.copy(),
        "headlight": m.vis.headlight.diffuse.copy(), "plan": [k.to_array() for k in env.expert_keyposes()],
    }


@pytest.fixture(scope="module")
def plain(env):
    return snapshot(env, TASK)


def geoms_of(sim: Sim, body: str) -> np.ndarray:
    return np.flatnonzero(np.isin(sim.model.geom_bodyid, sim.subtree(sim.body_id(body))))


def only(n: int, idx: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[idx] = True
    return mask


def assert_same_images(a, b, rgb: bool = True):
    for c in CAMERA_NAMES:
        np.testing.assert_array_equal(a["obs"].cameras[c].depth, b["obs"].cameras[c].depth)
        if rgb:
            np.testing.assert_array_equal(a["obs"].cameras[c].rgb, b["obs"].cameras[c].rgb)


def assert_same_geometry(a, b, n_plain_bodies: int, n_plain_geoms: int):
    np.testing.assert_array_equal(a["xpos"][:n_plain_bodies], b["xpos"][:n_plain_bodies])
    np.testing.assert_array_equal(a["size"][:n_plain_geoms], b["size"][:n_plain_geoms])
    np.testing.assert_array_equal(a["geom_xpos"][:n_plain_geoms], b["geom_xpos"][:n_plain_geoms])


def test_catalogue_follows_colosseum():
    assert [pert.COLOSSEUM_INDEX[f] for f in pert.SUITE_FACTORS] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14,
                                                                       16, 17]
    # Published average: indices 1-14 (13, RLBench variations, has no counterpart); friction and mass are not in it.
    assert pert.AVERAGED == ("all", "mo_colour", "ro_colour", "mo_texture", "ro_texture", "mo_size", "ro_size",
                             "light_colour", "table_colour", "table_texture", "distractor", "background_texture",
                             "camera_pose")
    assert pert.excluded(TASKS["lift_block"], "mo_colour") == "the instruction names this object by its colour"
    assert pert.excluded(TASKS["lift_block"], "ro_size") == "the task has no receiver object"
    assert pert.excluded(TASKS["slide_block"], "ro_colour") is not None
    assert pert.excluded(TASKS["slide_block"], "ro_texture") is None
    assert all(pert.excluded(TASKS["drag_stick"], f) is None for f in pert.SUITE_FACTORS)
    # 10 tasks x 16 columns, less 12 missing receivers and 6 colour-named objects.
    cells = EmbeddedEnv(EmbeddedConfig(suite="perturbations")).tasks()
    assert len(cells) == 160 - 18 and "lift_block" in cells and "lift_block@all" in cells
    assert "lift_block@mo_colour" not in cells


def test_unknown_or_excluded_cells_are_clear_errors(env):
    with pytest.raises(ValueError, match="names this object by its colour"):
        env.reset("lift_block@mo_colour", 0, 0)
    with pytest.raises(ValueError, match="factor 'sparkle' unknown"):
        env.reset("lift_block@sparkle", 0, 0)
    with pytest.raises(ValueError, match="size_range"):
        PerturbationConfig(size_range=(1.2, 0.9))
    with pytest.raises(ValueError, match="table_colour"):
        PerturbationConfig(table_colour_hi=(1.0, 1.0, 1.5))


@pytest.mark.parametrize("factor, role_body", [("mo_colour", "stick"), ("ro_colour", "cube")])
def test_colour_changes_only_that_objects_colour(env, plain, factor, role_body):
    p = snapshot(env, f"{TASK}@{factor}")
    sim = p["sim"]
    n_geoms = len(plain["rgba"])
    changed = np.any(p["rgba"][:n_geoms] != plain["rgba"], axis=1)
    np.testing.assert_array_equal(changed, only(n_geoms, geoms_of(sim, role_body)))
    assert len({tuple(c) for c in p["rgba"][geoms_of(sim, role_body)]}) == 1  # one colour for the object
    assert_same_geometry(p, plain, sim.model.nbody - len(pert.DISTRACTORS), n_geoms)
    assert_same_images(p, plain, rgb=False)  # depth identical: the geometry did not move
    assert any(np.any(p["obs"].cameras[c].rgb != plain["obs"].cameras[c].rgb) for c in CAMERA_NAMES)
    assert np.array_equal(p["plan"], plain["plan"])


@pytest.mark.parametrize("factor, target", [("mo_texture", "stick"), ("ro_texture", "cube"),
                                            ("table_texture", "table"), ("background_texture", "floor")])
def test_texture_changes_only_that_surfaces_material(env, plain, factor, target):
    p = snapshot(env, f"{TASK}@{factor}")
    sim = p["sim"]
    n_geoms = len(plain["rgba"])
    idx = geoms_of(sim, target) if target in ("stick", "cube") else \
        [mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, target)]
    np.testing.assert_array_equal(p["matid"][:n_geoms] >= 0, only(n_geoms, idx))
    assert np.all(plain["matid"] == -1)
    names = {mujoco.mj_id2name(sim.model, mujoco.mjtObj.mjOBJ_MATERIAL, int(i)) for i in p["matid"][idx]}
    assert len(names) == 1 and names <= set(pert.MATERIALS)
    if factor != "background_texture":  # (the floor's colour changes with its texture, see _background)
        np.testing.assert_array_equal(p["rgba"][:n_geoms], plain["rgba"])  # a texture keeps the colour
    else:
        changed = np.any(p["rgba"][:n_geoms] != plain["rgba"], axis=1)
        np.testing.assert_array_equal(changed, only(n_geoms, idx))
    assert_same_geometry(p, plain, sim.model.nbody - len(pert.DISTRACTORS), n_geoms)
    assert_same_images(p, plain, rgb=False)


def test_table_colour_changes_only_the_table(env, plain):
    p = snapshot(env, f"{TASK}@table_colour")
    table = mujoco.mj_name2id(p["sim"].model, mujoco.mjtObj.mjOBJ_GEOM, "table")
    n_geoms = len(plain["rgba"])
    changed = np.any(p["rgba"][:n_geoms] != plain["rgba"], axis=1)
    np.testing.assert_array_equal(changed, only(n_geoms, [table]))
    assert np.all((p["rgba"][table, :3] >= 0.25) & (p["rgba"][table, :3] <= 1.0))
    assert_same_images(p, plain, rgb=False)


def test_light_colour_changes_only_the_lights(env, plain):
    p = snapshot(env, f"{TASK}@light_colour")
    assert np.all(p["light"] <= 0.5) and np.all(p["light"] >= 0) and np.all(p["headlight"] <= 0.5)
    assert not np.allclose(p["light"], plain["light"]) and not np.allclose(p["headlight"], plain["headlight"])
    np.testing.assert_array_equal(p["rgba"][: len(plain["rgba"])], plain["rgba"])
    assert_same_images(p, plain, rgb=False)


@pytest.mark.parametrize("factor, role_body", [("mo_size", "stick"), ("ro_size", "cube")])
def test_size_scales_only_that_object_and_keeps_it_on_the_table(env, plain, factor, role_body):
    p = snapshot(env, f"{TASK}@{factor}")
    sim = p["sim"]
    s = sim.scales[role_body]
    assert 0.75 <= s <= 1.15 and set(sim.scales) == {role_body}
    idx = geoms_of(sim, role_body)
    n_geoms = len(plain["rgba"])
    np.testing.assert_allclose(p["size"][idx], s * plain["size"][idx], rtol=1e-12)
    others = ~only(n_geoms, idx)
    np.testing.assert_array_equal(p["size"][:n_geoms][others], plain["size"][others])
    np.testing.assert_array_equal(p["geom_xpos"][:n_geoms][others], plain["geom_xpos"][others])
    # The object rests on the table as before: its lowest point did not move, its centre rose/sank by (s - 1)·half.
    b = sim.body_id(role_body)
    half_z = plain["size"][idx[0], 2]  # both are boxes: their half-height
    assert p["xpos"][b, 2] == pytest.approx(plain["xpos"][b, 2] + (s - 1) * half_z, abs=1e-9)
    assert p["xpos"][b, 2] - s * half_z == pytest.approx(TABLE_TOP, abs=1e-6)
    np.testing.assert_array_equal(p["rgba"][:n_geoms], plain["rgba"])


def test_distractors_go_on_free_table_space_and_nothing_else_moves(env, plain):
    p = snapshot(env, f"{TASK}@distractor")
    sim = p["sim"]
    n_bodies, n_geoms = len(plain["xpos"]), len(plain["rgba"])
    assert_same_geometry(p, plain, n_bodies, n_geoms)
    np.testing.assert_array_equal(p["rgba"][:n_geoms], plain["rgba"])
    on_table = [n for n in pert.DISTRACTORS if p["xpos"][sim.body_id(f"distractor_{n}"), 2] == pytest.approx(TABLE_TOP)]
    parked = [n for n in pert.DISTRACTORS if p["xpos"][sim.body_id(f"distractor_{n}"), 2] == pytest.approx(-1.0)]
    assert len(on_table) == 2 and len(parked) == len(pert.DISTRACTORS) - 2
    task_xy = p["geom_xpos"][:n_geoms][~sim.robot_geom[:n_geoms] & (sim.model.geom_bodyid[:n_geoms] != 0), :2]
    for n in on_table:
        xy = p["xpos"][sim.body_id(f"distractor_{n}"), :2]
        assert 0.0 <= xy[0] <= 0.6 and -0.42 <= xy[1] <= 0.42
        assert np.min(np.linalg.norm(task_xy - xy, axis=1)) > 0.05
        # Clear of the expert's path too (every keypose at least the distractor's size + 7 cm away).
        assert np.min(np.linalg.norm(np.array(p["plan"])[:, :2] - xy, axis=1)) > 0.08
    assert np.array_equal(p["plan"], plain["plan"])


def test_camera_pose_moves_only_static_cameras_and_keeps_intrinsics(env, plain):
    p = snapshot(env, f"{TASK}@camera_pose")
    for c in CAMERA_NAMES:
        a, b = p["obs"].cameras[c], plain["obs"].cameras[c]
        np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
        if c not in STATIC_CAMERAS:
            np.testing.assert_array_equal(a.extrinsics, b.extrinsics)
            np.testing.assert_array_equal(a.rgb, b.rgb)
            continue
        shift = a.extrinsics[:3, 3] - b.extrinsics[:3, 3]
        assert np.all(np.abs(shift) <= 0.1 + 1e-9) and np.linalg.norm(shift) > 1e-3
        angle = Rotation.from_matrix(a.extrinsics[:3, :3] @ b.extrinsics[:3, :3].T).magnitude()
        assert 1e-4 < angle <= np.sqrt(3) * 0.05 + 1e-9
    assert_same_geometry(p, plain, len(plain["xpos"]), len(plain["rgba"]))


@pytest.mark.parametrize("factor", ["friction", "mass"])
def test_physics_factors_change_physics_only(env, plain, factor):
    p = snapshot(env, f"{TASK}@{factor}")
    sim = p["sim"]
    roles = np.concatenate([geoms_of(sim, "stick"), geoms_of(sim, "cube")])
    n_geoms, n_bodies = len(plain["rgba"]), len(plain["mass"])
    if factor == "friction":
        ratio = p["friction"][roles, 0] / plain["friction"][roles, 0]
        assert np.all((ratio >= 0.5) & (ratio <= 1.5)) and not np.allclose(ratio, 1)
        others = ~only(n_geoms, roles)
        np.testing.assert_array_equal(p["friction"][:n_geoms][others], plain["friction"][others])
        assert np.all(sim.model.geom_priority[roles] >= 2)
    else:
        bodies = [sim.body_id("stick"), sim.body_id("cube")]
        ratio = p["mass"][bodies] / plain["mass"][bodies]
        assert np.all((ratio >= 0.5) & (ratio <= 2.0)) and not np.allclose(ratio, 1)
        others = ~only(n_bodies, bodies)
        np.testing.assert_array_equal(p["mass"][:n_bodies][others], plain["mass"][others])
    assert_same_images(p, plain)  # nothing visible changes
    assert np.array_equal(p["plan"], plain["plan"])


def test_all_applies_each_factor_with_the_same_draw(env):
    a = snapshot(env, f"{TASK}@all")
    light = snapshot(env, f"{TASK}@light_colour")
    size = snapshot(env, f"{TASK}@mo_size")
    cam = snapshot(env, f"{TASK}@camera_pose")
    np.testing.assert_array_equal(a["light"], light["light"])
    stick = geoms_of(a["sim"], "stick")
    np.testing.assert_array_equal(a["size"][stick], size["size"][stick])
    for c in STATIC_CAMERAS:
        np.testing.assert_array_equal(a["obs"].cameras[c].extrinsics, cam["obs"].cameras[c].extrinsics)
    assert np.any(a["matid"] >= 0)


def test_deterministic_per_seed_and_nothing_leaks_into_the_next_episode(plain):
    e1, e2 = EmbeddedEnv(), EmbeddedEnv()
    x = snapshot(e1, f"{TASK}@all")
    e2.reset(f"{TASK}@mo_size", 0, 11)  # another episode in between must not matter
    y = snapshot(e2, f"{TASK}@all")
    for c in CAMERA_NAMES:
        np.testing.assert_array_equal(x["obs"].cameras[c].rgb, y["obs"].cameras[c].rgb)
        np.testing.assert_array_equal(x["obs"].cameras[c].depth, y["obs"].cameras[c].depth)
    assert np.array_equal(x["plan"], y["plan"])
    other = e1.reset(f"{TASK}@all", VARIATION, SEED + 1)
    assert not np.array_equal(other.cameras["front"].rgb, x["obs"].cameras["front"].rgb)
    # A perturbed scene reset to a single factor carries nothing of "all" over.
    z = snapshot(e1, f"{TASK}@friction")
    n = len(plain["size"])
    np.testing.assert_array_equal(z["size"][:n], plain["size"])
    np.testing.assert_array_equal(z["rgba"][:n], plain["rgba"])
    assert np.all(z["matid"] == -1) and not z["sim"].scales
    e1.close()
    e2.close()


def test_expert_succeeds_under_every_factor_at_once(env):
    for task in ("lift_block", "put_in_drawer"):
        env.reset(f"{task}@all", 0, 5)
        for k in env.expert_keyposes():
            r = env.step(k)
            if r.done:
                break
        assert r.success, (task, r.info)


def test_scale_subtree_against_hand_computed_values():
    xml = """<mujoco><worldbody><geom name="floor" type="plane" size="1 1 0.1"/>
      <body name="box" pos="0.1 0.2 0.05"><freejoint/><geom type="box" size="0.05 0.04 0.05" mass="1"/>
        <body name="child" pos="0 0 0.05"><joint name="s" type="slide" axis="0 0 1" range="0 0.02"/>
          <geom type="cylinder" size="0.01 0.02" pos="0 0 0.02" mass="0.1"/></body></body>
      <body name="fixed" pos="0.3 0 0"><geom type="box" size="0.02 0.02 0.02" pos="0 0 0.02"/></body>
    </worldbody></mujoco>"""
    sim = Sim(xml, 64, 0.005, 0.001)
    sim.reset_state()
    mujoco.mj_forward(sim.model, sim.data)
    pert.scale_subtree(sim, sim.body_id("box"), 2.0)
    mujoco.mj_forward(sim.model, sim.data)
    m = sim.model
    np.testing.assert_allclose(m.geom_size[1], [0.1, 0.08, 0.1])
    np.testing.assert_allclose(m.geom_size[2, :2], [0.02, 0.04])
    np.testing.assert_allclose(m.body_pos[sim.body_id("child")], [0, 0, 0.1])
    np.testing.assert_allclose(m.jnt_range[m.body_jntadr[sim.body_id("child")]], [0, 0.04])
    # The box's bottom (z = 0) stays: its centre goes from 0.05 to 0.1, x and y stay.
    np.testing.assert_allclose(sim.data.xpos[sim.body_id("box")], [0.1, 0.2, 0.1])
    np.testing.assert_allclose(m.body_mass[sim.body_id("box")], 1.0)
    pert.scale_subtree(sim, sim.body_id("fixed"), 0.5)  # a fixed body standing on the floor stays on it
    mujoco.mj_forward(sim.model, sim.data)
    np.testing.assert_allclose(sim.data.geom_xpos[3], [0.3, 0, 0.01])
    assert sim.scales == {"box": 2.0, "fixed": 0.5}
    sim.reset_state()  # the next episode starts from the compiled model
    np.testing.assert_allclose(sim.model.geom_size[1], [0.05, 0.04, 0.05])
    assert sim.scales == {}
    sim.close()
