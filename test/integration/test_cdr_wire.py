"""The node's command bytes (uam_ros.ros.cdr) against what DDS carries for the same message.

The policy node publishes its commands as bytes it serialized itself; a controller (rclcpp, any
RMW) reads whatever is on the wire. Here rclpy publishes the message the old path built
(trajectory_to_msg / positions_msg) through rmw_fastrtps_cpp, a raw subscription receives the wire
bytes, and they must equal ours exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from uam_ros.control.trajectory import build_command, hold_command
from uam_ros.ros.cdr import float64_multiarray_cdr, trajectory_cdr
from uam_ros.ros.conversions import positions_msg, trajectory_to_msg


def wire_bytes(client, msg_type, topic: str, messages: list) -> list[bytes]:
    """Each message published typed, as a raw subscription on localhost DDS receives it."""
    received: list[bytes] = []
    client.node.create_subscription(msg_type, topic, received.append, 50, raw=True)
    publisher = client.node.create_publisher(msg_type, topic, 50)
    assert client.run(5.0, until=lambda: publisher.get_subscription_count() > 0), "raw subscription not matched"
    for msg in messages:
        publisher.publish(msg)
    assert client.run(5.0, until=lambda: len(received) == len(messages)), f"{len(received)} of {len(messages)} arrived"
    return received


def test_trajectory_bytes_equal_the_wire_encoding_of_the_message(client):
    rng = np.random.default_rng(1)
    commands = [(hold_command([f"j{i}" for i in range(7)], np.linspace(-1, 1, 7)), "")]
    for joints, points, frame_id in ((7, 16, ""), (6, 1, "base_link"), (2, 5, "ab"), (9, 3, "world")):
        names = [f"panda_joint{i + 1}" for i in range(joints)]
        commands.append((build_command(names, float(rng.uniform(0, 2e9)), np.cumsum(rng.uniform(0.01, 0.5, points)),
                                       rng.normal(0, 1, (points, joints)), rng.normal(0, 0.5, (points, joints))), frame_id))
    wire = wire_bytes(client, JointTrajectory, "/uam_test/cdr_trajectory",
                      [trajectory_to_msg(command, frame_id) for command, frame_id in commands])
    assert wire == [trajectory_cdr(command, frame_id) for command, frame_id in commands]


@pytest.mark.parametrize("count", [1, 8])
def test_float64_multiarray_bytes_equal_the_wire_encoding(client, count):
    values = np.random.default_rng(count).normal(size=count)
    [wire] = wire_bytes(client, Float64MultiArray, f"/uam_test/cdr_multiarray_{count}", [positions_msg(values)])
    assert wire == float64_multiarray_cdr(values)
