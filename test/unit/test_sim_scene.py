"""The MuJoCo scene publishes exactly the robot YAML's joints, with the YAML's limits."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from uam_ros.control.robot_config import load_robot_config, resolve_robot_path  # noqa: E402
from uam_ros.sim.scene import SimConfigError, SimRobotConfig, build_scene, check_joint_limits  # noqa: E402

ROBOTS = ["franka_panda", "ur5e"]


@pytest.fixture(scope="module", params=ROBOTS)
def scene(request):
    return build_scene(request.param)


def test_model_has_yaml_joints_with_yaml_limits(scene):
    model, info, cfg = scene
    model_joints = {model.joint(i).name for i in range(model.njnt)}
    wanted = list(cfg.joints.names) + [cfg.gripper.joint]
    assert set(wanted) <= model_joints
    for name, low, high in zip(cfg.joints.names, cfg.joints.position_min, cfg.joints.position_max):
        jid = model.joint(name).id
        assert model.jnt_limited[jid]
        assert model.jnt_range[jid] == pytest.approx([low, high], abs=1e-3)
    assert model.jnt_range[model.joint(cfg.gripper.joint).id] == pytest.approx(
        [cfg.gripper.low, cfg.gripper.high], abs=1e-3
    )
    check_joint_limits(model, cfg)  # does not raise
    assert info.arm_joints == tuple(cfg.joints.names)
    assert model.opt.timestep == pytest.approx(0.002)


def test_actuators_drive_the_yaml_joints_within_limits(scene):
    model, info, cfg = scene
    for act_name, joint, low, high in zip(
        info.arm_actuators, cfg.joints.names, cfg.joints.position_min, cfg.joints.position_max
    ):
        act = model.actuator(act_name)
        assert model.joint(int(act.trnid[0])).name == joint
        assert act.ctrlrange == pytest.approx([low, high])
    grip = model.actuator(info.gripper_actuator)
    assert model.joint(int(grip.trnid[0])).name == cfg.gripper.joint
    assert model.camera(info.scene_camera).id >= 0 and model.camera(info.wrist_camera).id >= 0


def _modified_yaml(tmp_path, robot, edit):
    data = yaml.safe_load(resolve_robot_path(robot).read_text())
    edit(data)
    path = tmp_path / f"{robot}_modified.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_robot_config(path)


def test_modified_yaml_limit_makes_the_check_fail(tmp_path):
    def shrink(data):
        data["joints"]["position_max"][0] = 2.5

    cfg = _modified_yaml(tmp_path, "franka_panda", shrink)
    with pytest.raises(SimConfigError, match=r"panda_joint1.*2\.8973.*2\.5000"):
        build_scene(cfg)


def test_check_flags_a_missing_joint_and_a_wrong_gripper_range(tmp_path):
    model, _, _ = build_scene("ur5e")

    def rename_and_regrip(data):
        data["joints"]["names"][2] = "forearm_joint"
        data["gripper"]["closed_position"] = 0.9

    cfg = _modified_yaml(tmp_path, "ur5e", rename_and_regrip)
    with pytest.raises(SimConfigError) as err:
        check_joint_limits(model, cfg)
    assert "forearm_joint" in str(err.value) and "robotiq_85_left_knuckle_joint" in str(err.value)


def test_sim_section_is_validated(tmp_path):
    def drop_mapping(data):
        del data["sim"]["joint_map"]["joint3"]

    cfg = _modified_yaml(tmp_path, "franka_panda", drop_mapping)
    with pytest.raises(SimConfigError, match="panda_joint3"):
        SimRobotConfig.from_robot_config(cfg)

    def no_sim(data):
        del data["sim"]

    with pytest.raises(SimConfigError, match="no 'sim:' section"):
        SimRobotConfig.from_robot_config(_modified_yaml(tmp_path, "franka_panda", no_sim))


def test_sim_package_does_not_import_rclpy():
    import subprocess
    import sys

    code = (
        "import sys; import uam_ros.sim.world, uam_ros.sim.expert, uam_ros.sim.tasks; "
        "assert 'rclpy' not in sys.modules, 'rclpy imported'"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "MUJOCO_GL": "egl"})
    assert mujoco.mj_versionString()
