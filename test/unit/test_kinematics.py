"""uam_ros.kinematics: FK from the MuJoCo model, base-frame transform, camera projection."""

from __future__ import annotations

import dataclasses
import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from uam_ros.kinematics import RobotKinematics, pinhole_intrinsics, project  # noqa: E402


@pytest.fixture(scope="module")
def panda_kin():
    return RobotKinematics("franka_panda")


def _random_q(robot, count, seed=0):
    rng = np.random.default_rng(seed)
    low, high = np.array(robot.joints.position_min), np.array(robot.joints.position_max)
    home = np.array(robot.home)
    return np.clip(home + rng.normal(0.0, 0.4, (count, len(home))), low, high)


def test_fk_equals_the_sim_worlds_tcp_site(panda_kin):
    """The FK model (no objects) puts the TCP where the simulator's full scene does."""
    from uam_ros.sim.tasks import sample_episode
    from uam_ros.sim.world import SimWorld

    world = SimWorld(panda_kin.robot, sample_episode("pick", "train", 0), wrist_camera=False)
    try:
        q = _random_q(panda_kin.robot, 5)
        site = world.model.site(world.info.tcp_site).id
        expected = []
        for row in q:
            for name, value in zip(world.info.arm_joints, row):
                world.data.qpos[world.model.jnt_qposadr[world.model.joint(name).id]] = value
            mujoco.mj_forward(world.model, world.data)
            expected.append(world.data.site_xpos[site].copy())
    finally:
        world.close()
    np.testing.assert_allclose(panda_kin.tcp_positions_world(q), np.array(expected), atol=1e-9)
    # Extra columns (the gripper) are ignored; a single vector works too.
    with_gripper = np.concatenate([q, np.full((5, 1), 0.04)], axis=1)
    np.testing.assert_allclose(panda_kin.tcp_positions(with_gripper), panda_kin.tcp_positions(q))
    np.testing.assert_allclose(panda_kin.tcp_positions(q[0]), panda_kin.tcp_positions(q[:1]))


def test_positions_are_in_the_base_frame_wherever_the_robot_stands(panda_kin):
    """Moving and turning the robot's base in the world leaves base-frame positions unchanged."""
    robot = panda_kin.robot
    moved_robot = dataclasses.replace(robot, sim={**robot.sim, "base_pos": [0.3, -0.2, 0.1], "base_yaw": 0.7})
    moved = RobotKinematics(moved_robot)
    q = _random_q(robot, 4, seed=1)
    np.testing.assert_allclose(moved.tcp_positions(q), panda_kin.tcp_positions(q), atol=1e-9)
    world = moved.tcp_positions_world(q)
    assert not np.allclose(world, panda_kin.tcp_positions_world(q), atol=1e-3)
    c, s = math.cos(0.7), math.sin(0.7)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(world, panda_kin.tcp_positions(q) @ rotation.T + [0.3, -0.2, 0.1], atol=1e-9)


def test_ur5e_fk(ur5e):
    kin = RobotKinematics(ur5e)
    path = kin.tcp_positions(np.array([ur5e.home, ur5e.home]))
    assert path.shape == (2, 3) and np.all(np.isfinite(path))
    assert 0.2 < np.linalg.norm(path[0]) < 1.2  # within the arm's reach


def test_wrong_width_is_refused(panda_kin):
    with pytest.raises(ValueError, match="7 arm values"):
        panda_kin.tcp_positions(np.zeros((3, 5)))


def test_intrinsics_match_the_camera_model(panda_kin):
    K = panda_kin.camera_intrinsics("scene", 128, 96)
    f = 0.5 * 96 / math.tan(math.radians(50.0) / 2)
    np.testing.assert_allclose(K, [[f, 0, 63.5], [0, f, 47.5], [0, 0, 1]])
    np.testing.assert_allclose(pinhole_intrinsics(128, 96, 50.0), K)


def test_a_point_on_the_optical_axis_projects_to_the_principal_point(panda_kin):
    T = panda_kin.camera_extrinsics("scene")
    camera_from_world = np.linalg.inv(T)
    point = camera_from_world[:3, :3] @ [0.0, 0.0, 0.8] + camera_from_world[:3, 3]  # 0.8 m ahead
    K = panda_kin.camera_intrinsics("scene")
    np.testing.assert_allclose(project(point[None], K, T)[0], K[:2, 2], atol=1e-9)
    behind = camera_from_world[:3, :3] @ [0.0, 0.0, -0.5] + camera_from_world[:3, 3]
    assert np.all(np.isnan(project(behind[None], K, T)))


@pytest.mark.parametrize("point", [(0.5, 0.12, 0.08), (0.3, -0.2, 0.25), (0.7, 0.25, 0.0)])
def test_projection_lands_on_the_rendered_pixel(panda_kin, point):
    """Render a small green ball at a known 3-D point with MuJoCo; project() must hit its centre."""
    from uam_ros.sim.scene import build_scene_spec

    spec, info, _ = build_scene_spec("franka_panda", wrist_camera=False)
    spec.worldbody.add_geom(name="probe", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.008, 0, 0], pos=list(point),
                            rgba=[0, 1, 0, 1], contype=0, conaffinity=0)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    width, height = 160, 120
    renderer = mujoco.Renderer(model, height=height, width=width)
    try:
        renderer.update_scene(data, camera=info.scene_camera)
        image = renderer.render()
    finally:
        renderer.close()
    mask = (image[..., 1] > 150) & (image[..., 0] < 110) & (image[..., 2] < 110)
    assert mask.sum() >= 3, "the probe is not visible"
    rows, cols = np.nonzero(mask)
    K = panda_kin.camera_intrinsics(info.scene_camera, width, height)
    pixel = project(np.array([point]), K, panda_kin.camera_extrinsics(info.scene_camera))[0]
    np.testing.assert_allclose(pixel, [cols.mean(), rows.mean()], atol=0.6)
