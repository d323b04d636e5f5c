"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/objects/vision_sensor.py``: a pinhole camera that ray-casts the fake world.

``get_intrinsic_matrix`` follows PyRep's formula (negative focal lengths ``-res / (2 tan(angle / 2))``, principal
point ``res / 2``); ``capture_depth`` is the z-depth, in metres or as the fraction between the near and far planes;
``pointcloud_from_depth_and_camera_params`` maps pixel (u, v) at depth d to ``E @ [(u - cx) d / fx, (v - cy) d / fy,
d, 1]``, which is what PyRep's matrix-inverse formulation computes.
"""

from __future__ import annotations

import math

import numpy as np

from pyrep.backend import sim
from pyrep.const import ObjectType, RenderMode
from pyrep.objects.object import Object


class VisionSensor(Object):
    def __init__(self, name_or_handle: str | int, resolution=(128, 128), perspective_angle: float = 60.0,
                 near: float = 0.01, far: float = 4.5) -> None:
        super().__init__(name_or_handle)
        self.resolution = list(resolution)
        self._angle = perspective_angle
        self._near, self._far = near, far
        self._explicit = False
        self._render_mode = RenderMode.OPENGL3

    def _get_requested_type(self) -> ObjectType:
        return ObjectType.VISION_SENSOR

    def handle_explicitly(self) -> None:
        if not self._explicit:
            raise RuntimeError("The explicit_handling is disabled. Call set_explicit_handling(value=1) first.")

    def set_explicit_handling(self, value: int = 1) -> None:
        self._explicit = bool(value)

    def get_explicit_handling(self) -> int:
        return int(self._explicit)

    def get_resolution(self) -> list[int]:
        return list(self.resolution)

    def set_resolution(self, resolution) -> None:
        self.resolution = list(resolution)

    def set_render_mode(self, render_mode: RenderMode) -> None:
        self._render_mode = render_mode

    def get_render_mode(self) -> RenderMode:
        return self._render_mode

    def get_perspective_angle(self) -> float:
        return self._angle

    def set_perspective_angle(self, angle: float) -> None:
        self._angle = angle

    def get_near_clipping_plane(self) -> float:
        return self._near

    def get_far_clipping_plane(self) -> float:
        return self._far

    def get_intrinsic_matrix(self) -> np.ndarray:
        res = np.array(self.get_resolution(), dtype=np.float64)
        pa_x = pa_y = math.radians(self.get_perspective_angle())
        ratio = res[0] / res[1]
        if ratio > 1:
            pa_y = 2 * np.arctan(np.tan(pa_y / 2) / ratio)
        elif ratio < 1:
            pa_x = 2 * np.arctan(np.tan(pa_x / 2) * ratio)
        f = -res / (2 * np.tan(np.array([pa_x, pa_y]) / 2))
        return np.array([[f[0], 0.0, res[0] / 2], [0.0, f[1], res[1] / 2], [0.0, 0.0, 1.0]])

    def _render(self) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.resolution
        return sim.raycast(self.get_matrix(), self.get_intrinsic_matrix(), h, w)

    def capture_rgb(self) -> np.ndarray:
        return self._render()[1]

    def capture_depth(self, in_meters: bool = False) -> np.ndarray:
        depth = np.minimum(self._render()[0], self._far)  # nothing hit: the far plane, as the z-buffer reads
        return depth if in_meters else (depth - self._near) / (self._far - self._near)

    def pointcloud_from_depth(self, depth: np.ndarray) -> np.ndarray:
        return VisionSensor.pointcloud_from_depth_and_camera_params(depth, self.get_matrix(),
                                                                    self.get_intrinsic_matrix())

    @staticmethod
    def pointcloud_from_depth_and_camera_params(depth: np.ndarray, extrinsics: np.ndarray,
                                                intrinsics: np.ndarray) -> np.ndarray:
        h, w = depth.shape
        v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
        cam = np.stack([(u - intrinsics[0, 2]) * depth / intrinsics[0, 0],
                        (v - intrinsics[1, 2]) * depth / intrinsics[1, 1], depth], -1)
        return cam @ extrinsics[:3, :3].T + extrinsics[:3, 3]
