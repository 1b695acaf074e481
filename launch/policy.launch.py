"""ros2 launch uam_ros policy.launch.py robot:=ur5e model:=/path/to/checkpoint enable:=false

Starts uam_policy as a lifecycle node and drives it to active through lifecycle events
(configure, then activate once configure succeeded), like nav2's lifecycle bringup.
"""

import launch
import lifecycle_msgs.msg
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

ARGUMENTS = {
    "robot": ("franka_panda", "Robot: a name in config/robots or a path to a robot YAML"),
    "model": ("", "Checkpoint directory; empty: models/default/<robot>"),
    "backend": ("auto", "auto | tensorrt | onnxruntime | torch"),
    "enable": ("false", "Command the robot (false = dry-run: predict and visualise only)"),
    "instruction": ("", "Initial language instruction"),
    "use_sim_time": ("false", "Use /clock"),
    "namespace": ("", "Namespace of the policy node"),
}


def generate_launch_description() -> launch.LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in ARGUMENTS.items()]
    policy = LifecycleNode(
        package="uam_ros",
        executable="uam_policy",
        name="uam_policy",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[{
            "robot": LaunchConfiguration("robot"),
            "model": LaunchConfiguration("model"),
            "backend": LaunchConfiguration("backend"),
            "enable": LaunchConfiguration("enable"),
            "instruction": LaunchConfiguration("instruction"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
        }],
    )
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(policy),
        transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
    ))
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=policy, start_state="configuring", goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(policy),
            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
        ))],
    ))
    return launch.LaunchDescription([*arguments, policy, activate_when_configured, configure])
