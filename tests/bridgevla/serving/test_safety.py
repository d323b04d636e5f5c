"""The safety layer: hand-made cases, and hypothesis properties that no keypose outside the limits reaches an arm."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.protocol import Keypose
from bridgevla.serving.arm import ArmResult, ArmState
from bridgevla.serving.operator import ScriptedOperator
from bridgevla.serving.safety import ApprovedKeypose, SafeArm, SafetyConfig, SafetyLayer, require_approved

BOUNDS = [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6]
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # gripper pointing down


class RecordingArm:
    """An arm that records what reaches it (and refuses what did not come through the safety layer)."""

    def __init__(self, pose: np.ndarray) -> None:
        self.pose, self.received, self.gripper = np.asarray(pose, float), [], []

    def state(self) -> ArmState:
        return ArmState(self.pose.copy(), True, np.zeros(7), np.zeros(7))

    def execute(self, keypose) -> ArmResult:
        k = require_approved(keypose)
        self.received.append(k)
        self.pose = np.concatenate([k.position, k.quaternion])
        return ArmResult(True)

    def set_gripper(self, open_: bool) -> None:
        self.gripper.append(open_)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


CFG = SafetyConfig(margin=0.05, table_height=0.75, min_height=0.03, max_translation=0.25, max_rotation_deg=60)


def _within_limits(k: ApprovedKeypose, before: np.ndarray, cfg: SafetyConfig) -> bool:
    """Independent restatement of the limits (no code shared with the layer)."""
    lo = np.array(BOUNDS[:3]) + cfg.margin
    hi = np.array(BOUNDS[3:]) - cfg.margin
    lo[2] = max(lo[2], cfg.table_height + cfg.min_height)
    q1 = k.quaternion / np.linalg.norm(k.quaternion)
    q0 = before[3:] / np.linalg.norm(before[3:])
    angle = np.degrees(2 * np.arccos(min(1.0, abs(float(q1 @ q0)))))
    return bool(np.all(k.position >= lo - 1e-12) and np.all(k.position <= hi + 1e-12)
                and np.linalg.norm(k.position - before[:3]) <= cfg.max_translation + 1e-12
                and angle <= cfg.max_rotation_deg + 1e-6 and k.dynamics == cfg.dynamics)


finite = st.floats(-3, 3, allow_nan=False)
anything = st.one_of(finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf), st.floats(-1e6, 1e6))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(anything, min_size=3, max_size=3), st.lists(anything, min_size=4, max_size=4),
                          st.booleans()), min_size=1, max_size=8))
def test_no_keypose_outside_the_limits_reaches_the_arm(steps):
    arm = RecordingArm(np.concatenate([[0.3, 0.0, 1.0], DOWN]))
    safe = SafeArm(arm, SafetyLayer(CFG, BOUNDS), ScriptedOperator())
    for pos, quat, grip in steps:
        before = arm.pose.copy()
        n = len(arm.received)
        outcome = safe.execute(Keypose(np.array(pos), np.array(quat), grip, False))
        if outcome.status == "executed":
            assert len(arm.received) == n + 1 and _within_limits(arm.received[-1], before, CFG)
        else:
            assert outcome.status == "rejected" and outcome.reasons and len(arm.received) == n


@settings(max_examples=80, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3), st.floats(0, 179))
def test_keyposes_near_the_arm_inside_the_box_pass(offset, angle):
    """The converse: a keypose inside every limit is approved (the layer does not refuse everything)."""
    start = np.concatenate([[0.3, 0.0, 1.0], DOWN])
    step = np.array(offset)
    step = step / max(np.linalg.norm(step), 1e-9) * min(np.linalg.norm(step), 0.2)
    half = np.radians(min(angle, 59.0)) / 2  # rotate about z, composed with "down"
    qz = np.array([0.0, 0.0, np.sin(half), np.cos(half)])
    x1, y1, z1, w1 = DOWN
    x2, y2, z2, w2 = qz
    q = np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                  w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])
    verdict = SafetyLayer(CFG, BOUNDS).check(Keypose(start[:3] + step, q, True, False), start)
    assert verdict.ok, verdict.reasons


@pytest.mark.parametrize(("pos", "quat", "match"), [
    ([0.3, 0.0, 0.70], DOWN, "too close to the table"),
    ([0.3, 0.0, 1.58], DOWN, "outside the workspace"),
    ([0.3, 0.3, 1.0], DOWN, "exceeds max_translation"),
    ([0.3, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], "exceeds max_rotation_deg"),
    ([0.3, np.nan, 1.0], DOWN, "non-finite"),  # the workspace guard's own words
    ([0.3, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], "zero"),
])
def test_each_limit_names_itself(pos, quat, match):
    arm = RecordingArm(np.concatenate([[0.3, 0.0, 1.0], DOWN]))
    safe = SafeArm(arm, SafetyLayer(CFG, BOUNDS), ScriptedOperator())
    out = safe.execute(Keypose(np.array(pos), np.array(quat), True, False))
    assert out.status == "rejected" and any(match in r for r in out.reasons), out.reasons
    assert not arm.received and safe.rejections[-1]["reasons"] == out.reasons


def test_arms_refuse_keyposes_that_skipped_the_layer():
    arm = RecordingArm(np.concatenate([[0.3, 0.0, 1.0], DOWN]))
    with pytest.raises(TypeError, match="approved"):
        arm.execute(Keypose(np.array([0.3, 0.0, 1.0]), DOWN, True, False))
    forged = ApprovedKeypose(np.zeros(3), DOWN, True, False, (0.1, 0.1, 0.1), object())
    with pytest.raises(TypeError):
        arm.execute(forged)


def test_dry_run_confirm_and_stop():
    start = np.concatenate([[0.3, 0.0, 1.0], DOWN])
    kp = Keypose(np.array([0.35, 0.0, 1.0]), DOWN, True, False)
    arm = RecordingArm(start)
    op = ScriptedOperator()
    assert SafeArm(arm, SafetyLayer(SafetyConfig(dry_run=True), BOUNDS), op).execute(kp).status == "planned"
    assert not arm.received and "dry run" in op.shown[0]
    op = ScriptedOperator(answers=[False, True])
    safe = SafeArm(arm, SafetyLayer(SafetyConfig(confirm=True), BOUNDS), op)
    assert safe.execute(kp).status == "declined" and not arm.received
    assert safe.execute(kp).status == "executed" and len(arm.received) == 1 and len(op.confirmations) == 2
    safe = SafeArm(arm, SafetyLayer(SafetyConfig(), BOUNDS), ScriptedOperator(stop_after=0))
    assert safe.execute(kp).status == "stopped" and len(arm.received) == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"velocity_factor": 0.5}, "velocity_factor"),
    ({"max_dynamics_factor": 1.5}, "max_dynamics_factor"),
    ({"workspace": [0, 0, 0, 1, 1]}, "workspace"),
    ({"max_rotation_deg": 200}, "max_rotation_deg"),
    ({"margin": -1}, "margin"),
])
def test_bad_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SafetyConfig(**kwargs)


def test_margin_that_eats_the_workspace_is_an_error():
    with pytest.raises(ValueError, match="no workspace"):
        SafetyLayer(SafetyConfig(margin=0.6), BOUNDS)
