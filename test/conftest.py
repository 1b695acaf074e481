"""Shared fixtures. Every test run gets its own ROS domain and stays on localhost."""

from __future__ import annotations

import os
import random
import socket

import pytest

# Before anything imports rclpy: integration tests start nodes that must never leave this host,
# and parallel runs (two CI jobs, a developer's demo) must not see each other's topics.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))

from uam_ros.ros_env import localhost_defaults  # noqa: E402

localhost_defaults()


@pytest.fixture(scope="session")
def panda():
    from uam_ros.control.robot_config import load_robot_config

    return load_robot_config("franka_panda")


@pytest.fixture(scope="session")
def ur5e():
    from uam_ros.control.robot_config import load_robot_config

    return load_robot_config("ur5e")


@pytest.fixture
def loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (DDP rendezvous, the Foxglove bridge)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
