"""Hand-eye calibration with a ChArUco board (OpenCV), and the camera calibration file training and deployment read.

Two mounts:
- ``fixed`` (eye-to-hand): the board is held by the gripper, the camera is still. Solved for camera-to-base.
- ``wrist`` (eye-in-hand): the camera rides on the hand, the board lies still on the table. Solved for
  camera-to-end-effector (the runner composes it with the arm's pose at capture time).

Per view: the arm's end-effector pose (base frame) and the board's pose in the camera (ChArUco corners + PnP with the
colour intrinsics). The solvers are OpenCV's ``calibrateHandEye`` (Tsai, Park, Horaud, Andreff, Daniilidis; for a
fixed camera the robot poses are inverted) and ``calibrateRobotWorldHandEye`` (Shah, Li). The check reports how well
the solution explains the views: the spread of the other constant transform (board-to-hand for a fixed camera,
board-to-base for a wrist camera) in mm and degrees, and the board corners re-projected through the whole chain
against the detected corners, in pixels.

The file (JSON, or YAML by extension) is versioned::

    {"format": "bridgevla-calibration", "version": 1,
     "cameras": {name: {"mount": "fixed" | "wrist", "transform": 4x4 (camera-to-base | camera-to-end-effector),
                        "serial", "intrinsics": 3x3, "method", "views", "residual_mm", "residual_deg",
                        "reprojection_px", "created"}}}
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.protocol import Keypose
from bridgevla.serving.cameras import Mount, pose_matrix

log = logging.getLogger("bridgevla.calibration")

FORMAT = "bridgevla-calibration"
VERSION = 1
HAND_EYE_METHODS = ("tsai", "park", "horaud", "andreff", "daniilidis")
ROBOT_WORLD_METHODS = ("shah", "li")


class CalibrationError(ValueError):
    """Too few usable views, a failed solve, or a calibration file that cannot be used."""


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise ImportError("calibration needs OpenCV: pip install 'bridgevla[real]' (opencv-python-headless)") from e
    return cv2


@dataclass
class BoardConfig:
    squares_x: int = 5
    squares_y: int = 7
    square_length: float = 0.04  # metres, as printed (measure it)
    marker_length: float = 0.03
    dictionary: str = "DICT_5X5_100"
    min_corners: int = 6  # fewer detected ChArUco corners: the view is skipped

    def __post_init__(self) -> None:
        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError("board.squares_x and squares_y must be >= 2")
        if not 0 < self.marker_length < self.square_length:
            raise ValueError("board.marker_length must be in (0, square_length)")
        if self.min_corners < 4:
            raise ValueError("board.min_corners must be >= 4 (PnP)")

    def build(self) -> Any:
        cv2 = import_cv2()
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"board.dictionary {self.dictionary!r} is not an OpenCV ArUco dictionary")
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_length, self.marker_length, d)


@dataclass
class BoardView:
    """One detected view: the board's pose in the camera and the matched points (for the reprojection check)."""

    camera_T_board: np.ndarray  # 4x4
    object_points: np.ndarray  # (N, 3) board frame
    image_points: np.ndarray  # (N, 2) pixels
    pnp_rms_px: float


def _to_matrix(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    cv2 = import_cv2()
    m = np.eye(4)
    m[:3, :3] = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]
    m[:3, 3] = np.asarray(tvec, np.float64).reshape(3)
    return m


def _project(points: np.ndarray, camera_T_board: np.ndarray, k: np.ndarray) -> np.ndarray:
    cv2 = import_cv2()
    rvec = cv2.Rodrigues(camera_T_board[:3, :3])[0]
    out, _ = cv2.projectPoints(points.astype(np.float64), rvec, camera_T_board[:3, 3].astype(np.float64),
                               k.astype(np.float64), np.zeros(5))
    return out.reshape(-1, 2)


def detect_board(image: np.ndarray, intrinsics: np.ndarray, board: BoardConfig) -> BoardView | None:
    """The board's pose in an RGB (or grey) image, or None when fewer than ``min_corners`` corners are found."""
    cv2 = import_cv2()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    b = board.build()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(b).detectBoard(grey)
    if ids is None or len(ids) < board.min_corners:
        return None
    obj, img = b.matchImagePoints(corners, ids)
    obj, img = obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64)
    k = np.asarray(intrinsics, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, np.zeros(5), flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, np.zeros(5), rvec, tvec)
    t = _to_matrix(rvec, tvec)
    rms = float(np.sqrt(np.mean(np.sum((_project(obj, t, k) - img) ** 2, axis=1))))
    return BoardView(t, obj, img, rms)


