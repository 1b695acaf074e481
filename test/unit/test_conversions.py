"""The trajectory message the node publishes carries exactly the command it was built from, and
survives CDR serialisation (built without rosidl's field checks, so its types must be right as built)."""

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from trajectory_msgs.msg import JointTrajectory

from uam_ros.control.trajectory import build_command
from uam_ros.ros.conversions import duration_to_s, stamp_to_s, trajectory_to_msg


def test_trajectory_message_carries_the_command_and_round_trips_through_cdr():
    rng = np.random.default_rng(0)
    names = [f"joint{i}" for i in range(7)]
    times = np.cumsum(rng.uniform(0.01, 0.2, size=16))
    positions, velocities = rng.normal(0, 1, (16, 7)), rng.normal(0, 0.5, (16, 7))
    command = build_command(names, 1795714805.123456789, times, positions, velocities)
    msg = trajectory_to_msg(command, "panda_link0")
    wire = deserialize_message(serialize_message(msg), JointTrajectory)
    for out in (msg, wire):
        assert list(out.joint_names) == names and out.header.frame_id == "panda_link0"
        assert abs(stamp_to_s(out.header.stamp) - command.stamp_s) < 1e-6
        assert out.header.stamp.nanosec < 1_000_000_000
        np.testing.assert_array_equal(np.array([p.positions for p in out.points]), positions)
        np.testing.assert_array_equal(np.array([p.velocities for p in out.points]), velocities)
        got = np.array([duration_to_s(p.time_from_start) for p in out.points])
        np.testing.assert_allclose(got, times, atol=1e-9, rtol=0)
        assert all(p.time_from_start.nanosec < 1_000_000_000 for p in out.points)
        assert not any(len(p.accelerations) or len(p.effort) for p in out.points)
