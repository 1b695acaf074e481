"""Forward kinematics and camera geometry from the robot's MuJoCo model — no hand-written kinematics.

``RobotKinematics`` compiles the robot's scene once (robot + gripper, no objects, via
``uam_ros.sim.scene.build_scene``) and runs ``mujoco.mj_kinematics`` on a private ``MjData``, so
the end-effector path the policy intends is computed from the same model the simulator executes.
Positions come back in the robot base frame (the MuJoCo body the robot is mounted by, i.e. the
ROS ``base_frame`` of the robot config) or in the world frame.

Cameras use the ROS/OpenCV pinhole convention: the optical frame has x right, y down, z forward,
and pixel ``(u, v)`` has its centre at integer coordinates (pixel 0 spans [-0.5, 0.5]).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import mujoco
import numpy as np

from uam_ros.control.robot_config import RobotConfig

# MuJoCo cameras look along -z with y up; the optical (OpenCV/ROS) frame looks along +z with y down.
_MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


def invert_pose(transform: np.ndarray) -> np.ndarray:
    rotation, translation = transform[:3, :3], transform[:3, 3]
    return pose_matrix(rotation.T, -rotation.T @ translation)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return points @ transform[:3, :3].T + transform[:3, 3]


def pinhole_intrinsics(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """K of a MuJoCo camera rendered at width x height: square pixels, vertical field of view
    fovy, principal point at the image centre (MuJoCo's frustum is symmetric)."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def project(points_world: np.ndarray, K: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) of world points (N, 3) seen by a camera.

    extrinsics: 4x4 transform world -> optical camera frame (``T_cam_world``); K: 3x3 intrinsics.
    Points on or behind the image plane give NaN.
    """
    in_camera = transform_points(extrinsics, points_world)
    z = in_camera[:, 2]
    pixels = np.full((in_camera.shape[0], 2), np.nan)
    ahead = z > 1e-9
    uvw = in_camera[ahead] @ np.asarray(K, dtype=np.float64).T
    pixels[ahead] = uvw[:, :2] / uvw[:, 2:3]
    return pixels


class RobotKinematics:
    """FK of one robot, built once (about a second: meshes are parsed) and cheap per call after.

    Thread-safe: one lock guards the private MjData.
    """

    def __init__(self, robot: str | Path | RobotConfig, wrist_camera: bool = False) -> None:
        from uam_ros.sim.scene import build_scene

        self.model, self.info, self.robot = build_scene(
            robot if isinstance(robot, RobotConfig) else str(robot), objects=(), wrist_camera=wrist_camera
        )
        self._data = mujoco.MjData(self.model)
        self._lock = threading.Lock()
        model = self.model
        self._arm_qpos = np.array([model.jnt_qposadr[model.joint(name).id] for name in self.info.arm_joints])
        self._tcp_site = model.site(self.info.tcp_site).id
        self.base_body = self._robot_root_body()
        mujoco.mj_kinematics(model, self._data)
        # The base is welded to the world: its pose does not depend on the joints.
        self.world_from_base = pose_matrix(self._data.xmat[self.base_body].reshape(3, 3).copy(),
                                           self._data.xpos[self.base_body].copy())
        self.base_from_world = invert_pose(self.world_from_base)

    def _robot_root_body(self) -> int:
        prefix = self.info.robot_body_prefix
        for body in range(1, self.model.nbody):
            if self.model.body_parentid[body] == 0 and self.model.body(body).name.startswith(prefix):
                return body
        raise ValueError(f"robot '{self.robot.name}': no body named '{prefix}*' is mounted on the world")

    @property
    def arm_dof(self) -> int:
        return len(self._arm_qpos)

    def _arm_batch(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        q = q.reshape(1, -1) if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] < self.arm_dof:
            raise ValueError(f"joint vectors need {self.arm_dof} arm values (extra columns, e.g. the gripper, "
                             f"are ignored), got shape {q.shape}")
        return q[:, : self.arm_dof]

    def tcp_positions_world(self, q: np.ndarray) -> np.ndarray:
        """TCP site positions (N, 3) in the world frame for joint vectors (N, >= arm_dof)."""
        q = self._arm_batch(q)
        out = np.empty((q.shape[0], 3))
        with self._lock:
            data = self._data
            for k, row in enumerate(q):
                data.qpos[self._arm_qpos] = row
                mujoco.mj_kinematics(self.model, data)
                out[k] = data.site_xpos[self._tcp_site]
        return out

    def tcp_positions(self, q: np.ndarray) -> np.ndarray:
        """TCP positions (N, 3) in the robot base frame (the robot config's base_frame)."""
        return transform_points(self.base_from_world, self.tcp_positions_world(q))

    # ---- cameras ------------------------------------------------------------------------------
    def _camera_id(self, camera: str) -> int:
        cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cid < 0:
            names = [self.model.camera(i).name for i in range(self.model.ncam)]
            raise KeyError(f"no camera '{camera}' in the {self.robot.name} model (cameras: {names})")
        return cid

    def camera_intrinsics(self, camera: str | None = None, width: int | None = None,
                          height: int | None = None) -> np.ndarray:
        """K (3x3) of a model camera at the given size (default: the robot config's camera size)."""
        cid = self._camera_id(camera or self.info.scene_camera)
        return pinhole_intrinsics(width or self.robot.camera.width, height or self.robot.camera.height,
                                  float(self.model.cam_fovy[cid]))

    def camera_extrinsics(self, camera: str | None = None, q: np.ndarray | None = None) -> np.ndarray:
        """T_cam_world (4x4): world -> the camera's optical frame. q matters for cameras the robot
        carries (the wrist camera); the scene camera is fixed."""
        cid = self._camera_id(camera or self.info.scene_camera)
        with self._lock:
            data = self._data
            if q is not None:
                data.qpos[self._arm_qpos] = self._arm_batch(q)[0]
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_camlight(self.model, data)
            rotation = data.cam_xmat[cid].reshape(3, 3).copy()  # columns: camera axes in the world
            position = data.cam_xpos[cid].copy()
        world_from_camera_mj = pose_matrix(rotation, position)
        camera_mj_from_world = invert_pose(world_from_camera_mj)
        return pose_matrix(_MJ_TO_OPTICAL, np.zeros(3)) @ camera_mj_from_world

    def project_tcp_path(self, q: np.ndarray, camera: str | None = None, width: int | None = None,
                         height: int | None = None) -> np.ndarray:
        """Pixels (N, 2) of the TCP for joint vectors q, as seen by a fixed camera of the model."""
        K = self.camera_intrinsics(camera, width, height)
        return project(self.tcp_positions_world(q), K, self.camera_extrinsics(camera))
