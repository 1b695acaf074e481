"""The ros2msg schema text stored in recordings: complete, in rosbag2's format, and parseable by an
independent decoder (mcap_ros2's, the same grammar Foxglove implements)."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (the recording stores ROS 2 messages)")

from mcap.records import Schema  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from uam_ros.recording.msgdefs import (  # noqa: E402
    SEPARATOR, MessageDefinitionError, dependencies, interface_file, ros2msg_definition, split_type_name,
    type_hash, type_name_of,
)


def sections(text: str) -> dict[str, str]:
    """'root' and 'MSG: name' -> the text of each part."""
    parts = text.split(f"\n{SEPARATOR}\n")
    out = {"root": parts[0]}
    for part in parts[1:]:
        header, _, body = part.partition("\n")
        assert header.startswith("MSG: "), header
        assert header[5:] not in out, f"{header} appears twice"
        out[header[5:]] = body
    return out


def test_joint_trajectory_definition_has_each_dependency_once_with_its_file_text():
    text = ros2msg_definition("trajectory_msgs/msg/JointTrajectory")
    parts = sections(text)
    assert set(parts) == {"root", "std_msgs/Header", "builtin_interfaces/Time", "trajectory_msgs/JointTrajectoryPoint",
                          "builtin_interfaces/Duration"}
    assert parts["root"] == interface_file("trajectory_msgs/msg/JointTrajectory").read_text()
    point = interface_file("trajectory_msgs/JointTrajectoryPoint").read_text()
    assert parts["trajectory_msgs/JointTrajectoryPoint"] == point
    assert parts["builtin_interfaces/Time"] == interface_file("builtin_interfaces/msg/Time").read_text()
    # rosbag2's layout: each dependency right after the one that first uses it, depth first.
    order = [line[5:] for line in text.splitlines() if line.startswith("MSG: ")]
    assert order.index("builtin_interfaces/Time") == order.index("std_msgs/Header") + 1
    assert all(line == "=" * 80 for line in text.splitlines() if line.startswith("="))


def test_dependencies_skip_primitives_constants_bounds_and_comments_and_resolve_same_package_types():
    text = (
        "# Header header   (a comment, not a field)\n"
        "uint8 OK=0\n"
        "string<=10 short_name\n"
        "bool[<=3] flags\n"
        "float64[] values\n"
        "wstring label\n"
        "  std_msgs/Header header\n"
        "JointTrajectoryPoint[] points  # trailing Pose comment\n"
        "geometry_msgs/Pose[4] poses\n"
    )
    assert dependencies(text, "trajectory_msgs") == ["geometry_msgs/Pose", "std_msgs/Header",
                                                     "trajectory_msgs/JointTrajectoryPoint"]


@pytest.mark.parametrize("module, name", [
    ("sensor_msgs.msg", "Image"), ("sensor_msgs.msg", "JointState"), ("std_msgs.msg", "String"),
    ("std_msgs.msg", "Float64MultiArray"), ("trajectory_msgs.msg", "JointTrajectory"),
    ("diagnostic_msgs.msg", "DiagnosticArray"), ("visualization_msgs.msg", "MarkerArray"),
])
def test_an_independent_decoder_reads_rclpy_bytes_with_our_schema(module, name):
    import importlib

    from rclpy.serialization import deserialize_message

    msg_type = getattr(importlib.import_module(module), name)
    type_name = type_name_of(msg_type)
    assert type_name == f"{module.split('.')[0]}/msg/{name}"
    msg = _example(msg_type)
    schema = Schema(id=1, name=type_name, encoding="ros2msg", data=ros2msg_definition(type_name).encode())
    decoded = DecoderFactory().decoder_for("cdr", schema)(serialize_message(msg))
    # Compare through a field the message actually carries.
    again = deserialize_message(serialize_message(msg), msg_type)
    assert again == msg
    assert _signature(decoded) == _signature(msg)


def _example(msg_type):
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
    from trajectory_msgs.msg import JointTrajectoryPoint
    from visualization_msgs.msg import Marker

    msg = msg_type()
    name = msg_type.__name__
    if name == "Image":
        msg.header.frame_id, msg.height, msg.width, msg.encoding, msg.step = "cam", 2, 3, "rgb8", 9
        msg.data = bytes(range(18))
    elif name == "JointState":
        msg.name, msg.position, msg.velocity = ["a", "b"], [0.5, -1.25], [0.0, 2.0]
    elif name == "String":
        msg.data = "pick up the red cube"
    elif name == "Float64MultiArray":
        msg.data = [0.04]
    elif name == "JointTrajectory":
        msg.joint_names = ["j1", "j2"]
        msg.points = [JointTrajectoryPoint(positions=[0.1, 0.2], velocities=[0.0, 0.3]) for _ in range(3)]
        msg.points[2].time_from_start.nanosec = 300_000_000
    elif name == "DiagnosticArray":
        msg.status = [DiagnosticStatus(level=b"\x01", name="uam_policy", message="stale_image",
                                       values=[KeyValue(key="holds", value="2")])]
    elif name == "MarkerArray":
        marker = Marker(ns="path", id=7, type=Marker.LINE_STRIP)
        marker.points = []
        marker.text = "running"
        msg.markers = [marker]
    return msg


def _signature(msg) -> str:
    """The message's distinguishing content, whichever decoder produced it."""
    name = type(msg).__name__
    if name == "Image":
        return f"{msg.header.frame_id}{msg.height}{msg.width}{msg.encoding}{bytes(msg.data).hex()}"
    if name == "JointState":
        return f"{list(msg.name)}{list(msg.position)}{list(msg.velocity)}"
    if name in ("String",):
        return msg.data
    if name == "Float64MultiArray":
        return str(list(msg.data))
    if name == "JointTrajectory":
        velocities = [list(p.velocities) for p in msg.points]
        return f"{list(msg.joint_names)}{velocities}{msg.points[2].time_from_start.nanosec}"
    if name == "DiagnosticArray":
        return f"{msg.status[0].name}{msg.status[0].message}{msg.status[0].values[0].value}"
    return f"{msg.markers[0].ns}{msg.markers[0].id}{msg.markers[0].text}"


def test_type_names_and_hashes():
    from sensor_msgs.msg import Image

    assert split_type_name("std_msgs/Header") == ("std_msgs", "msg", "Header")
    assert type_hash("sensor_msgs/msg/Image").startswith("RIHS01_") and len(type_hash("sensor_msgs/msg/Image")) == 71
    assert type_hash("sensor_msgs/msg/Image") != type_hash("sensor_msgs/msg/JointState")
    assert type_name_of(Image) == "sensor_msgs/msg/Image"
    with pytest.raises(MessageDefinitionError, match="not a ROS 2 type name"):
        split_type_name("Image")
    with pytest.raises(MessageDefinitionError, match="no definition for no_such_msgs/msg/Thing"):
        ros2msg_definition("no_such_msgs/msg/Thing")
