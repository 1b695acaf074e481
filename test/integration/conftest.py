from __future__ import annotations

import pytest

from ros_harness import TestClient, ensure_rclpy


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def rclpy_context():
    import rclpy

    ensure_rclpy()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def client(rclpy_context):
    test_client = TestClient()
    yield test_client
    test_client.close()


def make_checkpoint(robot, directory, seed: int = 0):
    """A seeded, untrained UAM whose actions stay within a few cm of the robot's home pose."""
    from uam_ros.model.checkpoint import init_checkpoint

    home, joint_names = robot.action_home, robot.action_joint_names
    return init_checkpoint(
        directory, state_dim=len(home), action_dim=len(home), joint_names=joint_names, robot_name=robot.name,
        instructions=["pick up the red cube", "push the blue block"], seed=seed,
        state_mean=home, state_std=[0.5] * len(home), action_mean=home, action_std=[0.02] * len(home),
    )


@pytest.fixture(scope="session")
def panda_checkpoint(panda, tmp_path_factory):
    return make_checkpoint(panda, tmp_path_factory.mktemp("ckpt") / "panda")
