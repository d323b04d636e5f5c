"""Fake of buttomnutstoast/RLBench @ 587a6a0 ``rlbench/backend/scene.py``: the ``Scene`` attributes and methods the
harnesses touch (cameras by their CoppeliaSim names, ``_workspace_{min,max}{x,y,z}``, ``check_target_in_workspace``,
``get_observation`` with ``misc`` camera parameters, ``init_episode``/``reset``/``step``).

Camera poses are camera-to-world matrices in RLBench's convention (the negative-focal intrinsics flip the image
axes). ``cam_front`` looks straight down from (0.2, 0.1, 2.0) with rotation diag(1, -1, -1) and a 90° view, so a
pixel's world point can be computed by hand; the shoulders and the overhead camera look at the table; the wrist
camera rides 5 cm above the gripper tip, looking down.
"""

from __future__ import annotations

import numpy as np
from pyrep.backend import sim
from pyrep.backend.sim import TABLE_Z
from pyrep.objects.dummy import Dummy
from pyrep.objects.vision_sensor import VisionSensor

from rlbench.backend.observation import Observation
from rlbench.observation_config import CameraConfig, ObservationConfig

STEPS_BEFORE_EPISODE_START = 10
DOWN = np.diag([1.0, -1.0, -1.0])


def look_at_rlbench(eye, target) -> np.ndarray:
    """Camera-to-world in RLBench's convention: an OpenCV look-at with the camera x and y axes negated."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, :3] = np.stack([-x, -y, z], axis=1)
    m[:3, 3] = eye
    return m


def _pose(rotation, position) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation, position
    return m


CAMERA_POSES = {
    "cam_front": (_pose(DOWN, [0.2, 0.1, 2.0]), 90.0),
    "cam_over_shoulder_left": (look_at_rlbench([-0.3, 0.6, 1.6], [0.25, 0.0, TABLE_Z]), 60.0),
    "cam_over_shoulder_right": (look_at_rlbench([-0.3, -0.6, 1.6], [0.25, 0.0, TABLE_Z]), 60.0),
    "cam_overhead": (_pose(DOWN, [0.25, 0.0, 2.3]), 60.0),
    "cam_wrist": (_pose(DOWN, [0.28, 0.0, 1.52]), 70.0),
}


class Scene:
    def __init__(self, pyrep, robot, obs_config: ObservationConfig = ObservationConfig(), robot_setup: str = "panda"):  # noqa: B008 (the real signature)
        self.pyrep = pyrep
        self.robot = robot
        self.robot_setup = robot_setup
        self.task = None
        self._obs_config = obs_config
        self._start_arm_joint_pos = robot.arm.get_joint_positions()
        self._cams = {}
        for name, (matrix, angle) in CAMERA_POSES.items():
            cam = VisionSensor(name, perspective_angle=angle)
            cam.set_matrix(matrix)
            sim.world().objects[name] = cam
            self._cams[name] = cam
        self._cam_front = self._cams["cam_front"]
        self._cam_over_shoulder_left = self._cams["cam_over_shoulder_left"]
        self._cam_over_shoulder_right = self._cams["cam_over_shoulder_right"]
        self._cam_overhead = self._cams["cam_overhead"]
        self._cam_wrist = self._cams["cam_wrist"]
        self._has_init_task = self._has_init_episode = False
        self._variation_index = 0
        self._ignore_collisions_for_current_waypoint = False
        self._set_camera_properties()
        # RLBench: the workspace shape's box, 20 cm wider, from its top to 1 m above
        self._workspace_minx, self._workspace_maxx = -0.5, 0.8
        self._workspace_miny, self._workspace_maxy = -0.65, 0.65
        self._workspace_minz, self._workspace_maxz = TABLE_Z, TABLE_Z + 1.0
        self.target_workspace_check = Dummy.create()
        self._step_callback = None

    def _set_camera_properties(self) -> None:
        c = self._obs_config
        for cam, conf in ((self._cam_over_shoulder_left, c.left_shoulder_camera),
                          (self._cam_over_shoulder_right, c.right_shoulder_camera),
                          (self._cam_overhead, c.overhead_camera), (self._cam_wrist, c.wrist_camera),
                          (self._cam_front, c.front_camera)):
            if not (conf.rgb or conf.depth or conf.point_cloud):
                cam.remove()
            else:
                cam.set_explicit_handling(1)
                cam.set_resolution(conf.image_size)
                cam.set_render_mode(conf.render_mode)

    def load(self, task) -> None:
        task.load()
        self.task = task
        self._has_init_task = self._has_init_episode = False
        self._variation_index = 0

    def unload(self) -> None:
        if self.task is not None:
            self.robot.gripper.release()
            self.task.unload()
        self.task = None
        self._variation_index = 0

    def init_task(self) -> None:
        self.task.init_task()
        self._has_init_task = True
        self._variation_index = 0

    def init_episode(self, index: int, randomly_place: bool = True, max_attempts: int = 5) -> list[str]:
        self._variation_index = index
        if not self._has_init_task:
            self.init_task()
        descriptions = self.task.init_episode(index)
        [self.pyrep.step() for _ in range(STEPS_BEFORE_EPISODE_START)]
        self._has_init_episode = True
        return descriptions

    def reset(self) -> None:
        self.robot.gripper.release()
        self.robot.arm.set_joint_positions(self._start_arm_joint_pos, disable_dynamics=True)
        self.robot.gripper.set_joint_positions([0.04, 0.04], disable_dynamics=True)
        if self.task is not None and self._has_init_task:
            self.task.cleanup_()
        self.task.set_initial_objects_in_scene()

    def _sync_wrist(self) -> None:
        self._cam_wrist.set_matrix(_pose(DOWN, self.robot.arm.get_tip().get_position() + [0.0, 0.0, 0.05]))

    def get_observation(self) -> Observation:
        self._sync_wrist()
        tip = self.robot.arm.get_tip()
        c = self._obs_config
        images = {}
        for key, cam, conf in (("left_shoulder", self._cam_over_shoulder_left, c.left_shoulder_camera),
                               ("right_shoulder", self._cam_over_shoulder_right, c.right_shoulder_camera),
                               ("overhead", self._cam_overhead, c.overhead_camera),
                               ("wrist", self._cam_wrist, c.wrist_camera), ("front", self._cam_front, c.front_camera)):
            rgb = depth = pcd = None
            if conf.rgb or conf.depth or conf.point_cloud:
                cam.handle_explicitly()
                if conf.rgb:
                    rgb = np.clip((conf.rgb_noise.apply(cam.capture_rgb()) * 255.0).astype(np.uint8), 0, 255)
                if conf.depth or conf.point_cloud:
                    depth = conf.depth_noise.apply(cam.capture_depth(conf.depth_in_meters))
                if conf.point_cloud:
                    depth_m = depth if conf.depth_in_meters else cam.get_near_clipping_plane() + depth * (
                        cam.get_far_clipping_plane() - cam.get_near_clipping_plane())
                    pcd = cam.pointcloud_from_depth(depth_m)
                    if not conf.depth:
                        depth = None
            images.update({f"{key}_rgb": rgb, f"{key}_depth": depth, f"{key}_point_cloud": pcd,
                           f"{key}_mask": None})
        obs = Observation(
            **images,
            joint_velocities=np.array(self.robot.arm.get_joint_velocities()) if c.joint_velocities else None,
            joint_positions=np.array(self.robot.arm.get_joint_positions()) if c.joint_positions else None,
            joint_forces=np.array(self.robot.arm.get_joint_forces()) if c.joint_forces else None,
            gripper_open=(1.0 if self.robot.gripper.get_open_amount()[0] > 0.95 else 0.0) if c.gripper_open else None,
            gripper_pose=np.array(tip.get_pose()) if c.gripper_pose else None,
            gripper_matrix=tip.get_matrix() if c.gripper_matrix else None,
            gripper_touch_forces=None,
            gripper_joint_positions=(np.array(self.robot.gripper.get_joint_positions())
                                     if c.gripper_joint_positions else None),
            task_low_dim_state=self.task.get_low_dim_state() if c.task_low_dim_state else None,
            ignore_collisions=(np.array(1.0 if self._ignore_collisions_for_current_waypoint else 0.0)
                               if c.record_ignore_collisions else None),
            misc=self._get_misc())
        return self.task.decorate_observation(obs)

    def step(self) -> None:
        self.pyrep.step()
        self.task.step()
        if self._step_callback is not None:
            self._step_callback()

    def register_step_callback(self, func) -> None:
        self._step_callback = func

    def get_observation_config(self) -> ObservationConfig:
        return self._obs_config

    def check_target_in_workspace(self, target_pos: np.ndarray) -> bool:
        x, y, z = target_pos
        return (self._workspace_maxx > x > self._workspace_minx and self._workspace_maxy > y > self._workspace_miny
                and self._workspace_maxz > z > self._workspace_minz)

    def _get_misc(self) -> dict:
        misc = {}
        for cam, name in ((self._cam_over_shoulder_left, "left_shoulder_camera"),
                          (self._cam_over_shoulder_right, "right_shoulder_camera"),
                          (self._cam_overhead, "overhead_camera"), (self._cam_front, "front_camera"),
                          (self._cam_wrist, "wrist_camera")):
            if cam.still_exists():
                misc.update({f"{name}_extrinsics": cam.get_matrix(), f"{name}_intrinsics": cam.get_intrinsic_matrix(),
                             f"{name}_near": cam.get_near_clipping_plane(),
                             f"{name}_far": cam.get_far_clipping_plane()})
        return misc


__all__ = ["CameraConfig", "Scene"]
