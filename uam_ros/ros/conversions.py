"""Messages <-> numpy. cv_bridge is used for images when it is importable (full ROS installs)."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from uam_ros.control.trajectory import TrajectoryCommand
from uam_ros.ros.cdr import ns_to_sec_nanosec

try:  # cv_bridge ships with ROS 2 desktop installs, not as a PyPI wheel
    from cv_bridge import CvBridge, CvBridgeError

    _BRIDGE: "CvBridge | None" = CvBridge()
except ImportError:
    _BRIDGE = None


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_stamp(seconds: float) -> Time:
    sec, nanosec = ns_to_sec_nanosec(int(round(seconds * 1e9)))
    return Time(sec=sec, nanosec=nanosec)


def ns_to_duration(nanoseconds: int, check_fields: bool = True) -> Duration:
    sec, nanosec = ns_to_sec_nanosec(nanoseconds)
    return Duration(sec=sec, nanosec=nanosec, check_fields=check_fields)


def s_to_duration(seconds: float) -> Duration:
    return ns_to_duration(int(round(seconds * 1e9)))


def duration_to_s(duration: Duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def float64_array(values: np.ndarray | list[float]) -> array.array:
    """A float64[] message field's fast path: rosidl setters take an array('d') as is, where a list is
    checked element by element in Python (the bulk of building a trajectory message otherwise)."""
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def trajectory_to_msg(command: TrajectoryCommand, frame_id: str = "") -> JointTrajectory:
    """check_fields=False: rosidl's per-field type assertions cost ~10 % of building the message in the
    tick that sends a chunk; every field here is built with its exact type from arrays that
    command_problems() has already checked (finite, one time per point, within the limits)."""
    msg = JointTrajectory(check_fields=False)
    msg.header.stamp = s_to_stamp(command.stamp_s)
    msg.header.frame_id = frame_id
    msg.joint_names = list(command.joint_names)
    nanoseconds = np.rint(command.time_from_start_s * 1e9).astype(np.int64).tolist()
    positions = np.ascontiguousarray(command.positions, dtype=np.float64)
    velocities = np.ascontiguousarray(command.velocities, dtype=np.float64)
    msg.points = [
        JointTrajectoryPoint(check_fields=False, positions=float64_array(q), velocities=float64_array(v),
                             time_from_start=ns_to_duration(ns, check_fields=False))
        for ns, q, v in zip(nanoseconds, positions, velocities)
    ]
    return msg


def rgb_to_image_msg(rgb: np.ndarray, stamp_s: float, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = s_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def image_msg_to_rgb(msg: Image) -> np.ndarray | None:
    """cv_bridge's conversion when available (it knows more encodings); None means: decode ourselves."""
    if _BRIDGE is None:
        return None
    try:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except CvBridgeError:
        return None


def positions_msg(values: np.ndarray | list[float]) -> Float64MultiArray:
    msg = Float64MultiArray()
    msg.data = float64_array(values)
    return msg
