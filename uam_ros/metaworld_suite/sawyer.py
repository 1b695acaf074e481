"""The Sawyer of Meta-World's MJCF in the robot config's terms: joint layout, forward kinematics, gripper.

The robot config (config/robots/sawyer.yaml) names the arm joints and the gripper joint; this class
finds them in the env's compiled model, so the policy's state/action layout (arm joints, then
gripper) and Meta-World's qpos can never silently disagree. Forward kinematics runs on the env's own
MjModel with a private MjData: the hand position a joint target implies is computed on exactly the
model that is simulated.
"""

from __future__ import annotations

import mujoco
import numpy as np

from uam_ros.control.robot_config import RobotConfig

# The body Meta-World's mocap weld drives (SawyerXYZEnv.get_endeff_pos reads it): the hand target.
HAND_BODY = "hand"
# SawyerXYZEnv.tcp_center: the midpoint of these two finger sites (what most success checks measure).
FINGER_SITES = ("rightEndEffector", "leftEndEffector")


class SawyerArm:
    """Reads the policy's state from an env's MjData and computes the hand position of joint targets."""

    def __init__(self, model: mujoco.MjModel, robot: RobotConfig) -> None:
        if robot.gripper is None:
            raise ValueError(f"robot {robot.name!r} has no gripper; Meta-World's Sawyer has one (r_close)")
        self.model = model
        self.robot = robot
        self.arm_qpos = np.array([self._joint(n, "qpos") for n in robot.joints.names])
        self.arm_dof = np.array([self._joint(n, "dof") for n in robot.joints.names])
        self.gripper_qpos = self._joint(robot.gripper.joint, "qpos")
        self.gripper_dof = self._joint(robot.gripper.joint, "dof")
        self.hand_body = model.body(HAND_BODY).id
        self.finger_sites = [model.site(name).id for name in FINGER_SITES]
        self._fk = mujoco.MjData(model)
        self._open = robot.gripper.open_position
        self._closed = robot.gripper.closed_position

    def _joint(self, name: str, kind: str) -> int:
        try:
            joint = self.model.joint(name)
        except KeyError:
            raise ValueError(f"robot {self.robot.name!r}: joint {name!r} is not in the Meta-World model") from None
        kinds = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        if int(self.model.jnt_type[joint.id]) not in kinds:
            raise ValueError(f"robot {self.robot.name!r}: joint {name!r} is not a hinge or slide joint")
        return int(self.model.jnt_qposadr[joint.id] if kind == "qpos" else self.model.jnt_dofadr[joint.id])

    # ------------------------------------------------------------------------------- state
    def arm_positions(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self.arm_qpos].copy()

    def state(self, data: mujoco.MjData) -> np.ndarray:
        """Arm joint positions then the gripper joint: the robot config's action layout."""
        return np.append(data.qpos[self.arm_qpos], data.qpos[self.gripper_qpos])

    def velocities(self, data: mujoco.MjData) -> np.ndarray:
        return np.append(data.qvel[self.arm_dof], data.qvel[self.gripper_dof])

    def hand_position(self, data: mujoco.MjData) -> np.ndarray:
        return data.xpos[self.hand_body].copy()

    def tcp_position(self, data: mujoco.MjData) -> np.ndarray:
        """SawyerXYZEnv.tcp_center: between the fingertips (the recorded end-effector path)."""
        return 0.5 * (data.site_xpos[self.finger_sites[0]] + data.site_xpos[self.finger_sites[1]])

    def gripper_opening(self, data: mujoco.MjData) -> float:
        """0 = closed .. 1 = open, from the gripper joint (the dataset's gripper_opening)."""
        fraction = (data.qpos[self.gripper_qpos] - self._closed) / (self._open - self._closed)
        return float(np.clip(fraction, 0.0, 1.0))

    # ------------------------------------------------------------------------------- kinematics
    def hand_position_fk(self, arm_positions: np.ndarray) -> np.ndarray:
        """Where the hand body is when the arm joints are at ``arm_positions`` (mj_kinematics).

        The hand is in the arm's kinematic chain only, so the other joints (fingers, objects) stay at
        qpos0 in the private MjData and do not matter."""
        self._fk.qpos[self.arm_qpos] = arm_positions
        mujoco.mj_kinematics(self.model, self._fk)
        return self._fk.xpos[self.hand_body].copy()

    # ------------------------------------------------------------------------------- gripper
    def gripper_target(self, effort: float) -> float:
        """Meta-World's gripper effort in [-1, 1] (-1 opens, +1 closes) as a gripper joint target."""
        effort = float(np.clip(effort, -1.0, 1.0))
        return self._open + 0.5 * (effort + 1.0) * (self._closed - self._open)

    def gripper_effort(self, target: float) -> float:
        """The inverse of gripper_target, clipped to [-1, 1] (a policy may overshoot the range)."""
        fraction = (float(target) - self._open) / (self._closed - self._open)
        return float(np.clip(2.0 * fraction - 1.0, -1.0, 1.0))
