"""QoS choices in one place, with the reason for each."""

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Best effort subscribers match both reliable and best-effort publishers, and never make a camera
# or joint-state driver retransmit: a late frame is worth less than the next one.
SENSOR_QOS = qos_profile_sensor_data

# Latched: a node started after the instruction was sent still receives it.
INSTRUCTION_QOS = QoSProfile(
    depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# Commands must arrive; joint_trajectory_controller subscribes reliable/volatile.
COMMAND_QOS = QoSProfile(
    depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def display_only_events() -> PublisherEventCallbacks:
    """For publishers that only feed displays (rviz, Foxglove, /diagnostics): no QoS event handlers.

    rclpy gives every publisher two default handlers (incompatible QoS, incompatible type) that only
    log; each is one more entity the single-threaded executor walks on every spin, i.e. on every joint
    state, frame and control tick. The command publishers and the input subscriptions keep theirs
    (a driver that silently ignores our commands must be reported); for a display topic the
    subscriber (rviz) reports the mismatch itself.
    """
    return PublisherEventCallbacks(use_default_callbacks=False)
