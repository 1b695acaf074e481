"""The robot description the policy, the safety filter and the sim all read: one YAML per robot.

Adding a robot is adding one file under config/robots/; nothing in the code names a robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uam_ros.config_errors import ConfigError
from uam_ros.schema import FieldProblem, load_yaml, spec


@dataclass(frozen=True, kw_only=True)
class JointsConfig:
    names: list[str] = spec(description="Arm joint names, in the order the policy uses them")
    position_min: list[float] = spec(description="Lower position limit per joint [rad or m]")
    position_max: list[float] = spec(description="Upper position limit per joint [rad or m]")
    velocity_max: list[float] = spec(description="Velocity limit per joint [unit/s]", gt=0.0)
    acceleration_max: list[float] = spec(description="Acceleration limit per joint [unit/s^2]", gt=0.0)

    def check(self) -> None:
        count = len(self.names)
        if count == 0:
            raise FieldProblem("names", "at least one joint is required")
        if len(set(self.names)) != count:
            raise FieldProblem("names", f"duplicate joint names in {self.names}")
        for key in ("position_min", "position_max", "velocity_max", "acceleration_max"):
            if len(getattr(self, key)) != count:
                raise FieldProblem(key, f"has {len(getattr(self, key))} values for {count} joints")
        for i, (low, high) in enumerate(zip(self.position_min, self.position_max)):
            if not low < high:
                raise FieldProblem("position_max", f"joint '{self.names[i]}': max {high} must exceed min {low}")


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    name: str = spec(description="ros2_control controller that executes the trajectories")
    trajectory_topic: str = spec(description="trajectory_msgs/JointTrajectory command topic")
    position_command_topic: str = spec(
        "", description="std_msgs/Float64MultiArray topic for output_mode=position (forward_command_controller)"
    )


@dataclass(frozen=True, kw_only=True)
class GripperConfig:
    joint: str = spec(description="Gripper joint name as published in joint_states")
    open_position: float = spec(description="Joint position when open")
    closed_position: float = spec(description="Joint position when closed")
    command_topic: str = spec(description="std_msgs/Float64MultiArray topic taking the gripper position")

    def check(self) -> None:
        if self.open_position == self.closed_position:
            raise FieldProblem("closed_position", "must differ from open_position")

    @property
    def low(self) -> float:
        return min(self.open_position, self.closed_position)

    @property
    def high(self) -> float:
        return max(self.open_position, self.closed_position)


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    image_topic: str = spec("camera/image_raw", description="sensor_msgs/Image topic")
    width: int = spec(description="Image width the camera publishes [px]", gt=0, le=4096)
    height: int = spec(description="Image height the camera publishes [px]", gt=0, le=4096)


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    rate_hz: float = spec(100.0, description="Control timer rate", gt=0.0, le=1000.0)
    max_position_deviation: float = spec(
        0.35, description="Largest allowed distance of a chunk's first point from the measured state [rad]", gt=0.0
    )
    max_image_age_s: float = spec(0.5, description="An older camera frame is stale: hold", gt=0.0)
    max_joint_state_age_s: float = spec(0.1, description="An older joint state is stale: hold", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class ChunkConfig:
    chunk_size: int = spec(16, description="Action points per predicted chunk", gt=0, le=1024)
    n_action_steps: int = spec(8, description="Points of a chunk executed before the next one is due", gt=0)
    action_rate_hz: float = spec(10.0, description="Time spacing of chunk points", gt=0.0, le=1000.0)
    blend: str = spec("linear", description="How a new chunk meets the old one's tail", choices=("none", "linear"))
    blend_steps: int = spec(4, description="Points over which the old tail fades into the new chunk", ge=0)

    def check(self) -> None:
        if self.n_action_steps > self.chunk_size:
            raise FieldProblem("n_action_steps", f"{self.n_action_steps} exceeds chunk_size {self.chunk_size}")


@dataclass(frozen=True, kw_only=True)
class RobotConfig:
    name: str = spec(description="Robot name (the file's stem by convention)")
    base_frame: str = spec(description="TF frame of the robot base (fixed frame for markers)")
    end_effector_frame: str = spec(description="TF frame of the tool centre point")
    joints: JointsConfig = spec(description="Arm joints and their limits")
    home: list[float] = spec(description="Home pose, one value per arm joint")
    controller: ControllerConfig = spec(description="Trajectory controller")
    gripper: GripperConfig | None = spec(None, description="Gripper, if any")
    camera: CameraConfig = spec(description="Policy camera")
    control: ControlConfig = spec(default_factory=ControlConfig, description="Control loop settings")
    chunk: ChunkConfig = spec(default_factory=ChunkConfig, description="Action chunk settings")
    urdf: str = spec("", description="URDF or .xacro for robot_state_publisher/RViz, relative to this YAML")
    sim: dict | None = spec(None, description="Simulator-specific settings (read by uam_ros.sim)")

    def check(self) -> None:
        if len(self.home) != len(self.joints.names):
            raise FieldProblem("home", f"has {len(self.home)} values for {len(self.joints.names)} joints")
        for i, q in enumerate(self.home):
            if not self.joints.position_min[i] <= q <= self.joints.position_max[i]:
                raise FieldProblem("home", f"joint '{self.joints.names[i]}' home {q} is outside its limits")
        if self.gripper is not None and self.gripper.joint in self.joints.names:
            raise FieldProblem("gripper.joint", f"'{self.gripper.joint}' is also an arm joint")

    @property
    def arm_dof(self) -> int:
        return len(self.joints.names)

    @property
    def action_dim(self) -> int:
        """Arm joints plus one gripper value when the robot has a gripper."""
        return self.arm_dof + (1 if self.gripper is not None else 0)

    @property
    def action_joint_names(self) -> list[str]:
        """The policy's state/action layout: arm joints, then the gripper joint."""
        return list(self.joints.names) + ([self.gripper.joint] if self.gripper else [])

    @property
    def action_home(self) -> list[float]:
        """The home pose in the action layout (gripper open)."""
        return list(self.home) + ([self.gripper.open_position] if self.gripper else [])

    def limits_arrays(self) -> "JointLimitArrays":
        return JointLimitArrays(
            position_min=np.asarray(self.joints.position_min, dtype=np.float64),
            position_max=np.asarray(self.joints.position_max, dtype=np.float64),
            velocity_max=np.asarray(self.joints.velocity_max, dtype=np.float64),
            acceleration_max=np.asarray(self.joints.acceleration_max, dtype=np.float64),
        )


@dataclass(frozen=True)
class JointLimitArrays:
    position_min: np.ndarray
    position_max: np.ndarray
    velocity_max: np.ndarray
    acceleration_max: np.ndarray


def available_robots() -> list[str]:
    from uam_ros.resources import robots_dir

    return sorted(p.stem for p in robots_dir().glob("*.yaml"))


def resolve_robot_path(robot: str) -> Path:
    """A robot is a name under config/robots/ or a path to a YAML file."""
    candidate = Path(robot).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    from uam_ros.resources import robots_dir

    path = robots_dir() / f"{robot}.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "robot", f"unknown robot '{robot}' (available: {available_robots()})")
    return path


def load_robot_config(robot: str | Path) -> RobotConfig:
    return load_yaml(RobotConfig, resolve_robot_path(str(robot)))
