"""Keypose -> joint path, like RLBench's EndEffectorPoseViaPlanning: damped-least-squares IK, a straight
joint-space path checked for collisions, and lifted-waypoint detours before giving up."""

from __future__ import annotations

import mujoco
import numpy as np
from scipy.optimize import least_squares

from benchmarks.embedded.robot import HOME_QPOS, JOINT_LOWER, JOINT_UPPER
from benchmarks.embedded.sim import Sim


class PlanningError(RuntimeError):
    """The keypose cannot be reached (IK failed, or every path collides); the episode ends as a failure."""


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector taking ``current`` to ``target`` (both 3x3)."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(target @ current.T).reshape(9))
    if q[0] < 0:
        q = -q
    v = np.zeros(3)
    mujoco.mju_quat2Vel(v, q, 1.0)
    return v


def solve_ik(sim: Sim, pos: np.ndarray, rot: np.ndarray, seed: np.ndarray, pos_tol: float, rot_tol: float,
             iterations: int = 150) -> np.ndarray | None:
    """Joint angles putting the TCP at (pos, rot), or None. Damped least squares with joint-limit clamping and a
    weak null-space pull towards the ready pose (keeps the elbow up, which keeps paths short)."""
    d = sim.scratch
    d.qpos[:] = sim.data.qpos
    q = np.clip(seed.astype(np.float64), JOINT_LOWER, JOINT_UPPER)
    m = sim.model
    for _ in range(iterations):
        d.qpos[sim.arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        p, r = sim.tcp_pose(d)
        err = np.concatenate([pos - p, rotation_error(rot, r)])
        pe, re = np.linalg.norm(err[:3]), np.linalg.norm(err[3:])
        if pe < pos_tol and re < rot_tol:
            return q
        axes = d.xaxis[sim.arm_joint_ids]  # (7, 3) world joint axes
        anchors = d.xanchor[sim.arm_joint_ids]
        jac = np.concatenate([np.cross(axes, p - anchors).T, axes.T])  # (6, 7), revolute joints
        # Damping shrinks as the error does: robust far away, exact convergence close by.
        lam2 = min(0.05, pe + 0.2 * re) ** 2 + 1e-6
        pinv = jac.T @ np.linalg.inv(jac @ jac.T + lam2 * np.eye(6))
        dq = pinv @ err + 0.3 * (np.eye(7) - pinv @ jac) @ (HOME_QPOS - q)
        step = np.max(np.abs(dq))
        if step > 0.3:  # trust region: large steps overshoot near singularities
            dq *= 0.3 / step
        q = np.clip(q + dq, JOINT_LOWER, JOINT_UPPER)
    return None


def solve_ik_bounded(sim: Sim, pos: np.ndarray, rot: np.ndarray, seed: np.ndarray, pos_tol: float,
                     rot_tol: float) -> np.ndarray | None:
    """Slower, bound-aware IK (scipy's trust-region reflective least squares): it slides along joint limits where
    clamped DLS stalls, which is what reaching forward with a horizontal gripper needs."""
    d, m = sim.scratch, sim.model
    d.qpos[:] = sim.data.qpos
    w = 0.3  # metres per radian: weighs orientation against position

    def fk(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d.qpos[sim.arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        return sim.tcp_pose(d)

    def residual(q: np.ndarray) -> np.ndarray:
        p, r = fk(q)
        return np.concatenate([pos - p, w * rotation_error(rot, r)])

    def jacobian(q: np.ndarray) -> np.ndarray:
        p, _ = fk(q)
        axes, anchors = d.xaxis[sim.arm_joint_ids], d.xanchor[sim.arm_joint_ids]
        return -np.concatenate([np.cross(axes, p - anchors).T, w * axes.T])

    x0 = np.clip(seed, JOINT_LOWER + 1e-6, JOINT_UPPER - 1e-6)
    res = least_squares(residual, x0, jac=jacobian, bounds=(JOINT_LOWER, JOINT_UPPER), method="trf",
                        xtol=1e-10, ftol=1e-10, max_nfev=100)
    e = residual(res.x)
    if np.linalg.norm(e[:3]) < pos_tol and np.linalg.norm(e[3:]) / w < rot_tol:
        return res.x
    return None


def ik_any(sim: Sim, pos: np.ndarray, rot: np.ndarray, seed: np.ndarray, pos_tol: float, rot_tol: float,
           rng_seed: int = 0) -> np.ndarray | None:
    """Fast DLS from the current configuration and the ready pose; then bounded least squares from those and a
    few fixed random configurations (deterministic: the same query always gives the same answer)."""
    for s in (seed, HOME_QPOS):
        q = solve_ik(sim, pos, rot, s, pos_tol, rot_tol)
        if q is not None:
            return q
    rng = np.random.default_rng(rng_seed)
    for s in [seed, HOME_QPOS] + [rng.uniform(JOINT_LOWER, JOINT_UPPER) for _ in range(8)]:
        q = solve_ik_bounded(sim, pos, rot, s, pos_tol, rot_tol)
        if q is not None:
            return q
    return None


def segment_free(sim: Sim, q0: np.ndarray, q1: np.ndarray, allowed: np.ndarray | None = None,
                 step: float = 0.04) -> bool:
    """Straight joint-space segment checked at most ``step`` rad apart (and at its end)."""
    n = max(1, int(np.ceil(np.max(np.abs(q1 - q0)) / step)))
    return not any(sim.in_collision(q0 + (q1 - q0) * (i / n), allowed) for i in range(1, n + 1))


def path_free(sim: Sim, q_start: np.ndarray, path: list[np.ndarray], allowed: np.ndarray | None = None) -> bool:
    prev = q_start
    for q in path:  # waypoints are a few centimetres apart
        if not segment_free(sim, prev, q, allowed):
            return False
        prev = q
    return True


def cartesian_path(sim: Sim, q_start: np.ndarray, p0: np.ndarray, r0: np.ndarray, p1: np.ndarray, r1: np.ndarray,
                   pos_tol: float, rot_tol: float, max_jump: float = 0.6) -> list[np.ndarray] | None:
    """Joint waypoints along the straight TCP line p0 -> p1 (rotation slerped), or None if IK breaks off.

    A straight tool path is what pushing, dragging and inserting need; a joint-space line can bow by centimetres."""
    omega = rotation_error(r1, r0)
    n = max(1, int(np.ceil(max(np.linalg.norm(p1 - p0) / 0.02, np.linalg.norm(omega) / 0.1))))
    out, q = [], q_start
    for i in range(1, n + 1):  # one short IK solve per 2 cm / 0.1 rad
        s = i / n
        angle = np.linalg.norm(omega)
        quat = np.array([1.0, 0.0, 0.0, 0.0])
        if angle > 1e-9:
            mujoco.mju_axisAngle2Quat(quat, omega / angle, s * angle)
        dr = np.zeros(9)
        mujoco.mju_quat2Mat(dr, quat)
        target_p, target_r = p0 + s * (p1 - p0), dr.reshape(3, 3) @ r0
        q_new = solve_ik(sim, target_p, target_r, q, pos_tol, rot_tol, iterations=60)
        if q_new is None:  # near joint limits clamped DLS stalls; the bounded solver slides along them
            q_new = solve_ik_bounded(sim, target_p, target_r, q, pos_tol, rot_tol)
        if q_new is None or np.max(np.abs(q_new - q)) > max_jump:
            return None
        out.append(q_new)
        q = q_new
    return out


def _segment(sim: Sim, q_start: np.ndarray, p0: np.ndarray, r0: np.ndarray, p1: np.ndarray, r1: np.ndarray,
             pos_tol: float, rot_tol: float) -> list[np.ndarray] | None:
    """A straight tool path, or failing that a joint-space line to an IK solution of the segment's end."""
    path = cartesian_path(sim, q_start, p0, r0, p1, r1, pos_tol, rot_tol)
    if path is not None:
        return path
    q = ik_any(sim, p1, r1, q_start, pos_tol, rot_tol)
    return None if q is None else [q]


def plan(sim: Sim, pos: np.ndarray, rot: np.ndarray, ignore_collisions: bool, detour_heights: tuple[float, ...],
         z_max: float, pos_tol: float, rot_tol: float, retry_ignoring: bool) -> list[np.ndarray]:
    """Joint waypoints (excluding the current configuration) ending at the keypose.

    First a straight tool path (falling back to a joint-space line when IK breaks off along it); unless collisions
    are ignored, that path must be free, else lift-traverse-descend detours at increasing heights are tried."""
    q_now = sim.arm_q
    p_now, r_now = sim.tcp_pose()
    q_goal = ik_any(sim, pos, rot, q_now, pos_tol, rot_tol)
    if q_goal is None:
        raise PlanningError(f"no inverse-kinematics solution for position {np.round(pos, 3).tolist()}")
    direct = cartesian_path(sim, q_now, p_now, r_now, pos, rot, pos_tol, rot_tol) or [q_goal]
    if ignore_collisions:
        return direct
    # Contacts the robot is already in (a pressed button, a block it rests on) may persist while it moves off;
    # without this, any move after a pressing keypose would be refused.
    allowed = sim.colliding_pairs(q_now)
    if sim.in_collision(direct[-1], allowed):
        if retry_ignoring:
            return direct
        raise PlanningError("the keypose itself is in collision")
    if path_free(sim, q_now, direct, allowed):
        return direct
    for h in detour_heights:
        up_a = np.array([p_now[0], p_now[1], min(max(p_now[2], pos[2]) + h, z_max)])
        up_b = np.array([pos[0], pos[1], up_a[2]])
        lift = _segment(sim, q_now, p_now, r_now, up_a, r_now, pos_tol, rot_tol)
        move = None if lift is None else _segment(sim, lift[-1], up_a, r_now, up_b, rot, pos_tol, rot_tol)
        down = None if move is None else _segment(sim, move[-1], up_b, rot, pos, rot, pos_tol, rot_tol)
        if down is None:
            continue
        path = lift + move + down
        if not sim.in_collision(path[-1], allowed) and path_free(sim, q_now, path, allowed):
            return path
    if retry_ignoring:
        return direct
    raise PlanningError("every planned path collides (direct and lifted detours)")
