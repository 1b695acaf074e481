"""uam_sim over real DDS: it behaves like a joint_trajectory_controller-driven arm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from uam_ros.ros.node_process import NodeProcess
from uam_ros.ros.conversions import s_to_duration
from uam_ros.ros.qos import COMMAND_QOS, INSTRUCTION_QOS, SENSOR_QOS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def trajectory(names, times, positions, velocities=None):
    msg = JointTrajectory()
    msg.joint_names = list(names)
    for k, t in enumerate(times):
        point = JointTrajectoryPoint()
        point.positions = [float(x) for x in positions[k]]
        if velocities is not None:
            point.velocities = [float(x) for x in velocities[k]]
        point.time_from_start = s_to_duration(t)
        msg.points.append(point)
    return msg


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    node = NodeProcess("uam_ros.ros.sim_node", {"robot": "franka_panda", "task": "reach", "seed": 3},
                       tmp_path_factory.mktemp("sim") / "sim.log")
    yield node
    assert node.stop() == 0, node.log()


def latest_q(states, names):
    msg = states.messages[-1]
    index = [list(msg.name).index(n) for n in names]
    return np.array(msg.position)[index]


def test_sim_publishes_sensors_and_episode(sim, client, panda):
    states = client.record(JointState, "joint_states", SENSOR_QOS)
    images = client.record(Image, "camera/image_raw", SENSOR_QOS)
    infos = client.record(CameraInfo, "camera/camera_info", SENSOR_QOS)
    instruction = client.record(String, "/uam_sim/instruction", INSTRUCTION_QOS)
    assert client.run(60.0, until=lambda: len(images.messages) >= 5 and instruction.messages), sim.log()
    states.clear(), images.clear()
    client.run(2.0)
    assert len(states.messages) / 2.0 >= 50, "joint_states rate"
    assert len(images.messages) / 2.0 >= 8, "camera rate"
    msg = states.messages[-1]
    assert list(msg.name) == list(panda.joints.names) + [panda.gripper.joint]
    np.testing.assert_allclose(np.array(msg.position)[:7], panda.home, atol=0.02)
    image = images.messages[-1]
    assert (image.width, image.height, image.encoding) == (panda.camera.width, panda.camera.height, "rgb8")
    k = infos.messages[-1].k
    assert k[2] == pytest.approx((image.width - 1) / 2) and k[0] > 0
    assert "reach" in instruction.messages[-1].data or instruction.messages[-1].data


def test_tracks_cubic_trajectory_and_replaces_running_one(sim, client, panda):
    names = list(panda.joints.names)
    states = client.record(JointState, "joint_states", SENSOR_QOS)
    pub = client.node.create_publisher(JointTrajectory, panda.controller.trajectory_topic, COMMAND_QOS)
    assert client.run(30.0, until=lambda: len(states.messages) > 10)
    q0 = latest_q(states, names)
    goal = q0.copy()
    goal[0] += 0.3
    mid = 0.5 * (q0 + goal)
    vel = np.zeros(7)
    vel[0] = 0.3 / 2.0 * 1.5  # cubic through the midpoint
    pub.publish(trajectory(names, [1.0, 2.0], [mid, goal], [vel, np.zeros(7)]))
    client.run(1.0)
    assert abs(latest_q(states, names)[0] - mid[0]) < 0.05
    client.run(1.5)
    np.testing.assert_allclose(latest_q(states, names), goal, atol=0.02)

    # Replace mid-way: the arm turns back from where it is, never reaching the first goal.
    far = goal.copy()
    far[0] += 0.4
    pub.publish(trajectory(names, [3.0], [far]))
    client.run(0.5)
    turned_at = latest_q(states, names)[0]
    pub.publish(trajectory(names, [1.0], [goal]))
    states.clear()
    client.run(1.5)
    peak = max(np.array(m.position)[0] for m in states.messages)
    assert peak < far[0] - 0.2 and peak < turned_at + 0.1
    np.testing.assert_allclose(latest_q(states, names), goal, atol=0.02)


@pytest.mark.parametrize("case", ["non_increasing", "nan", "unknown_joint", "partial"])
def test_invalid_trajectory_rejected_without_motion(sim, client, panda, case):
    names = list(panda.joints.names)
    states = client.record(JointState, "joint_states", SENSOR_QOS)
    pub = client.node.create_publisher(JointTrajectory, panda.controller.trajectory_topic, COMMAND_QOS)
    assert client.run(30.0, until=lambda: len(states.messages) > 10)
    q0 = latest_q(states, names)
    target = q0 + 0.2
    if case == "non_increasing":
        msg = trajectory(names, [1.0, 1.0], [target, target])
    elif case == "nan":
        bad = target.copy()
        bad[3] = math.nan
        msg = trajectory(names, [1.0], [bad])
    elif case == "unknown_joint":
        msg = trajectory(names[:-1] + ["mystery_joint"], [1.0], [target])
    else:
        msg = trajectory(names[:3], [1.0], [target[:3]])
    pub.publish(msg)
    states.clear()
    client.run(1.5)
    assert "trajectory rejected" in sim.log()
    worst = max(np.max(np.abs(np.array(m.position)[:7] - q0)) for m in states.messages)
    assert worst < 0.01
