"""QoS choices in one place, with the reason for each."""

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
