"""launch_pytest test of launch/policy.launch.py: the lifecycle node reaches active (full ROS 2 installs)."""

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
            launch_arguments={"robot": "franka_panda", "model": str(checkpoint)}.items(),
        ),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=launch_description)
def test_policy_node_reaches_active():
    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
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
    finally:
        node.destroy_node()
        rclpy.shutdown()
