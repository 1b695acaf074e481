"""The CDR bytes of the commands the control tick publishes, built with numpy in a few calls.

Why: rclpy publishes a `bytes` object as an already serialized message (Publisher.publish ->
publish_raw), which skips building a Python JointTrajectory (16 point objects, their arrays and
durations) and rmw's conversion of it back into C: together a third of the tick that sends a chunk
(benchmarks/node_overhead.py). The bytes are exactly those rmw_fastrtps_cpp puts on the wire when
the message conversions.trajectory_to_msg builds is published (test/integration/test_cdr_wire.py),
and rclpy's serialize_message of it byte for byte except its uninitialised padding and a buffer that
can run on past the message's end (test/unit/test_cdr.py): subscribers, recordings and `ros2 bag`
read the same message.

Plain (XCDR1) little-endian CDR as rmw_fastrtps_cpp writes ROS 2 messages: a 4-byte encapsulation
header, then each field at an offset aligned to its size, counted from the end of that header.
No ROS import here: this module is pure numpy, like the control code it serves.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from uam_ros.control.trajectory import TrajectoryCommand

ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"
_U32 = struct.Struct("<I")
_TIME = struct.Struct("<iI")


def _pad(offset: int, alignment: int) -> int:
    return -offset % alignment


def _string(text: str, offset: int) -> bytes:
    """A CDR string at offset (4-aligned): length with the terminating NUL, the bytes, the NUL."""
    raw = text.encode("utf-8")
    return b"\x00" * _pad(offset, 4) + _U32.pack(len(raw) + 1) + raw + b"\x00"


def ns_to_sec_nanosec(nanoseconds: int) -> tuple[int, int]:
    """builtin_interfaces Time/Duration fields: nanosec always in [0, 1e9), as rclpy's Time does."""
    return nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000


@lru_cache(maxsize=8)
def _point_dtype(joints: int) -> np.dtype:
    """One JointTrajectoryPoint starting at an 8-aligned offset: its float64[] lengths, each with the
    4 bytes that align its data to 8, positions, velocities, empty accelerations and effort (lengths
    only), and the time_from_start Duration. 32 + 16 * joints bytes, so the next point is 8-aligned too."""
    return np.dtype([("n_positions", "<u4"), ("pad0", "<u4"), ("positions", "<f8", (joints,)),
                     ("n_velocities", "<u4"), ("pad1", "<u4"), ("velocities", "<f8", (joints,)),
                     ("n_accelerations", "<u4"), ("n_effort", "<u4"), ("sec", "<i4"), ("nanosec", "<u4")])


@lru_cache(maxsize=8)
def _names_block(joint_names: tuple[str, ...], offset: int) -> bytes:
    """joint_names (sequence<string>) written at offset: the same for every command of a robot."""
    out = b"\x00" * _pad(offset, 4) + _U32.pack(len(joint_names))
    for name in joint_names:
        out += _string(name, offset + len(out))
    return out


def trajectory_cdr(command: TrajectoryCommand, frame_id: str = "") -> bytes:
    """trajectory_msgs/JointTrajectory of command, serialized (what trajectory_to_msg + rmw give).

    Like trajectory_to_msg it trusts the command: command_problems() has checked it (finite, one
    time per point, positions and velocities of one shape)."""
    stamp_ns = int(round(command.stamp_s * 1e9))
    head = _TIME.pack(*ns_to_sec_nanosec(stamp_ns)) + _string(frame_id, 8)
    head += _names_block(tuple(command.joint_names), len(head))
    head += b"\x00" * _pad(len(head), 4) + _U32.pack(command.positions.shape[0])
    points, joints = command.positions.shape
    body = np.zeros(points, dtype=_point_dtype(joints))
    body["n_positions"] = body["n_velocities"] = joints
    body["positions"] = command.positions
    body["velocities"] = command.velocities
    nanoseconds = np.rint(np.asarray(command.time_from_start_s, dtype=np.float64) * 1e9).astype(np.int64)
    body["sec"], body["nanosec"] = np.divmod(nanoseconds, 1_000_000_000)
    data = body.tobytes()
    if len(head) % 8 and points:
        # The first point starts 4 bytes past an 8-byte boundary: its positions follow their length
        # without the 4 aligning bytes (every later point starts 8-aligned again).
        data = data[:4] + data[8:]
    return ENCAPSULATION_CDR_LE + head + data


def float64_multiarray_cdr(values: Sequence[float] | np.ndarray) -> bytes:
    """std_msgs/Float64MultiArray with an empty layout (what conversions.positions_msg builds).
    rclpy's serializer writes the 4 bytes that align data for an empty array too; so does this."""
    data = np.ascontiguousarray(values, dtype="<f8")
    # layout.dim (empty sequence), layout.data_offset, then data: its length at 8, 4 aligning bytes
    # (written for an empty array too), the float64s from 16.
    return ENCAPSULATION_CDR_LE + _U32.pack(0) + _U32.pack(0) + _U32.pack(data.shape[0]) + b"\x00" * 4 + data.tobytes()
