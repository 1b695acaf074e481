"""uam_foxglove: serve ROS topics live to Foxglove through foxglove-sdk's websocket server.

Messages are forwarded as they arrive on the wire (serialized CDR, no decode/encode) on channels
whose schema is the ROS 2 message definition (encoding ``ros2msg``), which Foxglove decodes
natively, like foxglove_bridge does on a ROS install. The server binds to 127.0.0.1 only: to look
from another machine, forward the port over SSH (``ssh -L 8765:127.0.0.1:8765 robot``).

    uam run --sim --foxglove          # then open ws://127.0.0.1:8765 in Foxglove
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from uam_ros.ros.params import declare
from uam_ros.ros.node_main import run_node
from uam_ros.schema import spec

HOST = "127.0.0.1"  # never another interface: the stream carries camera images of the workspace
SEPARATOR = "=" * 80
_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
               "int64", "uint64", "string", "wstring"}


@dataclass(frozen=True, kw_only=True)
class FoxgloveBridgeParams:
    port: int = spec(8765, description="Websocket port on 127.0.0.1 (0: any free port)", ge=0, le=65535)


TOPICS_DESCRIPTION = "Topics to serve, each 'name=pkg/msg/Type' (uam_ros.ros.bringup.visual_topics)"


def _msg_file(type_name: str) -> Path:
    from ament_index_python.packages import get_package_share_directory

    package, _, name = type_name.split("/")
    return Path(get_package_share_directory(package)) / "msg" / f"{name}.msg"


def _field_types(text: str, package: str) -> list[str]:
    """Non-primitive field types of a .msg, as pkg/msg/Type."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split(None, 1)
        if len(tokens) < 2 or "=" in tokens[1]:
            continue  # a constant
        kind = tokens[0]
        base = re.sub(r"\[.*?\]$", "", kind)
        base = re.sub(r"<=\d+$", "", base)
        if base in _PRIMITIVES:
            continue
        if "/" not in base:
            base = f"{package}/{base}"
        pkg, name = base.split("/")[0], base.split("/")[-1]
        out.append(f"{pkg}/msg/{name}")
    return out


def ros2msg_definition(type_name: str) -> str:
    """The full ros2msg schema of a message: its .msg text, then every type it uses, each under a
    ``MSG: pkg/msg/Type`` line (the layout rosbag2's MCAP writer and foxglove_bridge use)."""
    main = _msg_file(type_name).read_text()
    parts, seen, stack = [], {type_name}, list(reversed(_field_types(main, type_name.split("/")[0])))
    while stack:
        dependency = stack.pop()
        if dependency in seen:
            continue
        seen.add(dependency)
        text = _msg_file(dependency).read_text()
        parts.append(f"{SEPARATOR}\nMSG: {dependency}\n{text.rstrip()}\n")
        stack.extend(reversed(_field_types(text, dependency.split("/")[0])))
    return "\n".join([main.rstrip() + "\n", *parts])


def message_class(type_name: str):
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class FoxgloveBridge(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("uam_foxglove", **kwargs)
        import foxglove

        self.params = declare(self, FoxgloveBridgeParams)
        topics = self.declare_parameter(
            "topics", Parameter.Type.STRING_ARRAY,
            ParameterDescriptor(name="topics", type=ParameterType.PARAMETER_STRING_ARRAY, description=TOPICS_DESCRIPTION),
        ).value or []
        self.server = foxglove.start_server(name="uam_ros", host=HOST, port=self.params.port)
        self.channels: dict[str, object] = {}
        for entry in topics:
            topic, _, type_name = entry.partition("=")
            try:
                msg_type = message_class(type_name)
                schema = foxglove.Schema(name=type_name, encoding="ros2msg",
                                         data=ros2msg_definition(type_name).encode())
            except (ImportError, AttributeError, LookupError, OSError, ValueError) as exc:
                self.get_logger().warning(f"not serving {topic}: no definition of {type_name!r} here ({exc})")
                continue
            topic = self.resolve_topic_name(topic)
            channel = foxglove.Channel(topic, schema=schema, message_encoding="cdr")
            latched = topic.endswith("/tf_static")
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL) if latched else qos_profile_sensor_data
            self.create_subscription(msg_type, topic, self._forward(channel), qos, raw=True)
            self.channels[topic] = channel
        self.get_logger().info(f"Foxglove: ws://{HOST}:{self.server.port} serving {sorted(self.channels)}")

    def _forward(self, channel):
        clock = self.get_clock()

        def callback(data: bytes) -> None:
            channel.log(data, log_time=clock.now().nanoseconds)

        return callback

    def close(self) -> None:
        self.server.stop()


def main(args: list[str] | None = None) -> None:
    run_node(FoxgloveBridge, args)


if __name__ == "__main__":
    main()