def synthetic_view(board: BoardConfig, intrinsics: np.ndarray, camera_T_board: np.ndarray, size: tuple[int, int],
                   pixels_per_square: int = 80) -> np.ndarray:
    """An RGB image (H, W, 3) of the board at a known pose through a pinhole camera: OpenCV's board picture mapped by
    the plane's homography. Tests and setup checks use it; real views come from the cameras."""
    cv2 = import_cv2()
    w_px, h_px = board.squares_x * pixels_per_square, board.squares_y * pixels_per_square
    texture = board.build().generateImage((w_px, h_px), marginSize=0, borderBits=1)
    pad = pixels_per_square // 2  # a white border, as on a printed board
    texture = cv2.copyMakeBorder(texture, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    s = board.square_length / pixels_per_square  # metres per texture pixel
    # Texture pixel (u, v) covers board [u s, (u + 1) s] before the border: its centre maps to the board point
    # ((u + 0.5 - pad) s, (v + 0.5 - pad) s, 0), then to the camera pixel through H = K [r1 r2 t] A.
    a = np.array([[s, 0.0, (0.5 - pad) * s], [0.0, s, (0.5 - pad) * s], [0.0, 0.0, 1.0]])
    rt = np.column_stack([camera_T_board[:3, 0], camera_T_board[:3, 1], camera_T_board[:3, 3]])
    h = np.asarray(intrinsics, np.float64) @ rt @ a
    grey = cv2.warpPerspective(texture, h, (size[1], size[0]), flags=cv2.INTER_AREA, borderValue=110)
    return np.repeat(grey[..., None], 3, axis=2)


def _rt(ms: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [m[:3, :3].copy() for m in ms], [m[:3, 3:4].copy() for m in ms]


def _from_rt(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, np.asarray(t).reshape(3)
    return m


def solve_hand_eye(base_T_ee: list[np.ndarray], camera_T_board: list[np.ndarray], mount: str,
                   method: str = "park") -> np.ndarray:
    """Camera-to-base (``fixed``) or camera-to-end-effector (``wrist``) from paired views (4x4 matrices)."""
    cv2 = import_cv2()
    if mount not in ("fixed", "wrist"):
        raise ValueError(f"mount must be 'fixed' or 'wrist', got {mount!r}")
    if len(base_T_ee) != len(camera_T_board) or len(base_T_ee) < 3:
        raise CalibrationError(f"hand-eye needs >= 3 paired views, got {len(base_T_ee)} and {len(camera_T_board)}")
    inv = [np.linalg.inv(m) for m in base_T_ee]
    if method in HAND_EYE_METHODS:
        # calibrateHandEye solves A_i X B_i = const for A_i = gripper-to-base and B_i = target-to-camera. With the
        # robot poses inverted (base seen from the gripper), the same equation yields camera-to-base.
        robot = base_T_ee if mount == "wrist" else inv
        r_a, t_a = _rt(robot)
        r_b, t_b = _rt(camera_T_board)
        flag = getattr(cv2, f"CALIB_HAND_EYE_{method.upper()}")
        r, t = cv2.calibrateHandEye(r_a, t_a, r_b, t_b, method=flag)
        return _from_rt(r, t)
    if method in ROBOT_WORLD_METHODS:
        # calibrateRobotWorldHandEye: camera_T_world_i = camera_T_gripper · gripper_T_base_i · base_T_world. For a
        # fixed camera the roles swap: the board is the "world" riding on the hand, the base is the "gripper".
        robot = inv if mount == "wrist" else base_T_ee
        r_w, t_w = _rt(camera_T_board)
        r_b, t_b = _rt(robot)
        flag = getattr(cv2, f"CALIB_ROBOT_WORLD_HAND_EYE_{method.upper()}")
        _, _, r, t = cv2.calibrateRobotWorldHandEye(r_w, t_w, r_b, t_b, method=flag)
        return np.linalg.inv(_from_rt(r, t))
    raise ValueError(f"method must be one of {HAND_EYE_METHODS + ROBOT_WORLD_METHODS}, got {method!r}")


def _mean_transform(ms: list[np.ndarray]) -> np.ndarray:
    u, _, vt = np.linalg.svd(sum(m[:3, :3] for m in ms))
    r = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt  # chordal mean rotation
    return _from_rt(r, np.mean([m[:3, 3] for m in ms], axis=0))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def check_solution(transform: np.ndarray, base_T_ee: list[np.ndarray], views: list[BoardView],
                   intrinsics: np.ndarray, mount: str) -> dict[str, float]:
    """How well ``transform`` explains the views: ``residual_mm`` / ``residual_deg`` (RMS spread of the other
    constant transform) and ``reprojection_px`` (board corners through the whole chain vs the detected corners)."""
    x = transform
    if mount == "fixed":  # ee_T_board_i = ee_T_base_i · base_T_camera · camera_T_board_i
        others = [np.linalg.inv(a) @ x @ v.camera_T_board for a, v in zip(base_T_ee, views)]
    else:  # base_T_board_i = base_T_ee_i · ee_T_camera · camera_T_board_i
        others = [a @ x @ v.camera_T_board for a, v in zip(base_T_ee, views)]
    mean = _mean_transform(others)
    mm = float(np.sqrt(np.mean([np.sum((o[:3, 3] - mean[:3, 3]) ** 2) for o in others]))) * 1000
    deg = float(np.sqrt(np.mean([_angle_deg(o, mean) ** 2 for o in others])))
    errs = []
    for a, v in zip(base_T_ee, views):
        if mount == "fixed":
            predicted = np.linalg.inv(x) @ a @ mean
        else:
            predicted = np.linalg.inv(x) @ np.linalg.inv(a) @ mean
        errs.append(np.sum((_project(v.object_points, predicted, intrinsics) - v.image_points) ** 2, axis=1))
    px = float(np.sqrt(np.mean(np.concatenate(errs))))
    return {"residual_mm": mm, "residual_deg": deg, "reprojection_px": px}


# ---------------------------------------------------------------------------------------------- the file
@dataclass
class CameraCalibration:
    mount: str
    transform: np.ndarray  # camera-to-base (fixed) or camera-to-end-effector (wrist)
    serial: str = ""
    intrinsics: list[list[float]] | None = None
    method: str = ""
    views: int = 0
    residual_mm: float | None = None
    residual_deg: float | None = None
    reprojection_px: float | None = None
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("mount", "serial", "intrinsics", "method", "views", "residual_mm",
                                           "residual_deg", "reprojection_px", "created")}
        d["transform"] = np.asarray(self.transform, float).tolist()
        return d

    def mount_object(self) -> Mount:
        return Mount(self.mount, np.asarray(self.transform, float))


def _check_transform(m: Any, where: str) -> np.ndarray:
    try:
        a = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CalibrationError(f"{where}: transform is not a 4x4 matrix of numbers") from e
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise CalibrationError(f"{where}: transform must be a finite 4x4 matrix, got shape {a.shape}")
    r = a[:3, :3]
    if np.abs(a[3] - [0, 0, 0, 1]).max() > 1e-9 or np.abs(r.T @ r - np.eye(3)).max() > 1e-6 or np.linalg.det(r) < 0:
        raise CalibrationError(f"{where}: transform is not a rigid transform (rotation + translation)")
    return a


def load_calibration(path: str | Path) -> dict[str, CameraCalibration]:
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist (run `bridgevla robot calibrate`)")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise CalibrationError(f"calibration file {path} is not valid {path.suffix[1:] or 'JSON'}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"calibration file {path} is not a {FORMAT} file")
    if data.get("version") != VERSION:
        raise CalibrationError(f"calibration file {path} has version {data.get('version')}; this reader reads "
                               f"{VERSION}")
    cams = data.get("cameras")
    if not isinstance(cams, dict):
        raise CalibrationError(f"calibration file {path} has no 'cameras' map")
    out = {}
    for name, c in cams.items():
        where = f"{path}: cameras.{name}"
        if not isinstance(c, dict) or c.get("mount") not in ("fixed", "wrist"):
            raise CalibrationError(f"{where}: mount must be 'fixed' or 'wrist'")
        known = {"mount", "transform", "serial", "intrinsics", "method", "views", "residual_mm", "residual_deg",
                 "reprojection_px", "created"}
        unknown = sorted(set(c) - known)
        if unknown:
            raise CalibrationError(f"{where}: unknown keys {unknown}")
        out[name] = CameraCalibration(**{**c, "transform": _check_transform(c.get("transform"), where)})
    return out


def save_calibration(path: str | Path, cameras: dict[str, CameraCalibration]) -> Path:
    """Write (or update: other cameras already in the file are kept) the calibration file atomically."""
    path = Path(path)
    existing = load_calibration(path) if path.is_file() else {}
    existing.update(cameras)
    data = {"format": FORMAT, "version": VERSION, "cameras": {n: c.to_dict() for n, c in sorted(existing.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml")
                   else json.dumps(data, indent=1))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------- the procedure
@dataclass
class CalibrateConfig:
    camera: str = ""  # which camera of robot.cameras to calibrate
    mount: str = "fixed"  # fixed (board in the gripper) or wrist (board on the table)
    board: BoardConfig = field(default_factory=BoardConfig)
    # End-effector poses to visit (x, y, z, qx, qy, qz, qw in the base frame), each through the safety layer.
    # Empty: hand-guided — move the arm yourself and type `k` for every view, `d` when done.
    poses: list[list[float]] = field(default_factory=list)
    method: str = "park"
    min_views: int = 8
    settle_seconds: float = 0.5  # wait after each motion before the picture (vibrations)
    max_reprojection_px: float = 2.0  # the check fails above this (the file is still written, with a warning)

    def __post_init__(self) -> None:
        if self.mount not in ("fixed", "wrist"):
            raise ValueError(f"calibrate.mount must be 'fixed' or 'wrist', got {self.mount!r}")
        if self.method not in HAND_EYE_METHODS + ROBOT_WORLD_METHODS:
            raise ValueError(f"calibrate.method must be one of {HAND_EYE_METHODS + ROBOT_WORLD_METHODS}")
        bad = [p for p in self.poses if len(p) != 7]
        if bad:
            raise ValueError(f"calibrate.poses must be lists of 7 numbers (xyz + quaternion xyzw), got {bad[:2]}")
        if self.min_views < 3:
            raise ValueError("calibrate.min_views must be >= 3")


@dataclass
class CalibrationResult:
    calibration: CameraCalibration
    check: dict[str, float]
    skipped: int  # views where the board was not found or the motion was refused


def collect_views(arm: Any, cameras: Any, name: str, intrinsics: np.ndarray, cfg: CalibrateConfig,
                  operator: Any) -> tuple[list[np.ndarray], list[BoardView], int]:
    """Visit the poses (or wait for the operator's `k`s) and detect the board at each; ``arm`` is a SafeArm."""
    base_T_ee: list[np.ndarray] = []
    views: list[BoardView] = []
    skipped = 0

    def capture() -> None:
        nonlocal skipped
        state = arm.state()
        frames = cameras.read(state.pose)
        view = detect_board(frames[name].rgb, intrinsics, cfg.board)
        if view is None:
            skipped += 1
            operator.show(f"view {len(views) + skipped}: board not found, skipped")
            return
        base_T_ee.append(pose_matrix(state.pose))
        views.append(view)
        operator.show(f"view {len(views)}: {len(view.object_points)} corners, PnP {view.pnp_rms_px:.2f} px")

    if cfg.poses:
        for p in cfg.poses:
            grip = bool(arm.state().gripper_open)  # keep holding the board (fixed mount)
            outcome = arm.execute(Keypose(np.asarray(p[:3], float), np.asarray(p[3:], float), grip, True))
            if outcome.status == "stopped":
                break
            if outcome.status != "executed" or not outcome.result.ok:
                skipped += 1
                operator.show(f"pose {p} not reached ({outcome.status}: {outcome.reasons or outcome.result.error})")
                continue
            time.sleep(cfg.settle_seconds)
            capture()
    else:
        operator.show("hand-guide the arm to a view and type k (Enter) to capture it; d when done, q to stop")
        while not operator.stop_requested():
            key = operator.poll_key()
            if key == "k":
                capture()
            elif key == "d":
                break
            else:
                time.sleep(0.05)
    return base_T_ee, views, skipped


def calibrate(arm: Any, cameras: Any, name: str, intrinsics: np.ndarray, cfg: CalibrateConfig, operator: Any,
              serial: str = "") -> CalibrationResult:
    base_T_ee, views, skipped = collect_views(arm, cameras, name, intrinsics, cfg, operator)
    if len(views) < cfg.min_views:
        raise CalibrationError(f"only {len(views)} usable views of the board (min_views = {cfg.min_views}); "
                               f"{skipped} skipped")
    x = solve_hand_eye(base_T_ee, [v.camera_T_board for v in views], cfg.mount, cfg.method)
    check = check_solution(x, base_T_ee, views, intrinsics, cfg.mount)
    if check["reprojection_px"] > cfg.max_reprojection_px:
        log.warning("calibration of %s re-projects with %.2f px RMS (> %.2f): check the board size and the views",
                    name, check["reprojection_px"], cfg.max_reprojection_px)
    calib = CameraCalibration(cfg.mount, x, serial, np.asarray(intrinsics, float).tolist(), cfg.method, len(views),
                              created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **check)
    return CalibrationResult(calib, check, skipped)
