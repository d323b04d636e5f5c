"""One compiled MuJoCo scene: state, kinematic arm driving, grasps, collision queries and camera rendering.

The arm is driven kinematically (joint positions and velocities written every physics step, large armature), so
motion is exactly the planned joint path and contacts push objects rather than the arm. A grasp is RLBench's
Discrete-gripper idea: on close, whatever body both fingers touch is attached — a free object rides rigidly with
the tool centre point, an articulated part (drawer, tap) follows its one joint's projection of the hand motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from benchmarks.embedded.robot import ARM_JOINTS, FINGER_JOINTS, FINGER_OPEN, HOME_QPOS
from benchmarks.protocol import CameraFrame


@dataclass
class Grasp:
    """What the closed gripper holds."""

    body: int
    kind: str  # "free" | "slide" | "hinge"
    width: float  # per-finger opening while holding
    rel_pos: np.ndarray | None = None  # free: object pose in the TCP frame
    rel_rot: np.ndarray | None = None
    joint: int = -1  # articulated: the joint that moves
    q0: float = 0.0
    tcp_pos0: np.ndarray | None = None
    tcp_rot0: np.ndarray | None = None
    axis: np.ndarray | None = None  # joint axis in world at grasp time


# Model fields that an episode may rewrite beyond what every task's setup rewrites itself (perturbation factors:
# colours, materials, sizes, friction, masses, camera poses, lights). ``reset_state`` restores them, so an episode
# never inherits the previous one's perturbation.
_EPISODE_FIELDS = ("geom_rgba", "geom_matid", "geom_size", "geom_pos", "geom_rbound", "geom_aabb", "geom_friction",
                   "geom_priority", "body_pos", "body_quat", "body_ipos", "body_mass", "body_inertia", "jnt_pos",
                   "jnt_range", "qpos_spring", "site_pos", "cam_pos", "cam_quat", "light_diffuse",
                   # derived by mj_setConst (refresh_constants) from the fields above
                   "body_invweight0", "body_subtreemass", "bvh_aabb", "cam_mat0", "cam_pos0", "cam_poscom0", "dof_M0",
                   "dof_invweight0", "dof_length", "light_poscom0")


def _mat_to_quat(m: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(m, dtype=np.float64).reshape(9))
    return q


class Sim:
    """A task scene compiled once; ``reset_state`` restores the initial robot state between episodes."""

    def __init__(self, xml: str, image_size: int, timestep: float, collision_margin: float) -> None:
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.model.opt.timestep = timestep
        self.data = mujoco.MjData(self.model)
        self.scratch = mujoco.MjData(self.model)  # planning queries never touch the simulated state
        self.image_size = image_size
        self.collision_margin = collision_margin
        m = self.model
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self.arm_joint_ids = np.array(jid)
        self.arm_qadr = m.jnt_qposadr[jid]
        self.arm_dadr = m.jnt_dofadr[jid]
        fid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self.finger_qadr = m.jnt_qposadr[fid]
        self.finger_dadr = m.jnt_dofadr[fid]
        self.tcp_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self.finger_geoms = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n)
                                      for n in ("finger_left", "finger_right")])
        link0 = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "panda_link0")
        # The robot is the tree hanging from its base (the base is its own root: its parent is the world).
        self.robot_body = m.body_rootid == link0
        self.robot_geom = self.robot_body[m.geom_bodyid]
        self.grasp: Grasp | None = None
        # Bodies the gripper must never attach to (a task sets them, e.g. button caps that are only pushed).
        self.no_grasp_bodies: frozenset[int] = frozenset()
        self.gripper_open = True
        self.finger_width = FINGER_OPEN
        self._renderer: mujoco.Renderer | None = None
        self._cam_ids = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_CAMERA, i): i for i in range(m.ncam)}
        # Size factor applied to each scaled body (by name) this episode: experts and success checks read sizes
        # through ``scale_of`` so that a resized object is still handled exactly.
        self.scales: dict[str, float] = {}
        self._pristine = {f: getattr(m, f).copy() for f in _EPISODE_FIELDS}
        self._pristine_headlight = m.vis.headlight.diffuse.copy()

    # ----------------------------------------------------------------- state
    def reset_state(self) -> None:
        for f, v in self._pristine.items():
            getattr(self.model, f)[:] = v
        self.model.vis.headlight.diffuse[:] = self._pristine_headlight
        self.scales = {}
        mujoco.mj_resetData(self.model, self.data)
        self.grasp = None
        self.gripper_open = True
        self.finger_width = FINGER_OPEN
        self.data.qpos[self.arm_qadr] = HOME_QPOS
        self.data.qpos[self.finger_qadr] = FINGER_OPEN
        mujoco.mj_forward(self.model, self.data)

    @property
    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self.arm_qadr].copy()

    def body_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if i < 0:
            raise ValueError(f"body {name!r} not in the scene")
        return i

    def refresh_constants(self) -> None:
        """Recompute the model's derived constants after masses or sizes changed: the constraint solver's
        per-body inverse weights (stale ones make a re-weighted object explode on contact) and the collision
        bounding-volume hierarchy (stale boxes miss contacts of a resized object). Uses the scratch data."""
        mujoco.mj_setConst(self.model, self.scratch)

    def scale_of(self, name: str) -> float:
        """The size factor this episode applied to body ``name`` (1.0 when it was not resized)."""
        return self.scales.get(name, 1.0)

    def subtree(self, root: int) -> np.ndarray:
        """Ids of ``root`` and every body below it."""
        m = self.model
        inside = np.zeros(m.nbody, bool)
        inside[root] = True
        for b in range(root + 1, m.nbody):  # parents precede children in MuJoCo's body order
            inside[b] = inside[m.body_parentid[b]]
        return np.flatnonzero(inside)

    def joint_qadr(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if i < 0:
            raise ValueError(f"joint {name!r} not in the scene")
        return int(self.model.jnt_qposadr[i])

    def tcp_pose(self, data: mujoco.MjData | None = None) -> tuple[np.ndarray, np.ndarray]:
        d = self.data if data is None else data
        return d.site_xpos[self.tcp_site].copy(), d.site_xmat[self.tcp_site].reshape(3, 3).copy()

    def set_free_body(self, body: int, pos: np.ndarray, quat_wxyz: np.ndarray, data: mujoco.MjData | None = None):
        """Place a body with a free joint (its first joint) at a world pose, at rest."""
        d = self.data if data is None else data
        j = self.model.body_jntadr[body]
        a, v = self.model.jnt_qposadr[j], self.model.jnt_dofadr[j]
        d.qpos[a:a + 3] = pos
        d.qpos[a + 3:a + 7] = quat_wxyz
        d.qvel[v:v + 6] = 0.0

    # ----------------------------------------------------------------- driving
    def pose_robot(self, q: np.ndarray, qdot: np.ndarray | None, data: mujoco.MjData) -> None:
        """Write the arm, fingers and the held object's state into ``data`` (kinematics updated)."""
        data.qpos[self.arm_qadr] = q
        data.qvel[self.arm_dadr] = 0.0 if qdot is None else qdot
        data.qpos[self.finger_qadr] = self.finger_width
        data.qvel[self.finger_dadr] = 0.0
        mujoco.mj_kinematics(self.model, data)
        if self.grasp is not None:
            self._carry(data)
            mujoco.mj_kinematics(self.model, data)

    def _carry(self, data: mujoco.MjData) -> None:
        g = self.grasp
        p, r = self.tcp_pose(data)
        if g.kind == "free":
            self.set_free_body(g.body, p + r @ g.rel_pos, _mat_to_quat(r @ g.rel_rot), data)
            return
        if g.kind == "slide":
            q = g.q0 + float(np.dot(p - g.tcp_pos0, g.axis))
        else:
            # Twist of the hand's rotation since the grasp about the hinge axis (swing-twist decomposition).
            rel = _mat_to_quat(r @ g.tcp_rot0.T)
            twist = np.dot(rel[1:], g.axis)
            q = g.q0 + 2.0 * np.arctan2(twist, rel[0])
        lo, hi = self.model.jnt_range[g.joint]
        a = self.model.jnt_qposadr[g.joint]
        data.qpos[a] = np.clip(q, lo, hi)
        data.qvel[self.model.jnt_dofadr[g.joint]] = 0.0

    def advance(self, q: np.ndarray, qdot: np.ndarray, seconds: float) -> None:
        """Run physics for ``seconds`` with the arm held on the straight line q - qdot*seconds -> q."""
        n = max(1, int(round(seconds / self.model.opt.timestep)))
        start = q - qdot * seconds
        for i in range(1, n + 1):  # physics steps of one tick; the per-tick count is a handful
            self.pose_robot(start + qdot * (seconds * i / n), qdot, self.data)
            mujoco.mj_step(self.model, self.data)
        # Leave the robot exactly on its path (mj_step integrated it one step further).
        self.pose_robot(q, qdot, self.data)
        mujoco.mj_forward(self.model, self.data)

    # ----------------------------------------------------------------- gripper
    def close_gripper(self) -> None:
        """Close until both fingers touch one body; attach it (if any).

        Like a real parallel gripper, a finger that touches first pushes the object towards the centre: the object
        is shifted along the finger axis so that it sits centred between the fingers (free objects only)."""
        self.gripper_open = False
        d = self.scratch
        d.qpos[:] = self.data.qpos
        bodies = self.model.geom_bodyid
        first_touch: list[dict[int, float]] = [{}, {}]  # per finger: body -> opening at first contact
        width, body = 0.0, -1
        for w in np.linspace(FINGER_OPEN, 0.0, 41):  # at most 41 cheap contact queries, once per gripper close
            d.qpos[self.finger_qadr] = w
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_collision(self.model, d)
            g1, g2 = d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]
            for f, fg in enumerate(self.finger_geoms):
                other = np.concatenate([g2[g1 == fg], g1[g2 == fg]])
                other = other[(bodies[other] != 0) & ~self.robot_geom[other]]
                for b in bodies[other].tolist():
                    first_touch[f].setdefault(b, w)
            common = sorted(set(first_touch[0]) & set(first_touch[1]))
            if common:
                body = common[0]
                w_left, w_right = first_touch[0][body], first_touch[1][body]
                width = min(FINGER_OPEN, (w_left + w_right) / 2 + 0.001)
                self._centre_between_fingers(body, (w_left - w_right) / 2)
                break
        self.finger_width = width
        self.grasp = self._make_grasp(body, width) if body >= 0 else None

    def _centre_between_fingers(self, body: int, offset: float) -> None:
        """Shift a free body by ``-offset`` along the finger axis (the hand's y); articulated parts stay put."""
        jnt = self.model.body_jntadr[body]
        if jnt < 0 or self.model.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE or abs(offset) < 1e-6:
            return
        finger_axis = self.tcp_pose()[1][:, 1]
        a = self.model.jnt_qposadr[jnt]
        self.data.qpos[a:a + 3] -= offset * finger_axis
        mujoco.mj_forward(self.model, self.data)

    def _make_grasp(self, body: int, width: float) -> Grasp | None:
        m, d = self.model, self.data
        p, r = self.tcp_pose()
        # Articulated parts: the grasped body may be a child (handle) of the moving body; walk up to the joint.
        b = body
        while m.body_jntnum[b] == 0 and b != 0:
            b = m.body_parentid[b]
        if b == 0:
            return None  # a fixed part of the scene: the fingers just stop on it
        jnt = m.body_jntadr[b]
        kind = {mujoco.mjtJoint.mjJNT_FREE: "free", mujoco.mjtJoint.mjJNT_SLIDE: "slide",
                mujoco.mjtJoint.mjJNT_HINGE: "hinge"}.get(int(m.jnt_type[jnt]))
        if kind is None:
            return None
        if kind == "free":
            pos, rot = d.xpos[b], d.xmat[b].reshape(3, 3)
            return Grasp(b, "free", width, rel_pos=r.T @ (pos - p), rel_rot=r.T @ rot)
        if m.body_jntnum[b] != 1 or b in self.no_grasp_bodies:
            return None
        return Grasp(b, kind, width, joint=int(jnt), q0=float(d.qpos[m.jnt_qposadr[jnt]]), tcp_pos0=p,
                     tcp_rot0=r, axis=d.xaxis[jnt].copy())

    def open_gripper(self) -> None:
        self.gripper_open = True
        self.grasp = None
        self.finger_width = FINGER_OPEN

    # ----------------------------------------------------------------- collision
    def colliding_pairs(self, q: np.ndarray) -> np.ndarray:
        """Geom pairs (keys ``min * ngeom + max``) where the robot, or the free object it holds, penetrates
        something by more than the margin at arm configuration ``q``."""
        d = self.scratch
        d.qpos[:] = self.data.qpos
        self.pose_robot(q, None, d)
        mujoco.mj_collision(self.model, d)
        n = d.ncon
        if n == 0:
            return np.zeros(0, np.int64)
        g1, g2 = d.contact.geom1[:n], d.contact.geom2[:n]
        # Moving: the robot and a free object it holds. Contacts between two moving geoms (fingers on the held
        # object) or two static ones do not matter; moving against static does.
        moving = self.robot_geom.copy()
        if self.grasp is not None and self.grasp.kind == "free":
            moving |= self.model.geom_bodyid == self.grasp.body
        cross = moving[g1] != moving[g2]
        if self.grasp is not None and self.grasp.kind != "free":
            # A held articulated part (and the cabinet it slides in) touches the hand by design; it moves with the
            # hand along its joint, which the checker does not model, so its contacts are left out.
            b1, b2 = self.model.geom_bodyid[g1], self.model.geom_bodyid[g2]
            part = [self.grasp.body, self.model.body_parentid[self.grasp.body]]
            cross &= ~(np.isin(b1, part) | np.isin(b2, part))
        bad = cross & (d.contact.dist[:n] < -self.collision_margin)
        lo, hi = np.minimum(g1[bad], g2[bad]), np.maximum(g1[bad], g2[bad])
        return np.unique(lo.astype(np.int64) * self.model.ngeom + hi)

    def in_collision(self, q: np.ndarray, allowed: np.ndarray | None = None) -> bool:
        """Does the robot (or the free object it holds) penetrate anything at ``q``, other than the ``allowed``
        pairs (those already in contact where a move starts, e.g. fingers still pressing a button)?"""
        pairs = self.colliding_pairs(q)
        if allowed is not None and len(allowed):
            pairs = pairs[~np.isin(pairs, allowed)]
        return len(pairs) > 0

    # ----------------------------------------------------------------- cameras
    def render(self, names: tuple[str, ...]) -> dict[str, CameraFrame]:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
        r, s = self._renderer, self.image_size
        frames = {}
        for name in names:
            cam = self._cam_ids[name]
            r.disable_depth_rendering()
            r.update_scene(self.data, camera=cam)
            rgb = r.render().copy()
            r.enable_depth_rendering()
            r.update_scene(self.data, camera=cam)
            depth = r.render().astype(np.float32)
            # Beyond the far plane there is no surface: "no return", as the protocol defines it.
            depth[depth >= self.model.vis.map.zfar * self.model.stat.extent * 0.999] = 0.0
            f = 0.5 * s / np.tan(np.deg2rad(self.model.cam_fovy[cam]) / 2)
            c = (s - 1) / 2.0  # pixel centres sit at integer coordinates (docs/geometry.md)
            intr = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
            extr = np.eye(4)
            # MuJoCo cameras look down -z with y up; our camera frame is x right, y down, z forward.
            extr[:3, :3] = self.data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
            extr[:3, 3] = self.data.cam_xpos[cam]
            frames[name] = CameraFrame(rgb, depth, intr, extr)
        r.disable_depth_rendering()
        return frames

    def segmentation(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Per camera, the geom id seen at each pixel (H, W) int32, -1 where no geom (RLBench's masks, by geom)."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
        r = self._renderer
        r.enable_segmentation_rendering()
        out = {}
        for name in names:
            r.update_scene(self.data, camera=self._cam_ids[name])
            seg = r.render()
            out[name] = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1).astype(np.int32)
        r.disable_segmentation_rendering()
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
