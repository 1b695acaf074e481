"""~/predicted_path over real DDS, and `uam run --sim --foxglove` end to end.

1. A running uam_policy (subprocess) draws each chunk it predicts: the MarkerArray is in the robot
   base frame, coloured monotonically by time, and its path starts and ends at the forward
   kinematics of the first and last points of the JointTrajectory it published with the same stamp.
2. `uam run --sim` starts the node set of policy.launch.py as subprocesses: the policy activates
   itself, takes its instruction from the sim's episode (a remapping of the bringup description),
   and foxglove-sdk serves the topics on 127.0.0.1 (checked with a raw websocket client).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from uam_ros.ros.node_process import NodeProcess  # noqa: E402
from uam_ros.ros.conversions import stamp_to_s  # noqa: E402
from uam_ros.ros.qos import INSTRUCTION_QOS  # noqa: E402


@pytest.fixture(scope="module")
def panda_kinematics():
    from uam_ros.kinematics import RobotKinematics

    return RobotKinematics("franka_panda")


def _markers(array: MarkerArray) -> dict:
    return {(m.ns, m.id): m for m in array.markers}


def _last_diagnostic(recorder, prefix="uam_policy"):
    for msg in reversed(recorder.messages):
        for status in msg.status:
            if status.name.startswith(prefix):
                return {kv.key: kv.value for kv in status.values}
    return {}


def check_path_matches_trajectory(array: MarkerArray, trajectory: JointTrajectory, robot, kinematics) -> None:
    assert array.markers[0].action == Marker.DELETEALL
    assert all(m.header.frame_id == robot.base_frame for m in array.markers)
    markers = _markers(array)
    line = markers[("path", 0)]
    assert line.type == Marker.LINE_STRIP and len(line.points) == len(trajectory.points)
    colours = np.array([[c.r, c.g, c.b] for c in line.colors])
    assert np.all(np.diff(colours[:, 0]) > 0) and np.all(np.diff(colours[:, 2]) < 0), colours
    first = kinematics.tcp_positions(np.array(trajectory.points[0].positions))[0]
    last = kinematics.tcp_positions(np.array(trajectory.points[-1].positions))[0]
    xyz = np.array([[p.x, p.y, p.z] for p in line.points])
    np.testing.assert_allclose(xyz[0], first, atol=1e-6)
    np.testing.assert_allclose(xyz[-1], last, atol=1e-6)


def test_predicted_path_is_the_fk_of_the_predicted_trajectory(tmp_path, client, panda, panda_checkpoint,
                                                              panda_kinematics):
    node = NodeProcess("uam_ros.ros.policy_node", {
        "robot": "franka_panda", "model": panda_checkpoint, "autostart": True, "inference_threads": 1,
    }, tmp_path / "policy.log")
    try:
        names = list(panda.joints.names) + [panda.gripper.joint]
        q = np.array(panda.home + [panda.gripper.open_position])
        rgb = np.random.default_rng(0).integers(0, 255, (panda.camera.height, panda.camera.width, 3), np.uint8)
        paths = client.record(MarkerArray, "/uam_policy/predicted_path")
        predicted = client.record(JointTrajectory, "/uam_policy/predicted_trajectory")

        def paired():
            by_stamp = {stamp_to_s(t.header.stamp): t for t in predicted.messages}
            return [(a, by_stamp[stamp_to_s(a.markers[0].header.stamp)]) for a in paths.messages
                    if stamp_to_s(a.markers[0].header.stamp) in by_stamp and len(a.markers) > 1]

        assert client.run(90.0, lambda: client.publish_joints(names, q), lambda: client.publish_image(rgb),
                          until=lambda: len(paired()) >= 3), node.log()
        for array, trajectory in paired():
            check_path_matches_trajectory(array, trajectory, panda, panda_kinematics)
        later = _markers(paired()[-1][0])
        assert ("previous", 0) in later and later[("previous", 0)].colors[0].a < 0.5  # the last chunk, faded
        assert "dry-run" in later[("status", 0)].text
        assert "predicted_path: forward kinematics" in node.log()
    finally:
        assert node.stop() == 0, node.log()
    assert "Traceback" not in node.log()


# ---- a minimal websocket client (RFC 6455), enough to read what the Foxglove server sends ------------
class _WebSocket:
    def __init__(self, port: int, protocol: str = "foxglove.sdk.v1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def receive(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._read(8))[0]
        return first & 0x0F, self._read(length)

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        header = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126
                                  else bytes([0x80 | 126]) + struct.pack(">H", len(payload)))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()


def test_uam_run_sim_brings_the_policy_up_with_foxglove(tmp_path, client, panda_checkpoint, loopback_port):
    pytest.importorskip("foxglove", reason="foxglove-sdk is not installed (pip install foxglove-sdk)")
    from rclpy.serialization import deserialize_message

    port = loopback_port
    log_dir = tmp_path / "logs"
    run = subprocess.Popen([sys.executable, "-m", "uam_ros.cli", "run", "--robot", "franka_panda", "--sim",
                            "--model", str(panda_checkpoint), "--task", "reach", "--foxglove", "--foxglove-port",
                            str(port), "--log-dir", str(log_dir)],
                           stdout=open(tmp_path / "uam_run.log", "w"), stderr=subprocess.STDOUT,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(log_dir.glob("*.log"))) + \
            (tmp_path / "uam_run.log").read_text()

    websocket = None
    try:
        diagnostics = client.record(DiagnosticArray, "/diagnostics")
        paths = client.record(MarkerArray, "/uam_policy/predicted_path")
        episode = client.record(String, "/uam_sim/instruction", INSTRUCTION_QOS)
        assert client.run(120.0, until=lambda: paths.messages and episode.messages
                          and _last_diagnostic(diagnostics).get("lifecycle") == "active"), logs()
        # The policy plans for the sim's episode: its instruction arrived through the remapping.
        assert client.run(10.0, until=lambda: _last_diagnostic(diagnostics).get("instruction")
                          == episode.messages[-1].data), (_last_diagnostic(diagnostics), logs())
        assert _last_diagnostic(diagnostics)["enabled"] == "False"  # dry-run by default

        websocket = _WebSocket(port)
        channels = {}
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and "/uam_policy/predicted_path" not in channels:
            opcode, payload = websocket.receive()
            if opcode == 1:
                message = json.loads(payload)
                if message.get("op") == "advertise":
                    channels.update({c["topic"]: c for c in message["channels"]})
        path_channel = channels["/uam_policy/predicted_path"]
        assert path_channel["encoding"] == "cdr" and path_channel["schemaName"] == "visualization_msgs/msg/MarkerArray"
        assert path_channel["schemaEncoding"] == "ros2msg"
        assert {"/camera/image_raw", "/uam_policy/predicted_trajectory", "/joint_states"} <= set(channels)
        websocket.send_text(json.dumps({"op": "subscribe",
                                        "subscriptions": [{"id": 7, "channelId": path_channel["id"]}]}))
        deadline = time.monotonic() + 20.0
        received = None
        while time.monotonic() < deadline and received is None:
            opcode, payload = websocket.receive()
            if opcode == 2 and payload[0] == 0x01 and struct.unpack("<I", payload[1:5])[0] == 7:
                received = deserialize_message(payload[13:], MarkerArray)
        assert received is not None and received.markers[0].header.frame_id == "panda_link0"
    finally:
        if websocket is not None:
            websocket.close()
        run.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            code = run.wait(40)
        except subprocess.TimeoutExpired:
            run.kill()
            code = run.wait()
    assert code == 0, logs()
    assert "Traceback" not in logs()
