"""~/predicted_path markers: frame, stamp, time colours, replace-not-accumulate, clamped part in red."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("visualization_msgs", reason="visualization_msgs (ROS 2 messages) is not installed")

from visualization_msgs.msg import Marker  # noqa: E402

from uam_ros.control.safety import SafetyFilter  # noqa: E402
from uam_ros.kinematics import RobotKinematics  # noqa: E402
from uam_ros.overlay import CLAMPED, time_ramp  # noqa: E402
from uam_ros.ros.conversions import stamp_to_s  # noqa: E402
from uam_ros.ros.markers import NAMESPACES, PathScene, predicted_path_markers  # noqa: E402


@pytest.fixture(scope="module")
def kin():
    return RobotKinematics("franka_panda")


def by_ns(array):
    return {(m.ns, m.id): m for m in array.markers[1:]}


def rgb(colour):
    return np.array([colour.r, colour.g, colour.b])


def chunk(robot, n=12, step=0.02):
    home = np.array(robot.home)
    return home + step * np.arange(1, n + 1)[:, None] * np.array([1, 0.5, -0.5, 1, 0, 0.5, 0])


def test_frame_stamp_delete_all_first_and_fixed_ids(kin, panda):
    q = chunk(panda)
    times = 0.1 * np.arange(1, len(q) + 1)
    path = kin.tcp_positions(q)
    scene = PathScene(path=path, times_s=times, gripper_closed=np.arange(len(q)) >= 6, previous=path - 0.01,
                      status="running")
    first = predicted_path_markers(panda.base_frame, 1234.5, scene)
    second = predicted_path_markers(panda.base_frame, 1234.6, scene)
    assert first.markers[0].action == Marker.DELETEALL
    for array, stamp in ((first, 1234.5), (second, 1234.6)):
        assert all(m.header.frame_id == panda.base_frame == "panda_link0" for m in array.markers)
        assert all(abs(stamp_to_s(m.header.stamp) - stamp) < 1e-6 for m in array.markers)
        assert all(m.action == Marker.ADD == Marker.MODIFY for m in array.markers[1:])
        assert all(m.ns in NAMESPACES for m in array.markers[1:])
        assert all(abs(m.pose.orientation.w - 1.0) < 1e-12 for m in array.markers)
    keys = [(m.ns, m.id) for m in first.markers[1:]]
    assert len(keys) == len(set(keys)) and keys == [(m.ns, m.id) for m in second.markers[1:]]
    assert {"path", "points", "gripper", "previous", "status"} <= {ns for ns, _ in keys}


def test_path_follows_fk_with_monotone_time_colours(kin, panda):
    q = chunk(panda)
    times = 0.1 * np.arange(1, len(q) + 1)
    markers = by_ns(predicted_path_markers(panda.base_frame, 1.0, PathScene(path=kin.tcp_positions(q), times_s=times)))
    line, points = markers[("path", 0)], markers[("points", 0)]
    assert line.type == Marker.LINE_STRIP and points.type == Marker.SPHERE_LIST
    xyz = np.array([[p.x, p.y, p.z] for p in line.points])
    np.testing.assert_allclose(xyz[0], kin.tcp_positions(q[0])[0], atol=1e-9)
    np.testing.assert_allclose(xyz[-1], kin.tcp_positions(q[-1])[0], atol=1e-9)
    assert len(line.colors) == len(line.points) == len(q)
    colours = np.array([rgb(c) for c in line.colors])
    assert np.all(np.diff(colours[:, 0]) > 0) and np.all(np.diff(colours[:, 1]) > 0)  # red, green rise
    assert np.all(np.diff(colours[:, 2]) < 0)  # blue falls
    np.testing.assert_allclose(colours, time_ramp(times))
    assert all(c.a == 1.0 for c in line.colors)


def test_gripper_marks_sit_where_the_command_changes(kin, panda):
    q = chunk(panda)
    closed = np.array([False] * 5 + [True] * 4 + [False] * 3)
    path = kin.tcp_positions(q)
    marks = by_ns(predicted_path_markers(panda.base_frame, 1.0, PathScene(path=path, gripper_closed=closed)))[("gripper", 0)]
    xyz = np.array([[p.x, p.y, p.z] for p in marks.points])
    np.testing.assert_allclose(xyz, path[[0, 5, 9]])
    assert rgb(marks.colors[1])[1] < rgb(marks.colors[0])[1]  # closing differs from open


def test_the_clamped_part_is_red(kin, panda):
    """A chunk running past a joint limit: the safety filter clamps the tail; the request is drawn red."""
    limits = panda.limits_arrays()
    q_now = np.array(panda.home)
    asked = q_now + np.linspace(0.05, 2.5, 10)[:, None] * np.eye(7)[3]  # joint 4 past its upper limit -0.0698
    times = 0.1 * np.arange(1, 11)
    safe = SafetyFilter(limits, panda.control.max_position_deviation).filter(times, asked, q_now)
    assert safe.ok and safe.clamped_points > 0
    clamped = np.any(np.abs(asked - safe.positions) > 1e-9, axis=1)
    scene = PathScene(path=kin.tcp_positions(safe.positions), times_s=times, clamped=clamped,
                      requested=kin.tcp_positions(asked), previous=None)
    markers = by_ns(predicted_path_markers(panda.base_frame, 1.0, scene))
    red = markers[("clamped", 0)]
    assert red.type == Marker.LINE_LIST and len(red.points) >= 2 and len(red.points) % 2 == 0
    assert all(np.allclose(rgb(c), CLAMPED) for c in red.colors)
    requested_red = np.array([[p.x, p.y, p.z] for p in markers[("clamped", 1)].points])
    np.testing.assert_allclose(requested_red, kin.tcp_positions(asked[clamped]))
    assert not any(np.allclose(rgb(c), CLAMPED) for c in markers[("path", 0)].colors)  # the commanded path is not red


def test_a_refused_chunk_is_red_and_the_previous_path_faded(kin, panda):
    q = chunk(panda)
    previous = kin.tcp_positions(q)
    scene = PathScene(rejected=kin.tcp_positions(q + 0.5), previous=previous, status="rejected_deviation: far")
    markers = by_ns(predicted_path_markers(panda.base_frame, 1.0, scene))
    assert ("path", 0) not in markers
    assert all(np.allclose(rgb(c), CLAMPED) for c in markers[("rejected", 0)].colors)
    faded = markers[("previous", 0)]
    assert all(c.a < 0.5 for c in faded.colors) and len(faded.points) == len(q)
    assert markers[("status", 0)].type == Marker.TEXT_VIEW_FACING and "rejected" in markers[("status", 0)].text


def test_single_point_chunk_has_no_line(kin, panda):
    path = kin.tcp_positions(np.array([panda.home]))
    markers = by_ns(predicted_path_markers(panda.base_frame, 1.0, PathScene(path=path, times_s=np.array([0.1]))))
    assert ("path", 0) not in markers and len(markers[("points", 0)].points) == 1
