"""The shared tabletop: floor, table, lights, the Panda and RLBench-like cameras, around a task's objects.

World frame as RLBench's: z up, table top at z = 0.75, robot base at (-0.3, 0, 0.75) facing +x, so the reference
scene bounds [-0.3, -0.5, 0.6] - [0.7, 0.5, 1.6] hold the whole workspace.
"""

from __future__ import annotations

import numpy as np

from benchmarks.embedded.palette import FLOOR_RGB, TABLE_RGB
from benchmarks.embedded.robot import panda_mjcf

TABLE_TOP = 0.75
TABLE_LO = (-0.55, -0.65)  # table extent in x, y (metres)
TABLE_HI = (0.75, 0.65)

# Static cameras (position, point looked at), placed like RLBench's: one in front of the table facing the robot,
# two above and behind the robot's shoulders looking down onto the table. Field of view 40 degrees as RLBench's
# front/shoulder cameras; the wrist camera (60 degrees) is part of the robot model.
STATIC_CAMERAS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "front": ((1.35, 0.0, 1.58), (-0.1, 0.0, 0.85)),
    "left_shoulder": ((-0.3, 0.55, 1.72), (0.3, -0.05, 0.75)),
    "right_shoulder": ((-0.3, -0.55, 1.72), (0.3, 0.05, 0.75)),
}
STATIC_FOVY = 40.0


def _xyaxes(position: tuple[float, ...], target: tuple[float, ...]) -> str:
    """MuJoCo camera axes (image right, image up) for a camera at ``position`` looking at ``target``, z up."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.6f}" for v in (*right, *up))


def scene_mjcf(objects_xml: str, image_size: int, timestep: float, extra_assets: str = "") -> str:
    """The complete MJCF of one task's scene."""
    cams = "\n".join(
        f'<camera name="{n}" pos="{p[0]} {p[1]} {p[2]}" xyaxes="{_xyaxes(p, t)}" fovy="{STATIC_FOVY}"/>'
        for n, (p, t) in STATIC_CAMERAS.items()
    )
    (x0, y0), (x1, y1) = TABLE_LO, TABLE_HI
    half = ((x1 - x0) / 2, (y1 - y0) / 2, TABLE_TOP / 2)
    centre = ((x1 + x0) / 2, (y1 + y0) / 2, TABLE_TOP / 2)
    # No multisampling, no shadows, coarse tessellation of round primitives: on Mesa's CPU driver each of these
    # roughly halves the time of a 128 px frame, and none is visible at that size.
    return f"""
<mujoco model="bridgevla_embedded">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <statistic extent="2" center="0.2 0 1"/>
  <visual>
    <global offwidth="{max(image_size, 64)}" offheight="{max(image_size, 64)}"/>
    <quality offsamples="0" shadowsize="0" numslices="12" numstacks="6"/>
    <map znear="0.005" zfar="5"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
  </visual>
  <default>
    <geom contype="1" conaffinity="3" condim="4" friction="1 0.01 0.001" solref="0.01 1"/>
  </default>
  <asset>{extra_assets}</asset>
  <worldbody>
    <light pos="0.2 0 3" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <light pos="1.5 1 2.5" dir="-1 -0.6 -1" diffuse="0.25 0.25 0.25" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" rgba="{FLOOR_RGB[0]} {FLOOR_RGB[1]} {FLOOR_RGB[2]} 1"/>
    <geom name="table" type="box" size="{half[0]} {half[1]} {half[2]}" pos="{centre[0]} {centre[1]} {centre[2]}"
          rgba="{TABLE_RGB[0]} {TABLE_RGB[1]} {TABLE_RGB[2]} 1"/>
    {cams}
    {panda_mjcf()}
    {objects_xml}
  </worldbody>
</mujoco>
"""
