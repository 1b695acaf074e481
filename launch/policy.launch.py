"""ros2 launch uam_ros policy.launch.py robot:=ur5e model:=/path/to/checkpoint enable:=false [sim:=true] [rviz:=true]
    [record:=runs/pick.mcap]

Starts what uam_ros.ros.bringup.describe() lists for the arguments — the same description
`uam run` starts without ROS launch — and drives the uam_policy lifecycle node to active through
lifecycle events (configure, then activate once configure succeeded), like nav2's lifecycle
bringup. robot_state_publisher runs when the robot config names a URDF.
"""

import os
import sys

import launch
import lifecycle_msgs.msg
from launch.actions import (DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler,
                            SetEnvironmentVariable)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue

from uam_ros.ros.bringup import ARGUMENTS, BringupArgs, describe


def _action(spec):
    """A launch_ros action for one NodeSpec: the installed executable when there is one,
    else `python -m module` (the nodes without a console script)."""
    if spec.executable is not None:
        where = {"package": spec.package, "executable": spec.executable, "arguments": list(spec.arguments)}
    else:
        where = {"executable": sys.executable, "arguments": ["-m", spec.module, *spec.arguments]}
    # Strings stay strings (launch_ros would otherwise read "true", "1.0" or a URDF through YAML).
    parameters = {key: ParameterValue(value, value_type=str) if isinstance(value, str) else value
                  for key, value in spec.parameters.items()}
    kwargs = dict(where, name=spec.name, namespace=spec.namespace, exec_name=spec.name, output="screen",
                  parameters=[parameters] if parameters else [], remappings=list(spec.remappings))
    return LifecycleNode(**kwargs) if spec.lifecycle else Node(**kwargs)


def _lifecycle_to_active(node, name):
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(node),
        transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
    ))
    activate_when_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[
            LogInfo(msg=f"{name} configured: activating"),
            EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
            )),
        ],
    ))
    return [activate_when_configured, configure]


def _setup(context):
    args = BringupArgs.from_strings({a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS})
    entities = []
    for spec in describe(args):
        action = _action(spec)
        entities.append(action)
        if spec.lifecycle:
            entities += _lifecycle_to_active(action, spec.name)
    return entities


def generate_launch_description() -> launch.LaunchDescription:
    # DDS stays on this host unless the user chose otherwise (uam_ros.ros_env.localhost_defaults).
    environment = [] if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") else [
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")]
    arguments = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                       **({"choices": list(a.choices)} if a.choices else {}))
                 for a in ARGUMENTS]
    return launch.LaunchDescription([*environment, *arguments, OpaqueFunction(function=_setup)])
