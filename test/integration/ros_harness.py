"""Talk to a node (started with uam_ros.ros.node_process.NodeProcess) over real DDS on localhost.

The node under test runs exactly as users run it (its own process, its own executor); the test
side is a plain rclpy node that publishes inputs and records what comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from uam_ros.ros.conversions import rgb_to_image_msg, s_to_stamp


class Recorder:
    """Keeps every message received on a topic, with its arrival time."""

    def __init__(self) -> None:
        self.messages: list = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, msg) -> None:
        with self._lock:
            self.messages.append(msg)
            self.times.append(time.monotonic())

    def since(self, t: float) -> list:
        with self._lock:
            return [m for m, at in zip(self.messages, self.times) if at >= t]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.times.clear()


class TestClient:
    """Publishes camera + joint states like a robot driver and records the policy's outputs.

    Each client has its own rclpy context, so its own DDS participant, made and destroyed with it.
    Why: with one participant for the whole session, in 2 of 4 CI runs a later test's fresh subscribers
    matched the client's 49 KB image writer but never received an image (the small joint states still
    flowed). Suspected: Fast DDS shared-memory state left by earlier tests' stopped or killed node
    processes (eProsima/Fast-DDS#5469 describes the same after a subscriber's kill -9); not reproduced
    in isolation, and no failure since the change."""

    def __init__(self, name: str = "uam_test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self.recorders: dict[str, Recorder] = {}

    def record(self, msg_type, topic: str, qos=10) -> Recorder:
        recorder = Recorder()
        self.node.create_subscription(msg_type, topic, recorder, qos)
        self.recorders[topic] = recorder
        return recorder

    def now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def publish_joints(self, names, positions, velocities=None, stamp_s: float | None = None) -> None:
        msg = JointState()
        msg.header.stamp = s_to_stamp(self.now_s() if stamp_s is None else stamp_s)
        msg.name = list(names)
        msg.position = [float(p) for p in positions]
        msg.velocity = [float(v) for v in (velocities if velocities is not None else [0.0] * len(positions))]
        self.joint_pub.publish(msg)

    def publish_image(self, rgb: np.ndarray, stamp_s: float | None = None, encoding: str = "rgb8") -> None:
        msg = rgb_to_image_msg(rgb, self.now_s() if stamp_s is None else stamp_s, "camera")
        msg.encoding = encoding
        self.image_pub.publish(msg)

    def run(self, seconds: float, joints: Callable[[], None] | None = None, image: Callable[[], None] | None = None,
            until: Callable[[], bool] | None = None, joint_hz: float = 100.0, image_hz: float = 15.0) -> bool:
        """Spin for up to `seconds`, calling the publishers at their rates; True if `until` became true."""
        start = time.monotonic()
        next_joint = next_image = start
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if joints is not None and now >= next_joint:
                joints()
                next_joint += 1.0 / joint_hz
            if image is not None and now >= next_image:
                image()
                next_image += 1.0 / image_hz
            self.executor.spin_once(timeout_sec=0.002)
            if until is not None and until():
                return True
        return until is None

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {name} not available")
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        self.node.destroy_client(client)
        return future.result()

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()
        self.context.try_shutdown()


def ensure_rclpy() -> None:
    if not rclpy.ok():
        rclpy.init()
