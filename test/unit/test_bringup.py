"""The bringup description that policy.launch.py and `uam run` share, for every shipped robot."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest
import yaml

from uam_ros.config_errors import ConfigError
from uam_ros.control.robot_config import available_robots, load_robot_config
from uam_ros.resources import share_dir
from uam_ros.ros.bringup import ARGUMENTS, BringupArgs, describe, parameter_text, process_command

ROBOTS = available_robots()


def by_name(nodes):
    return {n.name: n for n in nodes}


def test_robots_are_shipped():
    assert {"franka_panda", "ur5e"} <= set(ROBOTS)


def test_launch_arguments_and_bringup_args_are_one_list():
    assert [a.name for a in ARGUMENTS] == [f.name for f in dataclasses.fields(BringupArgs)]
    assert BringupArgs.from_strings({a.name: a.default for a in ARGUMENTS}) == BringupArgs()
    for argument in ARGUMENTS:
        if argument.choices:
            assert argument.default in argument.choices


@pytest.mark.parametrize("robot", ROBOTS)
def test_policy_only_by_default(robot):
    nodes = describe(BringupArgs(robot=robot))
    assert [n.name for n in nodes] == ["uam_policy"]
    policy = nodes[0]
    assert policy.lifecycle and policy.autostart_parameter == "autostart"
    assert policy.package == "uam_ros" and policy.executable == "uam_policy"
    assert policy.parameters["enable"] is False  # dry-run unless asked
    assert policy.parameters["robot"] == robot and policy.parameters["model"] == ""
    assert policy.remappings == ()


@pytest.mark.parametrize("robot", ROBOTS)
def test_sim_rviz_foxglove(robot):
    config = load_robot_config(robot)
    args = BringupArgs(robot=robot, sim=True, rviz=True, foxglove=True, namespace="cell1", task="pick", seed=3,
                       use_sim_time=True)
    nodes = by_name(describe(args))
    assert list(nodes)[:2] == ["uam_sim", "uam_policy"]
    sim, policy = nodes["uam_sim"], nodes["uam_policy"]
    assert sim.parameters["task"] == "pick" and sim.parameters["seed"] == 3 and sim.parameters["robot"] == robot
    # No checkpoint shipped: the sim's scripted expert for the same episode drives the policy node.
    assert policy.parameters["model"] in ("", "expert://pick?split=train&seed=3")
    assert ("~/instruction", "uam_sim/instruction") in policy.remappings
    assert all(n.namespace == "cell1" for n in nodes.values())
    # Simulated time with the sim: the sim is the clock (publishes /clock), every other node uses it.
    assert sim.parameters["use_sim_time"] is False and sim.parameters["publish_clock"] is True
    assert sim.parameters["real_time_factor"] == 1.0
    assert all(n.parameters.get("use_sim_time") is True for name, n in nodes.items() if name != "uam_sim")
    rviz = nodes["rviz"]
    config_file = rviz.arguments[rviz.arguments.index("-d") + 1]
    assert config_file == str(share_dir() / "config" / "uam.rviz")
    assert rviz.arguments[rviz.arguments.index("-f") + 1] == config.base_frame
    assert nodes["base_frame_publisher"].arguments[-1] == config.base_frame  # no URDF: TF for the fixed frame
    topics = dict(t.split("=") for t in nodes["uam_foxglove"].parameters["topics"])
    assert topics["/cell1/uam_policy/predicted_path"] == "visualization_msgs/msg/MarkerArray"
    assert topics["/cell1/" + config.camera.image_topic] == "sensor_msgs/msg/Image"
    assert topics[config.controller.trajectory_topic] == "trajectory_msgs/msg/JointTrajectory"
    for node in nodes.values():
        if node.module is not None:
            assert importlib.util.find_spec(node.module) is not None, node.module


def test_the_rviz_config_shows_what_the_nodes_publish():
    config = yaml.safe_load((share_dir() / "config" / "uam.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray",
            "rviz_default_plugins/RobotModel"} <= classes
    topics = {d.get("Topic", {}).get("Value") for d in displays if isinstance(d.get("Topic"), dict)}
    assert {"camera/image_raw", "uam_policy/imagined_future", "uam_policy/predicted_path"} <= topics


def test_a_robot_with_a_urdf_gets_robot_state_publisher(tmp_path):
    import yaml

    from uam_ros.resources import robots_dir

    urdf = tmp_path / "arm.urdf"
    urdf.write_text('<robot name="arm"><link name="panda_link0"/></robot>')
    data = yaml.safe_load((robots_dir() / "franka_panda.yaml").read_text())
    data["urdf"] = "arm.urdf"  # relative to the robot YAML
    robot_yaml = tmp_path / "arm.yaml"
    robot_yaml.write_text(yaml.safe_dump(data))
    nodes = by_name(describe(BringupArgs(robot=str(robot_yaml), rviz=True)))
    rsp = nodes["robot_state_publisher"]
    assert rsp.package == rsp.executable == "robot_state_publisher" and rsp.module is None
    assert rsp.parameters["robot_description"] == urdf.read_text()
    assert "base_frame_publisher" not in nodes  # the URDF's TF provides the fixed frame
    assert nodes["uam_policy"].parameters["robot"] == str(robot_yaml.resolve())
    data["urdf"] = "missing.urdf"
    robot_yaml.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="urdf"):
        describe(BringupArgs(robot=str(robot_yaml)))


def test_argument_errors_name_the_argument():
    with pytest.raises(ConfigError, match="backend"):
        BringupArgs.from_strings({"backend": "cuda"})
    with pytest.raises(ConfigError, match="sim"):
        BringupArgs.from_strings({"sim": "maybe"})
    with pytest.raises(ConfigError, match="seed"):
        BringupArgs.from_strings({"seed": "x"})
    with pytest.raises(ConfigError, match="robotz"):
        BringupArgs.from_strings({"robotz": "ur5e"})
    with pytest.raises(ConfigError, match="robot"):
        describe(BringupArgs(robot="no_such_robot"))
    with pytest.raises(ConfigError, match="real_time_factor.*number"):
        BringupArgs.from_strings({"sim": "true", "real_time_factor": "fast"})
    with pytest.raises(ConfigError, match="real_time_factor.*0, 1"):
        BringupArgs.from_strings({"sim": "true", "real_time_factor": "2"})
    with pytest.raises(ConfigError, match="real_time_factor.*sim:=true"):
        BringupArgs.from_strings({"real_time_factor": "0.5"})  # a real robot cannot be slowed down


def test_a_slow_world_owns_the_clock():
    nodes = by_name(describe(BringupArgs.from_strings({"sim": "true", "real_time_factor": "0.25"})))
    sim, policy = nodes["uam_sim"], nodes["uam_policy"]
    assert (sim.parameters["publish_clock"], sim.parameters["real_time_factor"]) == (True, 0.25)
    assert sim.parameters["use_sim_time"] is False and policy.parameters["use_sim_time"] is True
    plain = by_name(describe(BringupArgs(sim=True)))["uam_sim"]
    assert "publish_clock" not in plain.parameters and plain.parameters["use_sim_time"] is False


@pytest.mark.parametrize("value", ["expert://reach?split=train&seed=0", "", "true", "1.5", "plain", " padded",
                                   "a: b", True, False, 3, 0.25, ["/a=x/msg/Y", "/b=z/msg/W"]])
def test_parameter_text_round_trips_through_yaml(value):
    assert yaml.safe_load(parameter_text(value)) == value


def test_process_commands_match_the_description():
    nodes = by_name(describe(BringupArgs(sim=True, rviz=True, namespace="ns", enable=True)))
    command = process_command(nodes["uam_policy"])
    assert command[:3] == [sys.executable, "-m", "uam_ros.ros.policy_node"]
    text = " ".join(command)
    assert "-r __node:=uam_policy" in text and "-r __ns:=/ns" in text and "-p autostart:=true" in text
    assert "-p enable:=true" in text and "-r ~/instruction:=uam_sim/instruction" in text
    if importlib.util.find_spec("rviz_common") is None and process_command(nodes["rviz"]) is None:
        assert True  # pip-only: rviz2 is skipped, not faked


def test_record_reaches_the_policy_node(tmp_path, monkeypatch):
    """record:=FILE (launch) / --record FILE (uam run) becomes the policy node's record parameter,
    absolute so the file lands where the bringup was started; empty (the default) stays off."""
    from uam_ros.cli import build_parser

    assert describe(BringupArgs())[0].parameters["record"] == ""
    monkeypatch.chdir(tmp_path)
    nodes = by_name(describe(BringupArgs.from_strings({"record": "runs/pick.mcap", "sim": "true"})))
    assert nodes["uam_policy"].parameters["record"] == str(tmp_path / "runs" / "pick.mcap")
    assert "record" not in nodes["uam_sim"].parameters
    command = process_command(nodes["uam_policy"])
    assert command[command.index("record:=" + parameter_text(str(tmp_path / "runs" / "pick.mcap"))) - 1] == "-p"
    args = build_parser().parse_args(["run", "--record", "/tmp/x.mcap"])
    assert args.record == "/tmp/x.mcap"
    assert build_parser().parse_args(["run"]).record == ""


def test_uam_run_has_a_flag_per_launch_argument():
    from uam_ros.cli import build_parser

    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    flags = {option for action in run._actions for option in action.option_strings}
    for argument in ARGUMENTS:
        assert "--" + argument.name.replace("_", "-") in flags, argument.name


def test_every_parameter_is_one_the_node_declares():
    """The description cannot pass a parameter the node does not know (ROS would silently keep it)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed (the node modules import it)")
    from uam_ros.ros.foxglove_bridge import FoxgloveBridgeParams
    from uam_ros.ros.policy_node import PolicyNodeParams
    from uam_ros.ros.sim_node import SimNodeParams

    declared = {"uam_policy": PolicyNodeParams, "uam_sim": SimNodeParams, "uam_foxglove": FoxgloveBridgeParams}
    extra = {"uam_foxglove": {"topics"}}  # declared by hand: a string array
    nodes = describe(BringupArgs(sim=True, foxglove=True, real_time_factor=0.5))
    for node in nodes:
        names = {f.name for f in dataclasses.fields(declared[node.name])} | extra.get(node.name, set())
        assert set(node.parameters) - {"use_sim_time"} <= names, node.name
        if node.autostart_parameter:
            assert node.autostart_parameter in names


def test_node_process_writes_parameters_as_ros2_run_parses_them():
    from uam_ros.ros.node_process import ros_arguments

    assert ros_arguments({"instruction": "put: the cube", "enable": True, "control_rate_hz": 0.5, "model": ""}) == [
        "--ros-args", "-p", 'instruction:="put: the cube"', "-p", "enable:=true", "-p", "control_rate_hz:=0.5",
        "-p", 'model:=""']
