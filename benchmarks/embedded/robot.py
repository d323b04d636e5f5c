"""A Franka Panda written as MJCF from its public kinematic facts, with simple primitive collision/visual geometry.

Why our own model rather than a wheel's meshes: the kinematic chain (joint axes, link offsets, limits) is all the
planner and the policy ever see, primitives collide and render far faster than meshes on a CPU, and nothing has to
be installed or downloaded. The offsets are Franka's published modified-DH parameters
(d1=0.333, d3=0.316, a4=0.0825, a5=-0.0825, d5=0.384, a7=0.088, flange d=0.107, TCP 0.1034 below the flange).
"""

from __future__ import annotations

import numpy as np

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_left", "panda_finger_right")
# Franka's published joint limits (rad).
JOINT_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
# The "ready" pose: gripper pointing down above the table, elbow up.
HOME_QPOS = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])
FINGER_OPEN = 0.04  # per finger, metres
TCP_OFFSET = 0.1034  # flange -> tool centre point along the approach axis
BASE_POSITION = (-0.3, 0.0, 0.75)  # behind the table's workspace, on the table top, as in RLBench

# Robot geoms collide with the world (contype 2 hits conaffinity 2 of world geoms) but not with each other.
_ROBOT_COLLIDE = 'contype="2" conaffinity="1"'
_LINK_RGBA = "0.92 0.92 0.92 1"
_DARK_RGBA = "0.25 0.25 0.25 1"


def _joint(name: str, lo: float, hi: float) -> str:
    # Large armature: the arm is driven kinematically, so contacts should move objects, not the arm.
    return f'<joint name="{name}" axis="0 0 1" range="{lo} {hi}" armature="5" damping="10"/>'


def panda_mjcf() -> str:
    """The robot's <body> tree (to be placed inside <worldbody>), base at ``BASE_POSITION``."""
    lo, hi = JOINT_LOWER, JOINT_UPPER
    j = [_joint(ARM_JOINTS[i], lo[i], hi[i]) for i in range(7)]
    bx, by, bz = BASE_POSITION
    cap = f'type="capsule" rgba="{_LINK_RGBA}" {_ROBOT_COLLIDE}'
    # Base and first link cannot reach anything but the table they stand on: no collisions for them.
    nocol = 'contype="0" conaffinity="0"'
    return f"""
<body name="panda_link0" pos="{bx} {by} {bz}">
  <geom type="cylinder" size="0.07 0.07" pos="0 0 0.07" rgba="{_LINK_RGBA}" {nocol}/>
  <body name="panda_link1" pos="0 0 0.333">
    {j[0]}
    <geom type="capsule" fromto="0 0 -0.19 0 0 -0.04" size="0.06" rgba="{_LINK_RGBA}" {nocol}/>
    <body name="panda_link2" quat="0.70710678 -0.70710678 0 0">
      {j[1]}
      <geom {cap} fromto="0 0 -0.05 0 -0.22 0" size="0.06"/>
      <body name="panda_link3" pos="0 -0.316 0" quat="0.70710678 0.70710678 0 0">
        {j[2]}
        <geom {cap} fromto="0 0 -0.09 0 0 0" size="0.055"/>
        <geom {cap} fromto="0 0 0 0.0825 0 0" size="0.055"/>
        <body name="panda_link4" pos="0.0825 0 0" quat="0.70710678 0.70710678 0 0">
          {j[3]}
          <geom {cap} fromto="0 0 0 -0.0825 0.09 0" size="0.055"/>
          <geom {cap} fromto="-0.0825 0.09 0 -0.0825 0.27 0" size="0.05"/>
          <body name="panda_link5" pos="-0.0825 0.384 0" quat="0.70710678 -0.70710678 0 0">
            {j[4]}
            <geom {cap} fromto="0 0 -0.06 0 0 0.02" size="0.05"/>
            <body name="panda_link6" quat="0.70710678 0.70710678 0 0">
              {j[5]}
              <geom {cap} fromto="0 0 0 0.088 0 0" size="0.045"/>
              <body name="panda_link7" pos="0.088 0 0" quat="0.70710678 0.70710678 0 0">
                {j[6]}
                <geom type="capsule" fromto="0 0 -0.03 0 0 0.07" size="0.04" rgba="{_DARK_RGBA}" {_ROBOT_COLLIDE}/>
                <body name="panda_hand" pos="0 0 0.107" quat="0.92387953 0 0 -0.38268343">
                  <geom type="box" size="0.025 0.095 0.025" pos="0 0 0.032" rgba="{_LINK_RGBA}" {_ROBOT_COLLIDE}/>
                  <site name="tcp" pos="0 0 {TCP_OFFSET}" size="0.004" rgba="1 0 0 0" group="4"/>
                  <camera name="wrist" pos="-0.06 0 0.065" xyaxes="0 -1 0 -0.969 0 0.247" fovy="60"/>
                  <body name="panda_left_finger" pos="0 0 0.0584">
                    <joint name="{FINGER_JOINTS[0]}" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}" armature="5"/>
                    <geom name="finger_left" type="box" size="0.01 0.006 0.022" pos="0 0.006 0.026"
                          rgba="{_DARK_RGBA}" {_ROBOT_COLLIDE} friction="1.5 0.01 0.001"/>
                  </body>
                  <body name="panda_right_finger" pos="0 0 0.0584">
                    <joint name="{FINGER_JOINTS[1]}" type="slide" axis="0 -1 0" range="0 {FINGER_OPEN}" armature="5"/>
                    <geom name="finger_right" type="box" size="0.01 0.006 0.022" pos="0 -0.006 0.026"
                          rgba="{_DARK_RGBA}" {_ROBOT_COLLIDE} friction="1.5 0.01 0.001"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>
"""
