"""RGB-D cameras: the interface the runner reads, and Intel RealSense through ``pyrealsense2``.

A camera rig returns ``{name: CameraFrame}`` with depth in metres aligned to the colour image, the colour stream's
factory intrinsics, and camera-to-base extrinsics from the calibration file (``bridgevla.serving.calibration``):
fixed cameras carry their camera-to-base transform, a wrist camera its camera-to-end-effector transform, composed
with the arm's pose at capture time.

pyrealsense2 facts used here (IntelRealSense/librealsense, wrappers/python/examples/align-depth2color.py @ 13f3db2
and box_dimensioner_multicam/realsense_device_manager.py @ 039326c): ``pipeline()``, ``config().enable_device(
serial)``, ``config.enable_stream(stream.depth, w, h, format.z16, fps)`` and ``(stream.color, w, h, format.rgb8,
fps)``, ``pipeline.start(config)`` → profile, ``profile.get_device().first_depth_sensor().get_depth_scale()``
(metres per z16 unit), ``align(stream.color).process(frames)``, ``get_depth_frame() / get_color_frame()``,
``np.asanyarray(frame.get_data())``, ``profile.get_stream(stream.color).as_video_stream_profile().get_intrinsics()``
(``fx, fy, ppx, ppy, width, height, model, coeffs``), ``pipeline.wait_for_frames(timeout_ms)``, ``pipeline.stop()``.
Lens distortion is ignored: D400 colour streams report (near) zero coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from benchmarks.protocol import CameraFrame
from rendering import quaternion_to_matrix


class Cameras(Protocol):
    names: list[str]

    def read(self, ee_pose: np.ndarray | None = None) -> dict[str, CameraFrame]: ...

    def close(self) -> None: ...


class CameraError(RuntimeError):
    """A camera returned no frame in time, or a frame that cannot be used."""


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """(7,) xyz + quaternion xyzw → 4x4 homogeneous transform."""
    pose = np.asarray(pose, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(torch.from_numpy(pose[3:7])).numpy()
    m[:3, 3] = pose[:3]
    return m


def import_realsense() -> Any:
    try:
        import pyrealsense2
    except ImportError as e:
        raise ImportError("RealSense cameras need pyrealsense2: pip install 'bridgevla[real]' (docs/robot.md)") from e
    return pyrealsense2


@dataclass
class RealSenseConfig:
    name: str = "front"  # the camera name the policy knows
    serial: str = ""  # the device's serial number (rs-enumerate-devices, or the label)
    width: int = 640
    height: int = 480
    fps: int = 30
    warmup_frames: int = 30  # frames dropped at start while auto-exposure settles
    timeout_ms: int = 5000

    def __post_init__(self) -> None:
        if not self.serial:
            raise ValueError(f"cameras: {self.name!r} needs its serial number")
        if self.width < 1 or self.height < 1 or self.fps < 1 or self.timeout_ms < 1 or self.warmup_frames < 0:
            raise ValueError(f"cameras: {self.name!r} has a bad width/height/fps/timeout/warmup")


@dataclass
class Mount:
    """Where a camera sits: ``fixed`` (``transform`` = camera-to-base) or ``wrist`` (camera-to-end-effector)."""

    kind: str
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))

    def extrinsics(self, ee_pose: np.ndarray | None) -> np.ndarray:
        if self.kind == "fixed":
            return self.transform
        if ee_pose is None:
            raise CameraError("a wrist camera needs the arm's pose at capture time")
        return pose_matrix(ee_pose) @ self.transform


class _RealSense:
    def __init__(self, rs: Any, cfg: RealSenseConfig) -> None:
        self.rs, self.cfg = rs, cfg
        self.pipeline = rs.pipeline()
        config = rs.config()
        config.enable_device(cfg.serial)
        config.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
        config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        profile = self.pipeline.start(config)
        self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        # Depth is re-projected into the colour camera, so one pinhole (the colour stream's) describes both.
        self.align = rs.align(rs.stream.color)
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self.intrinsics = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
        for _ in range(cfg.warmup_frames):
            self.pipeline.wait_for_frames(cfg.timeout_ms)

    def grab(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            frames = self.pipeline.wait_for_frames(self.cfg.timeout_ms)
        except RuntimeError as e:  # pyrealsense2 raises RuntimeError("Frame didn't arrive within ...")
            raise CameraError(f"camera {self.cfg.name!r} ({self.cfg.serial}): {e}") from e
        aligned = self.align.process(frames)
        depth, color = aligned.get_depth_frame(), aligned.get_color_frame()
        if not depth or not color:
            raise CameraError(f"camera {self.cfg.name!r} ({self.cfg.serial}) returned an incomplete frame set")
        z16 = np.asanyarray(depth.get_data())
        rgb = np.array(np.asanyarray(color.get_data()), dtype=np.uint8)  # a copy: the frame's buffer is recycled
        if rgb.shape != (self.cfg.height, self.cfg.width, 3) or z16.shape != rgb.shape[:2]:
            raise CameraError(f"camera {self.cfg.name!r}: got rgb {rgb.shape}, depth {z16.shape}")
        return rgb, (z16.astype(np.float32) * np.float32(self.depth_scale))

    def close(self) -> None:
        self.pipeline.stop()


class RealSenseCameras:
    """Several RealSense devices by serial number, each with its calibrated mount."""

    def __init__(self, configs: list[RealSenseConfig], mounts: dict[str, Mount], rs: Any = None) -> None:
        names = [c.name for c in configs]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"cameras: names must be distinct and non-empty, got {names}")
        missing = [n for n in names if n not in mounts]
        if missing:
            raise ValueError(f"cameras {missing} have no calibration (run `bridgevla robot calibrate`)")
        self.rs = rs or import_realsense()
        self.names = names
        self.mounts = mounts
        self._devices: dict[str, _RealSense] = {}
        try:
            for c in configs:
                self._devices[c.name] = _RealSense(self.rs, c)
        except Exception:
            self.close()
            raise

    def intrinsics(self, name: str) -> np.ndarray:
        return self._devices[name].intrinsics.copy()

    def read(self, ee_pose: np.ndarray | None = None) -> dict[str, CameraFrame]:
        out = {}
        for name, dev in self._devices.items():
            rgb, depth = dev.grab()
            out[name] = CameraFrame(rgb, depth, dev.intrinsics.copy(), self.mounts[name].extrinsics(ee_pose).copy())
        return out

    def close(self) -> None:
        for dev in self._devices.values():
            dev.close()
        self._devices.clear()
