"""A fake ``pyrealsense2`` for tests: the names and call shapes of the real wrapper, no device. Read from
IntelRealSense/librealsense: wrappers/python/examples/align-depth2color.py @ 13f3db2d7576b06162230a3af92b502aa5a94736
and box_dimensioner_multicam/realsense_device_manager.py @ 039326c13ca7241b24baac3382a59b4a2cd1ba02 (pipeline,
config.enable_device / enable_stream(stream, width, height, format, framerate), pipeline.start → pipeline_profile,
get_device().first_depth_sensor().get_depth_scale(), align(stream.color).process(frames), get_depth_frame /
get_color_frame, get_data, get_stream(...).as_video_stream_profile().get_intrinsics() with fx, fy, ppx, ppy, width,
height, model, coeffs; wait_for_frames(timeout_ms) raising RuntimeError when nothing arrives).

Devices are registered by serial number in :data:`DEVICES` as a callable returning ``(rgb uint8 (H, W, 3), depth
metres (H, W) float, intrinsics 3x3)`` for the scene at that moment. Depth is delivered as z16 with the D400 depth
scale (1 mm) in the depth sensor's own frame — shifted by :data:`DEPTH_SHIFT` pixels — and lands on the colour pixels
only after ``align(stream.color).process``, so code that forgets to align reads wrong depths. :data:`CALLS` logs
every call that would reach a device.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import numpy as np

DEVICES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
CALLS: list[tuple[str, dict[str, Any]]] = []
DEPTH_SCALE = 0.001
DEPTH_SHIFT = 3  # pixels between the (unaligned) depth imager and the colour imager


class stream(enum.Enum):  # noqa: N801 - the real names are lower case
    depth = 1
    color = 2
    infrared = 3


class format(enum.Enum):  # noqa: N801, A001
    z16 = 1
    rgb8 = 2
    bgr8 = 3
    y8 = 4


class camera_info(enum.Enum):  # noqa: N801
    name = 0
    serial_number = 1


class intrinsics:  # noqa: N801
    def __init__(self, k: np.ndarray, width: int, height: int) -> None:
        self.fx, self.fy, self.ppx, self.ppy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
        self.width, self.height = width, height
        self.model = "inverse_brown_conrady"
        self.coeffs = [0.0] * 5


class config:  # noqa: N801
    def __init__(self) -> None:
        self.serial: str | None = None
        self.streams: dict[stream, tuple[int, int, format, int]] = {}

    def enable_device(self, serial: str) -> None:
        CALLS.append(("enable_device", {"serial": serial}))
        self.serial = serial

    def enable_stream(self, stream_type: stream, width: int, height: int, format: format, framerate: int) -> None:
        CALLS.append(("enable_stream", {"stream": stream_type, "width": width, "height": height, "format": format,
                                        "framerate": framerate}))
        self.streams[stream_type] = (width, height, format, framerate)


class _DepthSensor:
    def get_depth_scale(self) -> float:
        return DEPTH_SCALE


class _Device:
    def __init__(self, serial: str) -> None:
        self.serial = serial

    def first_depth_sensor(self) -> _DepthSensor:
        return _DepthSensor()

    def get_info(self, info: camera_info) -> str:
        return self.serial if info is camera_info.serial_number else "Intel RealSense D435 (fake)"


class _VideoProfile:
    def __init__(self, intr: intrinsics) -> None:
        self._intr = intr

    def as_video_stream_profile(self) -> _VideoProfile:
        return self

    def get_intrinsics(self) -> intrinsics:
        return self._intr


class pipeline_profile:  # noqa: N801
    def __init__(self, serial: str, cfg: config) -> None:
        self.serial, self.cfg = serial, cfg

    def get_device(self) -> _Device:
        return _Device(self.serial)

    def get_stream(self, stream_type: stream, index: int = -1) -> _VideoProfile:
        w, h, _, _ = self.cfg.streams[stream_type]
        return _VideoProfile(intrinsics(DEVICES[self.serial]()[2], w, h))


class _Frame:
    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def get_data(self) -> np.ndarray:
        return self._data

    def get_width(self) -> int:
        return self._data.shape[1]

    def get_height(self) -> int:
        return self._data.shape[0]

    def __bool__(self) -> bool:
        return self._data is not None


class composite_frame:  # noqa: N801
    def __init__(self, color: np.ndarray, depth_m: np.ndarray, aligned: bool) -> None:
        self._color, self._depth_m, self.aligned = color, depth_m, aligned

    def get_color_frame(self) -> _Frame:
        return _Frame(self._color)

    def get_depth_frame(self) -> _Frame:
        d = self._depth_m if self.aligned else np.roll(self._depth_m, DEPTH_SHIFT, axis=1)
        z16 = np.clip(np.rint(np.nan_to_num(d, nan=0.0) / DEPTH_SCALE), 0, 65535).astype(np.uint16)
        return _Frame(z16)


class align:  # noqa: N801
    def __init__(self, align_to: stream) -> None:
        CALLS.append(("align", {"align_to": align_to}))
        self.align_to = align_to

    def process(self, frames: composite_frame) -> composite_frame:
        return composite_frame(frames._color, frames._depth_m, self.align_to is stream.color)


class pipeline:  # noqa: N801
    def __init__(self, ctx: Any = None) -> None:
        self._cfg: config | None = None

    def start(self, cfg: config) -> pipeline_profile:
        if cfg.serial not in DEVICES:
            raise RuntimeError(f"No device connected with serial {cfg.serial}")
        CALLS.append(("start", {"serial": cfg.serial}))
        self._cfg = cfg
        return pipeline_profile(cfg.serial, cfg)

    def wait_for_frames(self, timeout_ms: int = 5000) -> composite_frame:
        if self._cfg is None:
            raise RuntimeError("pipeline not started")
        rgb, depth, _ = DEVICES[self._cfg.serial]()
        w, h, fmt, _ = self._cfg.streams[stream.color]
        if rgb.shape != (h, w, 3):
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
        if fmt is format.bgr8:
            rgb = rgb[..., ::-1]
        return composite_frame(np.ascontiguousarray(rgb), depth, aligned=False)

    def stop(self) -> None:
        CALLS.append(("stop", {"serial": self._cfg.serial if self._cfg else None}))
        self._cfg = None


class context:  # noqa: N801
    @property
    def devices(self) -> list[_Device]:
        return [_Device(s) for s in DEVICES]

    def query_devices(self) -> list[_Device]:
        return self.devices
