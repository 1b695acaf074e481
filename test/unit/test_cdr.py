"""uam_ros.ros.cdr against rclpy's own serializer: the node publishes these bytes instead of messages."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from uam_ros.control.trajectory import build_command, hold_command
from uam_ros.ros.cdr import float64_multiarray_cdr, trajectory_cdr
from uam_ros.ros.conversions import positions_msg, trajectory_to_msg


def same_except_padding(ours: bytes, theirs: bytes) -> bool:
    """rclpy leaves alignment padding uninitialised and may hand back a buffer longer than the
    message: every byte of ours must be rclpy's, or a zero we wrote as padding."""
    return len(ours) <= len(theirs) and all(a == b or a == 0 for a, b in zip(ours, theirs))


# Joint counts, point counts and name / frame lengths move every field across 4- and 8-byte
# boundaries: the first point then starts 8-aligned or 4 past it.
@pytest.mark.parametrize("joints", [1, 2, 6, 7, 8])
@pytest.mark.parametrize("points", [0, 1, 2, 16])
@pytest.mark.parametrize("frame_id", ["", "a", "abc", "panda_link0", "bâse"])
def test_trajectory_bytes_read_back_as_the_message_trajectory_to_msg_builds(joints, points, frame_id):
    rng = np.random.default_rng(joints * 100 + points)
    names = [f"joint_{'x' * (i % 4)}{i}" for i in range(joints)]
    times = np.cumsum(rng.uniform(0.005, 2.5, size=points))
    command = build_command(names, rng.uniform(0.0, 2e9), times, rng.normal(0, 1, (points, joints)),
                            rng.normal(0, 0.5, (points, joints)))
    expected = trajectory_to_msg(command, frame_id)
    ours = trajectory_cdr(command, frame_id)
    assert deserialize_message(ours, JointTrajectory) == expected
    assert same_except_padding(ours, serialize_message(expected))


def test_hold_command_and_whole_second_times():
    hold = hold_command([f"j{i}" for i in range(7)], np.linspace(-1, 1, 7), 0.1)
    assert deserialize_message(trajectory_cdr(hold), JointTrajectory) == trajectory_to_msg(hold)
    exact = build_command(["a", "b"], 12.0, np.array([1.0, 2.0, 3.5]), np.zeros((3, 2)), np.ones((3, 2)))
    wire = deserialize_message(trajectory_cdr(exact), JointTrajectory)
    assert (wire.header.stamp.sec, wire.header.stamp.nanosec) == (12, 0)
    assert [(p.time_from_start.sec, p.time_from_start.nanosec) for p in wire.points] == [(1, 0), (2, 0), (3, 500_000_000)]


@pytest.mark.parametrize("count", [0, 1, 3, 8])
def test_float64_multiarray_bytes(count):
    values = np.random.default_rng(count).normal(size=count)
    ours = float64_multiarray_cdr(values)
    assert deserialize_message(ours, Float64MultiArray) == positions_msg(values)
    assert same_except_padding(ours, serialize_message(positions_msg(values)))
