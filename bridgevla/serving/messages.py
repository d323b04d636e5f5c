"""Keypose requests and replies: the dicts that travel inside the wire format, and their validation.

A request (one robot, one decision point)::

    {"instruction": str,
     "cameras": {name: {"rgb": (H, W, 3) uint8, "depth": (H, W) float32 metres (0 = no return),
                        "intrinsics": (3, 3) float, "extrinsics": (4, 4) float camera-to-base}},
     "gripper_pose": (7,) float xyz + quaternion xyzw,  "gripper_open": float in [0, 1] or bool,
     "joint_positions": (J,) float            (optional)
     "history": (H, 9) float                  (optional: the keyposes executed so far this episode, oldest first,
                                               as RLBench action vectors; a memory policy draws them into its input)
     "return_heatmaps": bool                  (optional, default false)
     "request_id": str or int                 (optional, echoed)}

A reply: ``{"keypose": {"position", "quaternion", "gripper_open", "ignore_collisions"}, "action": (9,) float64
(RLBench's vector), "num_points": int, "server_timing": {...}}``, plus ``"heatmaps"`` when asked and the echoed
``request_id``. Validation is strict and each problem is a :class:`RequestError` whose message names the field, so a
robot integrator sees exactly what to fix; the server keeps serving.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.protocol import CameraFrame, Keypose, Observation

REQUEST_KEYS = ("instruction", "cameras", "gripper_pose", "gripper_open", "joint_positions", "history",
                "return_heatmaps", "request_id")
CAMERA_KEYS = ("rgb", "depth", "intrinsics", "extrinsics")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class RequestError(ValueError):
    """A request that cannot be served; the message says which field is wrong and what was expected."""


@dataclass(frozen=True)
class RequestLimits:
    """What the server accepts (sent to clients in the metadata frame)."""

    cameras: tuple[str, ...] = ()  # required camera names; empty = any names (up to max_cameras)
    max_cameras: int = 8
    max_pixels: int = 1920 * 1080  # per camera
    max_instruction_chars: int = 512
    max_joints: int = 16
    max_history: int = 256  # keyposes in a request's history

    def to_dict(self) -> dict[str, Any]:
        return {"cameras": list(self.cameras), "max_cameras": self.max_cameras, "max_pixels": self.max_pixels,
                "max_instruction_chars": self.max_instruction_chars, "max_joints": self.max_joints,
                "max_history": self.max_history}


@dataclass
class KeyposeRequest:
    observation: Observation
    return_heatmaps: bool = False
    request_id: Any = None
    history: list[Keypose] = field(default_factory=list)  # executed this episode, oldest first
    extra: dict[str, Any] = field(default_factory=dict)


def _array(value: Any, name: str, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise RequestError(f"{name} must be a numpy array (openpi's msgpack array map), got {type(value).__name__}")
    if value.dtype.kind not in kinds:
        raise RequestError(f"{name} has dtype {value.dtype}; expected {'a float' if kinds == 'f' else kinds} dtype")
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise RequestError(f"{name} has shape {tuple(value.shape)}; expected {want}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise RequestError(f"{name} contains NaN or infinite values")
    return value


def _rigid(m: np.ndarray, name: str) -> None:
    if np.abs(m[3] - np.array([0.0, 0.0, 0.0, 1.0])).max() > 1e-6:
        raise RequestError(f"{name} must be a homogeneous transform with last row [0, 0, 0, 1], got {m[3].tolist()}")
    r = m[:3, :3].astype(np.float64)
    if np.abs(r.T @ r - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
        raise RequestError(f"{name} must hold a rotation (orthonormal, det +1) in its upper-left 3x3 block")


def _camera(name: str, cam: Any, limits: RequestLimits) -> CameraFrame:
    where = f"cameras[{name!r}]"
    if not isinstance(cam, dict):
        raise RequestError(f"{where} must be a map with keys {list(CAMERA_KEYS)}, got {type(cam).__name__}")
    unknown = sorted(str(k) for k in cam if k not in CAMERA_KEYS)
    missing = [k for k in CAMERA_KEYS if k not in cam]
    if unknown or missing:
        raise RequestError(f"{where}: missing keys {missing}, unknown keys {unknown}; expected {list(CAMERA_KEYS)}")
    rgb = cam["rgb"]
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {tuple(rgb.shape)}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise RequestError(f"{where}.rgb must be a (H, W, 3) uint8 array, got {got}")
    h, w = rgb.shape[:2]
    if h * w == 0 or h * w > limits.max_pixels:
        raise RequestError(f"{where}.rgb is {h}x{w} = {h * w} pixels; the server accepts 1..{limits.max_pixels}")
    depth = cam["depth"]
    if not isinstance(depth, np.ndarray) or depth.dtype != np.float32:
        got = depth.dtype if isinstance(depth, np.ndarray) else type(depth).__name__
        raise RequestError(f"{where}.depth must be a float32 array of metres (0 = no return), got {got}")
    _array(depth, f"{where}.depth", (h, w), "f")
    if (depth < 0).any():
        raise RequestError(f"{where}.depth has negative values; send metres >= 0 (0 = no return)")
    k = _array(cam["intrinsics"], f"{where}.intrinsics", (3, 3), "f").astype(np.float64)
    if k[0, 0] <= 0 or k[1, 1] <= 0 or np.abs(k[2] - np.array([0.0, 0.0, 1.0])).max() > 1e-9:
        raise RequestError(f"{where}.intrinsics must be a pinhole matrix with positive focal lengths and last row "
                           f"[0, 0, 1], got {k.tolist()}")
    ext = _array(cam["extrinsics"], f"{where}.extrinsics", (4, 4), "f").astype(np.float64)
    _rigid(ext, f"{where}.extrinsics")
    return CameraFrame(rgb, depth, k, ext)


def parse_request(msg: Any, limits: RequestLimits) -> KeyposeRequest:
    """A decoded message → :class:`KeyposeRequest`, or :class:`RequestError` naming the first problem found."""
    if not isinstance(msg, dict):
        raise RequestError(f"a request must be a map, got {type(msg).__name__}")
    unknown = sorted(str(k) for k in msg if k not in REQUEST_KEYS)
    if unknown:
        raise RequestError(f"unknown request keys {unknown}; allowed: {list(REQUEST_KEYS)}")
    for key in ("instruction", "cameras", "gripper_pose", "gripper_open"):
        if key not in msg:
            raise RequestError(f"request lacks {key!r}")
    text = msg["instruction"]
    if not isinstance(text, str) or not text.strip():
        raise RequestError("instruction must be a non-empty string")
    if len(text) > limits.max_instruction_chars:
        raise RequestError(f"instruction has {len(text)} characters; the limit is {limits.max_instruction_chars}")
    cams = msg["cameras"]
    if not isinstance(cams, dict) or not cams:
        raise RequestError("cameras must be a non-empty map of camera name -> {rgb, depth, intrinsics, extrinsics}")
    bad = [str(n) for n in cams if not isinstance(n, str) or not _NAME.match(n)]
    if bad:
        raise RequestError(f"camera names must be 1-64 characters of [A-Za-z0-9_.-], got {bad}")
    if limits.cameras:
        missing = [n for n in limits.cameras if n not in cams]
        extra = sorted(n for n in cams if n not in limits.cameras)
        if missing or extra:
            raise RequestError(f"cameras: the policy needs exactly {list(limits.cameras)}; missing {missing}, "
                               f"unknown {extra}")
    elif len(cams) > limits.max_cameras:
        raise RequestError(f"cameras: {len(cams)} cameras sent; the limit is {limits.max_cameras}")
    frames = {n: _camera(n, cams[n], limits) for n in sorted(cams)}
    pose = _array(msg["gripper_pose"], "gripper_pose", (7,), "f").astype(np.float64)
    if np.linalg.norm(pose[3:]) < 1e-6:
        raise RequestError("gripper_pose quaternion (xyzw, last four values) is zero")
    grip = msg["gripper_open"]
    if isinstance(grip, np.ndarray) and grip.shape == ():
        grip = grip.item()
    if isinstance(grip, np.generic):
        grip = grip.item()
    if not isinstance(grip, (bool, int, float)) or not math.isfinite(float(grip)) or not 0 <= float(grip) <= 1:
        raise RequestError(f"gripper_open must be a number in [0, 1] or a bool, got {grip!r}")
    joints = msg.get("joint_positions")
    if joints is None:
        joints = np.zeros(0)
    else:
        joints = _array(joints, "joint_positions", (None,), "f").astype(np.float64)
        if joints.shape[0] > limits.max_joints:
            raise RequestError(f"joint_positions has {joints.shape[0]} values; the limit is {limits.max_joints}")
    history = _history(msg.get("history"), limits)
    heat = msg.get("return_heatmaps", False)
    if not isinstance(heat, bool):
        raise RequestError(f"return_heatmaps must be true or false, got {heat!r}")
    rid = msg.get("request_id")
    if rid is not None and not (isinstance(rid, (str, int)) and not isinstance(rid, bool) and len(str(rid)) <= 128):
        raise RequestError("request_id must be a string or an int of at most 128 characters")
    obs = Observation(cameras=frames, gripper_pose=pose, gripper_open=float(grip), joint_positions=joints,
                      joint_velocities=np.zeros_like(joints), instructions=[text])
    return KeyposeRequest(obs, heat, rid, history)


def _history(value: Any, limits: RequestLimits) -> list[Keypose]:
    """The request's ``history`` rows (x, y, z, qx, qy, qz, qw, gripper_open, ignore_collisions) → keyposes."""
    if value is None:
        return []
    rows = _array(value, "history", (None, 9), "f").astype(np.float64)
    if rows.shape[0] > limits.max_history:
        raise RequestError(f"history has {rows.shape[0]} keyposes; the limit is {limits.max_history}")
    if (np.linalg.norm(rows[:, 3:7], axis=1) < 1e-6).any():
        raise RequestError("history: a keypose's quaternion (columns 3-6, xyzw) is zero")
    flags = rows[:, 7:]
    if not np.isin(flags, (0.0, 1.0)).all():
        raise RequestError("history: gripper_open and ignore_collisions (columns 7, 8) must be 0 or 1")
    return [Keypose(r[:3].copy(), r[3:7] / np.linalg.norm(r[3:7]), bool(r[7]), bool(r[8])) for r in rows]


