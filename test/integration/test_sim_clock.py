"""uam_sim owning the ROS time (publish_clock, real_time_factor), over real DDS. A module of its own:
test_sim_node's module-wide sim publishes the same sensor topics on the wall clock."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState

from uam_ros.ros.node_process import NodeProcess
from uam_ros.ros.qos import SENSOR_QOS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_publish_clock_runs_the_world_slower_than_real_time(client, tmp_path):
    """With publish_clock, uam_sim owns the ROS time: /clock advances at real_time_factor of the wall
    clock, and the sensors are stamped on that clock (never ahead of it)."""
    from rosgraph_msgs.msg import Clock

    from uam_ros.ros.conversions import stamp_to_s

    node = NodeProcess("uam_ros.ros.sim_node", {"robot": "franka_panda", "task": "reach", "seed": 3,
                                               "publish_clock": True, "real_time_factor": 0.5},
                       tmp_path / "sim_clock.log")
    try:
        clock = client.record(Clock, "/clock", 10)
        states = client.record(JointState, "joint_states", SENSOR_QOS)
        images = client.record(Image, "camera/image_raw", SENSOR_QOS)
        assert client.run(60.0, until=lambda: len(clock.messages) > 20 and images.messages), node.log()
        start = len(clock.messages)
        client.run(3.0)
        ticks = clock.messages[start:]
        times = clock.times[start:]
        world_s = stamp_to_s(ticks[-1].clock) - stamp_to_s(ticks[0].clock)
        wall_s = times[-1] - times[0]
        assert 0.3 < world_s / wall_s < 0.7, (world_s, wall_s)
        clock_s = np.array([stamp_to_s(m.clock) for m in clock.messages])
        assert np.all(np.diff(clock_s) >= 0.0), "the simulated clock went back"
        newest = clock_s.max()
        assert stamp_to_s(states.messages[-1].header.stamp) <= newest + 1e-9
        stamps = np.array([stamp_to_s(m.header.stamp) for m in images.messages])
        assert stamps.max() <= newest + 1e-9
        # The camera rate is a rate of the world's time: 15 Hz of world time is 7.5 Hz of wall time here.
        assert np.median(np.diff(stamps)) == pytest.approx(1.0 / 15.0, abs=0.01)
    finally:
        assert node.stop() == 0, node.log()


def test_slow_world_without_clock_is_refused(tmp_path):
    node = NodeProcess("uam_ros.ros.sim_node", {"robot": "franka_panda", "real_time_factor": 0.5},
                       tmp_path / "sim_refused.log")
    try:
        node.process.wait(60.0)
    finally:
        node.stop()
    assert node.process.returncode != 0
    assert "real_time_factor" in node.log() and "publish_clock" in node.log()
