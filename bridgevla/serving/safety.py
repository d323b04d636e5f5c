"""The safety layer between every keypose and an arm (docs/robot.md, "Safety").

Arms (``bridgevla.serving.arm``) execute only :class:`ApprovedKeypose` objects, and only :class:`SafetyLayer`
creates them (with a module-private token the arms check), so the one road from a prediction to a motion runs
through :meth:`SafetyLayer.check`. A keypose is approved only if all of these hold:

- position and quaternion finite, quaternion non-zero (it is normalised, w >= 0);
- inside the workspace box (the policy's scene bounds unless set) shrunk by ``margin`` on every side;
- at least ``min_height`` above ``table_height`` (when the table height is set);
- at most ``max_translation`` metres and ``max_rotation_deg`` degrees away from the arm's current pose.

Speed/acceleration/jerk factors are validated here too (``<= max_dynamics_factor``) and travel with each approval,
so an arm never moves faster than the safety settings allow. ``SafeArm`` adds the operator: a stop key,
``confirm`` (ask before each motion) and ``dry_run`` (show the plan, never move). A rejected keypose is logged with
its reasons and never sent to the arm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks.protocol import Keypose, KeyposeRejected, WorkspaceGuard
from rendering import SceneBounds, normalize_quaternion, quaternion_angle

log = logging.getLogger("bridgevla.safety")

_TOKEN = object()  # only this module can make an ApprovedKeypose


@dataclass
class SafetyConfig:
    workspace: list[float] = field(default_factory=list)  # [xmin, ymin, zmin, xmax, ymax, zmax]; empty = bounds
    margin: float = 0.02  # metres kept free inside every face of the workspace box
    table_height: float | None = None  # z of the table top in the base frame; None = no height check
    min_height: float = 0.02  # the TCP stays this far above the table
    max_translation: float = 0.30  # metres between the current pose and a keypose
    max_rotation_deg: float = 90.0  # degrees between the current orientation and a keypose's
    velocity_factor: float = 0.10  # fractions of the arm's maximum (franky's relative dynamics factor)
    acceleration_factor: float = 0.10
    jerk_factor: float = 0.10
    max_dynamics_factor: float = 0.30  # no factor above this is accepted (a config error)
    confirm: bool = False  # ask the operator before each motion
    dry_run: bool = False  # show the plan, never move

    def __post_init__(self) -> None:
        if self.workspace and (len(self.workspace) != 6 or
                               any(h <= l for l, h in zip(self.workspace[:3], self.workspace[3:]))):
            raise ValueError(f"safety.workspace must be [xmin, ymin, zmin, xmax, ymax, zmax] with max > min, got "
                             f"{self.workspace}")
        for name in ("margin", "min_height", "max_translation", "max_rotation_deg"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"safety.{name} must be a number >= 0, got {v!r}")
        if self.max_rotation_deg > 180:
            raise ValueError(f"safety.max_rotation_deg must be <= 180, got {self.max_rotation_deg}")
        if not 0 < self.max_dynamics_factor <= 1:
            raise ValueError(f"safety.max_dynamics_factor must be in (0, 1], got {self.max_dynamics_factor}")
        for name in ("velocity_factor", "acceleration_factor", "jerk_factor"):
            v = getattr(self, name)
            if not 0 < v <= self.max_dynamics_factor:
                raise ValueError(f"safety.{name} must be in (0, max_dynamics_factor={self.max_dynamics_factor}], "
                                 f"got {v!r}")

    @property
    def dynamics(self) -> tuple[float, float, float]:
        return (self.velocity_factor, self.acceleration_factor, self.jerk_factor)


@dataclass(frozen=True)
class ApprovedKeypose:
    """A keypose that passed every check; arms refuse anything else (:func:`require_approved`)."""

    position: np.ndarray
    quaternion: np.ndarray  # unit, xyzw, w >= 0
    gripper_open: bool
    ignore_collisions: bool
    dynamics: tuple[float, float, float]  # velocity, acceleration, jerk factors
    _token: object = field(repr=False, compare=False, default=None)

    def keypose(self) -> Keypose:
        return Keypose(self.position.copy(), self.quaternion.copy(), self.gripper_open, self.ignore_collisions)


def require_approved(keypose: Any) -> ApprovedKeypose:
    """What every arm calls first: anything that did not come out of :meth:`SafetyLayer.check` is refused."""
    if not isinstance(keypose, ApprovedKeypose) or keypose._token is not _TOKEN:
        raise TypeError(f"arms execute only keyposes approved by bridgevla.serving.safety.SafetyLayer, got "
                        f"{type(keypose).__name__}")
    return keypose


@dataclass
class Verdict:
    approved: ApprovedKeypose | None
    reasons: list[str]

    @property
    def ok(self) -> bool:
        return self.approved is not None


class SafetyLayer:
    def __init__(self, config: SafetyConfig, bounds: list[float] | tuple[float, ...] | None = None) -> None:
        self.config = config
        box = list(config.workspace) or (list(bounds) if bounds is not None else [])
        if len(box) != 6:
            raise ValueError("safety: set safety.workspace or give the policy's scene bounds")
        lo, hi = np.asarray(box[:3], float) + config.margin, np.asarray(box[3:], float) - config.margin
        if (hi <= lo).any():
            raise ValueError(f"safety.margin {config.margin} leaves no workspace inside {box}")
        if config.table_height is not None:
            lo[2] = max(lo[2], config.table_height + config.min_height)
            if hi[2] <= lo[2]:
                raise ValueError(f"safety: table_height + min_height ({lo[2]:.3f}) is above the workspace top "
                                 f"({hi[2]:.3f})")
        self.lo, self.hi = lo, hi
        self.guard = WorkspaceGuard(SceneBounds(tuple(lo.tolist()), tuple(hi.tolist())), tolerance=0.0)

    def check(self, keypose: Keypose, current_pose: np.ndarray) -> Verdict:
        """Approve ``keypose`` (world = robot base frame) for an arm now at ``current_pose`` (7,) xyz + xyzw."""
        cfg = self.config
        pos = np.asarray(keypose.position, dtype=np.float64).reshape(-1)
        quat = np.asarray(keypose.quaternion, dtype=np.float64).reshape(-1)
        cur = np.asarray(current_pose, dtype=np.float64).reshape(-1)
        reasons = []
        # The one workspace check (benchmarks.protocol.WorkspaceGuard) with no tolerance: on a real arm nothing is
        # clamped, a keypose outside the (margin-shrunk) box is refused.
        try:
            self.guard.check(keypose)
        except KeyposeRejected as e:
            if e.requested is None or not (np.isfinite(pos).all() and np.isfinite(quat).all()) or \
                    np.linalg.norm(quat) < 1e-6:
                return Verdict(None, [str(e)])  # not a pose at all: nothing else to check
            reasons.append(str(e))
            floor = None if cfg.table_height is None else cfg.table_height + cfg.min_height
            if floor is not None and pos[2] < floor:
                reasons.append(f"z = {pos[2]:.3f} m is too close to the table (min {floor:.3f})")
        if cur.shape != (7,) or not np.isfinite(cur).all():
            return Verdict(None, ["the arm's current pose is unknown or not finite"])
        q = normalize_quaternion(torch.from_numpy(quat)).numpy()
        step = float(np.linalg.norm(pos - cur[:3]))
        if step > cfg.max_translation:
            reasons.append(f"translation {step:.3f} m exceeds max_translation {cfg.max_translation:.3f} m")
        if np.linalg.norm(cur[3:]) < 1e-6:
            reasons.append("the arm's current orientation is a zero quaternion")
        else:
            angle = float(quaternion_angle(torch.from_numpy(q), torch.from_numpy(cur[3:])))
            if angle > cfg.max_rotation_deg:
                reasons.append(f"rotation {angle:.1f} deg exceeds max_rotation_deg {cfg.max_rotation_deg:.1f}")
        if reasons:
            return Verdict(None, reasons)
        return Verdict(ApprovedKeypose(pos.copy(), q, bool(keypose.gripper_open), bool(keypose.ignore_collisions),
                                       cfg.dynamics, _TOKEN), [])


def describe(keypose: Keypose | ApprovedKeypose, current_pose: np.ndarray | None = None) -> str:
    """One line for the operator: where the arm will go and what the gripper will do."""
    p, q = np.asarray(keypose.position), np.asarray(keypose.quaternion)
    text = (f"move to xyz=({p[0]:+.3f}, {p[1]:+.3f}, {p[2]:+.3f}) m, quat xyzw=({q[0]:+.3f}, {q[1]:+.3f}, "
            f"{q[2]:+.3f}, {q[3]:+.3f}), then gripper {'open' if keypose.gripper_open else 'close'}")
    if current_pose is not None and np.isfinite(current_pose).all():
        text += f" [{np.linalg.norm(p - np.asarray(current_pose)[:3]) * 100:.1f} cm from here]"
    return text


@dataclass
class Outcome:
    """What happened to one keypose at the safety layer: ``executed``, ``rejected``, ``planned`` (dry run),
    ``declined`` (operator said no) or ``stopped`` (stop key)."""

    status: str
    reasons: list[str] = field(default_factory=list)
    result: Any = None  # the arm's ArmResult when executed


class SafeArm:
    """An arm behind the safety layer and the operator. The runner, calibration and demo recording hold this, never
    the arm itself."""

    def __init__(self, arm: Any, layer: SafetyLayer, operator: Any) -> None:
        self._arm, self.layer, self.operator = arm, layer, operator
        self.rejections: list[dict[str, Any]] = []

    def state(self) -> Any:
        return self._arm.state()

    def stop(self) -> None:
        self._arm.stop()

    def set_gripper(self, open_: bool) -> None:
        """Open or close the gripper in place (no arm motion, so no pose checks; the stop key still applies)."""
        if self.operator.stop_requested():
            raise RuntimeError("stopped by the operator")
        if not self.layer.config.dry_run:
            self._arm.set_gripper(open_)

    def execute(self, keypose: Keypose) -> Outcome:
        if self.operator.stop_requested():
            return Outcome("stopped", ["stop requested by the operator"])
        current = np.asarray(self._arm.state().pose, dtype=np.float64)
        verdict = self.layer.check(keypose, current)
        plan = describe(keypose, current)
        if not verdict.ok:
            log.warning("rejected keypose (%s): %s", plan, "; ".join(verdict.reasons))
            self.rejections.append({"keypose": keypose.to_array().tolist() if np.isfinite(keypose.to_array()).all()
                                    else [str(v) for v in keypose.to_array()], "reasons": verdict.reasons})
            return Outcome("rejected", verdict.reasons)
        if self.layer.config.dry_run:
            self.operator.show(f"[dry run] {plan}")
            return Outcome("planned")
        if self.layer.config.confirm and not self.operator.confirm(plan):
            return Outcome("declined", ["the operator declined the keypose"])
        if self.operator.stop_requested():
            return Outcome("stopped", ["stop requested by the operator"])
        return Outcome("executed", result=self._arm.execute(verdict.approved))

    def close(self) -> None:
        self._arm.close()