def _wire_depth(depth: np.ndarray) -> np.ndarray:
    """The protocol's "no return" (0, negative or non-finite) as 0: the server accepts finite depth only."""
    d = np.ascontiguousarray(depth, dtype=np.float32)
    bad = ~np.isfinite(d) | (d < 0)
    return np.where(bad, np.float32(0), d) if bad.any() else d


def observation_request(obs: Observation, cameras: list[str] | None = None, return_heatmaps: bool = False,
                        request_id: Any = None, history: list[Keypose] | None = None) -> dict[str, Any]:
    """An :class:`Observation` (and the keyposes executed before it) → a request dict (the inverse of
    :func:`parse_request`; arrays in the request's dtypes so that the server sees bit-identical inputs)."""
    names = list(obs.cameras) if cameras is None else cameras
    msg: dict[str, Any] = {
        "instruction": obs.instructions[0],
        "cameras": {
            n: {"rgb": np.ascontiguousarray(obs.cameras[n].rgb, dtype=np.uint8),
                "depth": _wire_depth(obs.cameras[n].depth),
                "intrinsics": np.asarray(obs.cameras[n].intrinsics, dtype=np.float64),
                "extrinsics": np.asarray(obs.cameras[n].extrinsics, dtype=np.float64)}
            for n in names
        },
        "gripper_pose": np.asarray(obs.gripper_pose, dtype=np.float64),
        "gripper_open": float(obs.gripper_open),
        "joint_positions": np.asarray(obs.joint_positions, dtype=np.float64),
    }
    if history:
        msg["history"] = np.stack([k.to_array() for k in history]).astype(np.float64)
    if return_heatmaps:
        msg["return_heatmaps"] = True
    if request_id is not None:
        msg["request_id"] = request_id
    return msg


def keypose_reply(keypose: Keypose, num_points: int) -> dict[str, Any]:
    return {
        "keypose": {"position": keypose.position.astype(np.float64),
                    "quaternion": keypose.quaternion.astype(np.float64),
                    "gripper_open": bool(keypose.gripper_open), "ignore_collisions": bool(keypose.ignore_collisions)},
        "action": keypose.to_array().astype(np.float64),
        "num_points": int(num_points),
    }


def parse_reply(msg: Any) -> Keypose:
    """A reply dict → :class:`Keypose` (``ValueError`` when it is not a keypose reply)."""
    try:
        k = msg["keypose"]
        return Keypose(np.asarray(k["position"], dtype=np.float64), np.asarray(k["quaternion"], dtype=np.float64),
                       bool(k["gripper_open"]), bool(k["ignore_collisions"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a keypose reply: {e}") from e
