import pytest
import yaml

from uam_ros.config_errors import ConfigError
from uam_ros.control.robot_config import available_robots, load_robot_config
from uam_ros.resources import robots_dir


def test_shipped_robots_load_and_are_consistent():
    assert {"franka_panda", "ur5e"} <= set(available_robots())
    for name in available_robots():
        robot = load_robot_config(name)
        assert robot.name == name
        assert len(robot.home) == robot.arm_dof
        assert robot.action_dim == robot.arm_dof + (1 if robot.gripper else 0)


def test_panda_limits_match_franka_datasheet(panda):
    assert panda.joints.position_max[3] == pytest.approx(-0.0698)
    assert panda.joints.position_min[5] == pytest.approx(-0.0175)
    assert panda.joints.velocity_max[4:] == [2.61, 2.61, 2.61]


def _write(tmp_path, mutate):
    data = yaml.safe_load((robots_dir() / "franka_panda.yaml").read_text())
    mutate(data)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["joints"]["velocity_max"].pop(), "joints.velocity_max"),
        (lambda d: d["joints"]["acceleration_max"].__setitem__(0, -1.0), "joints.acceleration_max"),
        (lambda d: d.__setitem__("home", [9.0] * 7), "home"),
        (lambda d: d["chunk"].__setitem__("blend", "cubic"), "chunk.blend"),
        (lambda d: d["chunk"].__setitem__("n_action_steps", 99), "chunk.n_action_steps"),
        (lambda d: d["camera"].__setitem__("width", "wide"), "camera.width"),
        (lambda d: d.__setitem__("colour", "red"), "colour"),
        (lambda d: d.pop("joints"), "joints"),
        (lambda d: d["joints"]["position_min"].__setitem__(0, 5.0), "joints.position_max"),
    ],
)
def test_bad_fields_are_named_with_the_file(tmp_path, mutate, field):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_robot_config(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_unknown_robot_lists_the_available_ones():
    with pytest.raises(ConfigError, match="franka_panda"):
        load_robot_config("no_such_robot")


def test_a_new_robot_is_one_yaml_file(tmp_path):
    path = _write(tmp_path, lambda d: d.__setitem__("name", "my_arm"))
    assert load_robot_config(str(path)).name == "my_arm"


def test_action_layout_is_arm_joints_then_gripper(panda, ur5e):
    assert panda.action_joint_names == panda.joints.names + ["panda_finger_joint1"]
    assert panda.action_home == panda.home + [0.04]
    assert len(ur5e.action_joint_names) == len(ur5e.action_home) == ur5e.action_dim == 7
