"""The Franka (franky) and RealSense (pyrealsense2) pieces against fakes of those libraries: the calls the runner,
the recorder and the cameras make. Plus hand-eye calibration on synthetic ChArUco views with known poses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmarks.dataset import load_episode
from benchmarks.protocol import Keypose
from bridgevla.serving.arm import FrankyArm, FrankyConfig
from bridgevla.serving.calibration import (
    BoardConfig,
    CalibrationError,
    CameraCalibration,
    check_solution,
    detect_board,
    load_calibration,
    save_calibration,
    solve_hand_eye,
    synthetic_view,
)
from bridgevla.serving.cameras import Mount, RealSenseCameras, RealSenseConfig
from bridgevla.serving.client import LocalPolicy
from bridgevla.serving.operator import ScriptedOperator
from bridgevla.serving.recording import RecordConfig, record_demo
from bridgevla.serving.runner import run_episode
from bridgevla.serving.safety import SafeArm, SafetyConfig, SafetyLayer

K = np.array([[30.0, 0, 11.5], [0, 30.0, 11.5], [0, 0, 1]])


def _camera_to_base() -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.diag([1.0, -1.0, -1.0])  # looking straight down
    m[:3, 3] = (0.2, 0.0, 1.9)
    return m


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    depth = np.full((24, 24), 1.0, np.float32) - rng.uniform(0, 0.1, (24, 24)).astype(np.float32)
    rgb = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    return lambda: (rgb, depth, K)


def test_realsense_frames_are_aligned_metres_with_factory_intrinsics(fake_hardware):
    _, rs = fake_hardware
    rs.DEVICES["123"] = _scene()
    cams = RealSenseCameras([RealSenseConfig("front", "123", 24, 24, 30, warmup_frames=2)],
                            {"front": Mount("fixed", _camera_to_base())})
    frame = cams.read()["front"]
    rgb, depth, _ = rs.DEVICES["123"]()
    np.testing.assert_array_equal(frame.rgb, rgb)
    np.testing.assert_allclose(frame.depth, depth, atol=0.0005)  # z16 millimetres, aligned to colour
    np.testing.assert_allclose(frame.intrinsics, K)
    np.testing.assert_allclose(frame.extrinsics, _camera_to_base())
    calls = [c for c, _ in rs.CALLS]
    assert ("enable_device", {"serial": "123"}) in rs.CALLS and "align" in calls
    streams = {a["stream"]: a["format"] for c, a in rs.CALLS if c == "enable_stream"}
    assert streams == {rs.stream.depth: rs.format.z16, rs.stream.color: rs.format.rgb8}
    cams.close()
    assert rs.CALLS[-1][0] == "stop"
    with pytest.raises(ValueError, match="no calibration"):
        RealSenseCameras([RealSenseConfig("side", "9", 24, 24)], {})


def test_wrist_camera_follows_the_hand():
    ee = np.array([0.4, 0.1, 0.5, 0.0, 0.0, np.sin(0.3), np.cos(0.3)])
    offset = np.eye(4)
    offset[:3, 3] = (0.05, 0.0, 0.02)
    ext = Mount("wrist", offset).extrinsics(ee)
    expected = np.eye(4)
    expected[:3, :3] = Rotation.from_quat(ee[3:]).as_matrix()
    expected[:3, 3] = ee[:3]
    np.testing.assert_allclose(ext, expected @ offset, atol=1e-12)


def test_runner_drives_franky_through_the_safety_layer(fake_hardware, policy):
    franky, rs = fake_hardware
    rs.DEVICES["123"] = _scene()
    arm = FrankyArm(FrankyConfig(ip="10.0.0.2", gripper_force=15.0))
    cams = RealSenseCameras([RealSenseConfig("front", "123", 24, 24, 30, warmup_frames=0)],
                            {"front": Mount("fixed", _camera_to_base())})
    safety = SafetyConfig(workspace=[-10, -10, -10, 10, 10, 10], margin=0.0, max_translation=50,
                          max_rotation_deg=180, velocity_factor=0.05, acceleration_factor=0.1, jerk_factor=0.2)
    safe = SafeArm(arm, SafetyLayer(safety), ScriptedOperator())
    run = run_episode(LocalPolicy(policy), safe, cams, "open the drawer", max_keyposes=3)
    assert run.end == "max_keyposes" and run.keyposes == 3 and run.success is None
    moves = [a for c, a in franky.CALLS if c == "move"]
    assert len(moves) == 3
    for m, k in zip(moves, run.executed):
        assert m["reference_type"] is franky.ReferenceType.Absolute and not m["asynchronous"]
        np.testing.assert_allclose(m["target"].translation, k.position, atol=1e-9)
        q = k.quaternion / np.linalg.norm(k.quaternion)
        assert min(np.abs(m["target"].quaternion - q).max(), np.abs(m["target"].quaternion + q).max()) < 1e-9
    rdf = [a["value"] for c, a in franky.CALLS if c == "relative_dynamics_factor"]
    assert [(r.velocity, r.acceleration, r.jerk) for r in rdf] == [(0.05, 0.1, 0.2)]  # set once, the safety caps
    coll = [a for c, a in franky.CALLS if c == "set_collision_behavior"]
    assert coll == [{"torque_thresholds": [20.0] * 7, "force_thresholds": [20.0] * 6}]
    grips = [(c, a) for c, a in franky.CALLS if c in ("grasp", "open")]
    expected_changes = sum(1 for a, b in zip([True] + [k.gripper_open for k in run.executed],
                                             [k.gripper_open for k in run.executed]) if a != b)
    assert len(grips) == expected_changes
    for c, a in grips:
        assert a["speed"] == 0.05 and (c == "open" or (a["force"] == 15.0 and a["epsilon_outer"] == 1.0))
    # The arm's reported pose is the fake's, read back through current_cartesian_state.
    np.testing.assert_allclose(safe.state().pose[:3], run.executed[-1].position, atol=1e-9)


def test_reflex_recovery_and_rejections_never_reach_franky(fake_hardware, policy):
    franky, _ = fake_hardware
    arm = FrankyArm(FrankyConfig(recover_attempts=1))
    layer = SafetyLayer(SafetyConfig(workspace=[0.0, -0.5, 0.2, 1.0, 0.5, 1.0], max_translation=0.3))
    safe = SafeArm(arm, layer, ScriptedOperator())
    arm.robot.fail_next = "cartesian_reflex"
    out = safe.execute(Keypose(np.array([0.55, 0.0, 0.4]), np.array([1.0, 0, 0, 0]), True, False))
    assert out.status == "executed" and out.result.ok  # recovered and retried with a fresh motion
    assert [c for c, _ in franky.CALLS if c in ("move", "recover_from_errors")][-3:] == \
        ["move", "recover_from_errors", "move"]
    n = len([c for c, _ in franky.CALLS if c == "move"])
    for bad in ([0.55, 0.0, 1.5], [0.55, 0.0, 0.4 + 0.5], [np.nan, 0, 0.4]):
        assert safe.execute(Keypose(np.array(bad), np.array([1.0, 0, 0, 0]), True, False)).status == "rejected"
    assert len([c for c, _ in franky.CALLS if c == "move"]) == n
    arm.robot.fail_next = "reflex"
    arm.config.recover_attempts = 0
    out = safe.execute(Keypose(np.array([0.5, 0.0, 0.4]), np.array([1.0, 0, 0, 0]), True, False))
    assert out.status == "executed" and not out.result.ok and "reflex" in out.result.error


def test_recording_a_kinesthetic_demo(fake_hardware, tmp_path):
    franky, rs = fake_hardware
    rs.DEVICES["123"] = _scene()
    arm = FrankyArm(FrankyConfig())
    cams = RealSenseCameras([RealSenseConfig("front", "123", 24, 24, 30, warmup_frames=0)],
                            {"front": Mount("fixed", _camera_to_base())})
    safe = SafeArm(arm, SafetyLayer(SafetyConfig(workspace=[-1, -1, 0, 1, 1, 1])), ScriptedOperator(
        keys={3: "k", 6: "g", 9: "k", 11: "d"}))
    cfg = RecordConfig(task="stack", instruction="stack the cup", out=str(tmp_path), rate_hz=500, image_every=4)
    path = record_demo(safe, cams, safe.operator, cfg)
    ep = load_episode(path)
    assert len(ep) == 12 and ep.keyframes == [3, 6, 9, 11] and ep.instructions == ["stack the cup"]
    assert [k.gripper_open for k in ep.keyposes] == [True, False, False, False]  # g closed it at tick 6
    assert set(ep.keyframes) <= set(ep.image_frames) and 0 in ep.image_frames and 4 in ep.image_frames
    assert ("grasp" in [c for c, _ in franky.CALLS]) and ep.aligned
    np.testing.assert_allclose(ep.keyposes[0].position, franky.Robot.START.translation)


# ------------------------------------------------------------------------------------------------ calibration
def _look_at(eye, target):
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    m[:3, 3] = eye
    return m


def _views(mount: str, n: int = 12, seed: int = 0):
    """Synthetic board views at known poses: (truth, base_T_ee list, detected views, intrinsics)."""
    rng = np.random.default_rng(seed)
    k = np.array([[900.0, 0, 639.5], [0, 900.0, 359.5], [0, 0, 1]])
    board = BoardConfig()
    ee_T_x = np.eye(4)
    ee_T_x[:3, :3] = Rotation.from_rotvec([0.1, 0.05, 0.0]).as_matrix()
    ee_T_x[:3, 3] = (0.0, -0.1, 0.08)  # fixed: the board in the hand; wrist: the camera on the hand
    base_T_cam = _look_at(np.array([1.0, 0.6, 0.6]), [0.45, 0.0, 0.25])
    base_T_board = np.diag([1.0, -1.0, -1.0, 1.0])  # on the table, face up (the board's z points into the table)
    base_T_board[:3, 3] = (0.5, 0.0, 0.0)
    ees, views = [], []
    for _ in range(3 * n):
        if len(views) == n:
            break
        p = np.array([0.45, 0.0, 0.25]) + rng.uniform(-0.1, 0.1, 3)
        if mount == "fixed":
            n_ = base_T_cam[:3, 3] - p
            z = Rotation.from_rotvec(rng.normal(0, 0.35, 3)).as_matrix() @ (-n_ / np.linalg.norm(n_))
            x = np.cross([0, 0, 1.0], z)
            x /= np.linalg.norm(x)
            b = np.eye(4)
            b[:3, :3] = np.column_stack([x, np.cross(z, x), z])
            b[:3, 3] = p - b[:3, :3] @ np.array([0.1, 0.14, 0])
            ee = b @ np.linalg.inv(ee_T_x)
            cam_T_board = np.linalg.inv(base_T_cam) @ b
        else:
            cam = _look_at(np.array([0.5, 0.0, 0.55]) + rng.uniform(-0.1, 0.1, 3), [0.6, -0.14, 0.0] + rng.normal(
                0, 0.03, 3))
            ee = cam @ np.linalg.inv(ee_T_x)
            cam_T_board = np.linalg.inv(cam) @ base_T_board
        v = detect_board(synthetic_view(board, k, cam_T_board, (720, 1280)), k, board)
        if v is not None:
            ees.append(ee)
            views.append(v)
    assert len(views) == n, f"only {len(views)} synthetic views showed the board"
    return (base_T_cam if mount == "fixed" else ee_T_x), ees, views, k


@pytest.mark.parametrize(("mount", "method"), [("fixed", "park"), ("fixed", "shah"), ("wrist", "park"),
                                                ("wrist", "li")])
def test_hand_eye_recovers_the_known_transform(mount, method):
    truth, ees, views, k = _views(mount)
    x = solve_hand_eye(ees, [v.camera_T_board for v in views], mount, method)
    angle = np.degrees(np.arccos(np.clip((np.trace(x[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
    assert np.linalg.norm(x[:3, 3] - truth[:3, 3]) < 0.006 and angle < 0.3
    check = check_solution(x, ees, views, k, mount)
    assert check["reprojection_px"] < 1.5 and check["residual_mm"] < 3.0
    # The check notices a wrong answer: 2 cm off gives residuals several times larger.
    off = x.copy()
    off[:3, 3] += 0.02
    assert check_solution(off, ees, views, k, mount)["reprojection_px"] > 3 * check["reprojection_px"]


def test_calibration_file_round_trip_and_refusals(tmp_path):
    m = np.eye(4)
    m[:3, 3] = (1.0, 2.0, 3.0)
    path = save_calibration(tmp_path / "calib.json", {"front": CameraCalibration("fixed", m, serial="123")})
    save_calibration(path, {"wrist": CameraCalibration("wrist", np.eye(4))})  # updates, keeps "front"
    got = load_calibration(path)
    assert sorted(got) == ["front", "wrist"] and got["front"].serial == "123"
    np.testing.assert_allclose(got["front"].mount_object().extrinsics(None), m)
    yml = save_calibration(tmp_path / "calib.yaml", got)
    assert sorted(load_calibration(yml)) == ["front", "wrist"]
    bad = path.read_text().replace('"version": 1', '"version": 2')
    (tmp_path / "v2.json").write_text(bad)
    with pytest.raises(CalibrationError, match="version 2"):
        load_calibration(tmp_path / "v2.json")
    (tmp_path / "skew.json").write_text(path.read_text().replace("1.0,", "1.5,", 1))
    with pytest.raises(CalibrationError, match="rigid"):
        load_calibration(tmp_path / "skew.json")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "none.json")
