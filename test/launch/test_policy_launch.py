"""launch_pytest test of launch/policy.launch.py with sim:=true (full ROS 2 installs only).

The launch file starts the bringup description's nodes (uam_sim, uam_policy), drives the policy's
lifecycle to active through lifecycle events, and the policy then publishes trajectories and the
predicted path. Skipped with a reason where launch_pytest / launch_ros are not installed (they
ship with ROS 2 installs, not as PyPI wheels).
"""

from __future__ import annotations

import time

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not installed (it ships with ROS 2 installs, not as a PyPI wheel)"
)
pytest.importorskip("launch_ros", reason="launch_ros is not installed (it ships with ROS 2 installs, not as a PyPI wheel)")

import launch  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from lifecycle_msgs.msg import State  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from uam_ros.control.robot_config import load_robot_config  # noqa: E402
from uam_ros.model.checkpoint import init_checkpoint  # noqa: E402
from uam_ros.resources import share_dir  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    robot = load_robot_config("franka_panda")
    home = list(robot.home) + [robot.gripper.open_position]
    names = list(robot.joints.names) + [robot.gripper.joint]
    return init_checkpoint(tmp_path_factory.mktemp("ckpt") / "panda", state_dim=len(home), action_dim=len(home),
                           joint_names=names, robot_name=robot.name, instructions=["reach the cube"],
                           action_mean=home, action_std=[0.02] * len(home))


@launch_pytest.fixture
def launch_description(checkpoint):
    return launch.LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(share_dir() / "launch" / "policy.launch.py")),
            launch_arguments={"robot": "franka_panda", "model": str(checkpoint), "sim": "true",
                              "task": "reach", "enable": "true"}.items(),
        ),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=launch_description)
def test_sim_bringup_reaches_active_and_commands_trajectories():
    robot = load_robot_config("franka_panda")
    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    received = {"command": [], "path": []}
    node.create_subscription(JointTrajectory, robot.controller.trajectory_topic, received["command"].append, 10)
    node.create_subscription(MarkerArray, "/uam_policy/predicted_path", received["path"].append, 10)
    try:
        client = node.create_client(GetState, "/uam_policy/get_state")
        assert client.wait_for_service(timeout_sec=60.0)
        deadline = time.monotonic() + 90.0
        state = None
        while time.monotonic() < deadline:
            future = client.call_async(GetState.Request())
            rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
            state = future.result().current_state.id if future.result() else None
            if state == State.PRIMARY_STATE_ACTIVE:
                break
            time.sleep(0.5)
        assert state == State.PRIMARY_STATE_ACTIVE
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not (received["command"] and received["path"]):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert received["command"], "no trajectory reached the (simulated) controller"
        assert list(received["command"][0].joint_names) == list(robot.joints.names)
        assert received["path"] and received["path"][-1].markers[0].header.frame_id == robot.base_frame
    finally:
        node.destroy_node()
        rclpy.shutdown()
