"""What a policy run consists of: the topics to record, their types, QoS and roles.

Each recorded topic has a role (image, joint_states, command, ...) so that replay finds the
camera or the commanded trajectory whatever the topic was called (remapped, namespaced, another
robot config); the role -> topic map is stored in the file's `uam_ros` metadata record.

The QoS stored with each channel (`offered_qos_profiles`, rosbag2's YAML) is the profile the
package's nodes use on that topic (uam_ros.ros.qos). `ros2 bag play` offers it again, which
matters for the latched instruction: the node subscribes transient-local, and a volatile
publisher would never reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from uam_ros.control.robot_config import RobotConfig
from uam_ros.ros.cdr import ns_to_sec_nanosec
from uam_ros.ros.qos import COMMAND_QOS, INSTRUCTION_QOS, SENSOR_QOS

DEFAULT_QOS = QoSProfile(depth=10)  # rclpy's default publisher profile: reliable, volatile

# Roles of the inputs the policy node reads and the outputs it publishes.
INPUT_ROLES = ("image", "joint_states", "instruction")
OUTPUT_ROLES = ("command", "gripper_command", "position_command", "predicted_trajectory", "predicted_path",
                "imagined_future", "diagnostics")
# Recorded only by the node itself (record:=FILE): what went into and came out of each inference.
INFERENCE_ROLES = ("observation", "chunk")


@dataclass(frozen=True)
class TopicSpec:
    role: str
    topic: str  # fully qualified, as stored in the file
    msg_type: type
    qos: QoSProfile


def expand(name: str, namespace: str = "", node: str = "/uam_policy") -> str:
    """Resolve a topic name the way rcl does for `node` in `namespace`, without remapping:
    '/x' stays, '~/x' is the node's private topic, 'x' goes under the namespace."""
    if name.startswith("/"):
        return name
    if name.startswith("~"):
        return expand(node, namespace).rstrip("/") + name[1:]
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{namespace}/{name}"


def policy_topics(robot: RobotConfig, resolve: Callable[[str], str] | None = None, *,
                  instruction_topic: str = "") -> list[TopicSpec]:
    """The topics of a uam_policy for robot, with the names and QoS the node uses.

    resolve: maps the node's names ('~/instruction', 'joint_states', ...) to fully qualified ones;
    the node passes its own resolve_topic_name (which applies its remappings), `uam record` an
    expand() for the policy's name and namespace. instruction_topic overrides where the policy
    reads its instruction (`uam run --sim` remaps it to /uam_sim/instruction).
    """
    resolve = resolve or expand
    names = [
        ("image", robot.camera.image_topic, Image, SENSOR_QOS),
        ("joint_states", "joint_states", JointState, SENSOR_QOS),
        ("instruction", instruction_topic or "~/instruction", String, INSTRUCTION_QOS),
        ("command", robot.controller.trajectory_topic, JointTrajectory, COMMAND_QOS),
        ("predicted_trajectory", "~/predicted_trajectory", JointTrajectory, DEFAULT_QOS),
        ("predicted_path", "~/predicted_path", MarkerArray, QoSProfile(depth=2)),
        ("imagined_future", "~/imagined_future", Image, QoSProfile(depth=2)),
        ("diagnostics", "/diagnostics", DiagnosticArray, DEFAULT_QOS),
    ]
    if robot.gripper is not None:
        names.append(("gripper_command", robot.gripper.command_topic, Float64MultiArray, COMMAND_QOS))
    if robot.controller.position_command_topic:
        names.append(("position_command", robot.controller.position_command_topic, Float64MultiArray, COMMAND_QOS))
    return [TopicSpec(role, resolve(name), msg_type, qos) for role, name, msg_type, qos in names]


def inference_topics(policy_node: str) -> list[TopicSpec]:
    """The node-internal channels of an in-node recording (never published on DDS):
    observation: the state vector of each observation submitted to the model (header.stamp = the
      observation stamp, name = the action joints; MCAP sequence = submission number);
    chunk: each chunk the model returned, before blending and the safety filter (header.stamp =
      observation stamp, point i at (i+1)*dt; MCAP sequence = the number of the inference)."""
    node = policy_node.rstrip("/")
    return [TopicSpec("observation", f"{node}/recording/observation", JointState, DEFAULT_QOS),
            TopicSpec("chunk", f"{node}/recording/chunk", JointTrajectory, DEFAULT_QOS)]


def _duration(duration) -> str:
    sec, nanosec = ns_to_sec_nanosec(int(duration.nanoseconds))
    return f"{{sec: {sec}, nsec: {nanosec}}}"


def offered_qos_yaml(qos: QoSProfile) -> str:
    """One offered profile in rosbag2's channel-metadata YAML (metadata version >= 9: policies as
    their short names, what rosbag2 in Jazzy and later writes and reads)."""
    return (
        f"- history: {qos.history.short_key}\n"
        f"  depth: {int(qos.depth)}\n"
        f"  reliability: {qos.reliability.short_key}\n"
        f"  durability: {qos.durability.short_key}\n"
        f"  deadline: {_duration(qos.deadline)}\n"
        f"  lifespan: {_duration(qos.lifespan)}\n"
        f"  liveliness: {qos.liveliness.short_key}\n"
        f"  liveliness_lease_duration: {_duration(qos.liveliness_lease_duration)}\n"
        f"  avoid_ros_namespace_conventions: {'true' if qos.avoid_ros_namespace_conventions else 'false'}\n"
    )
