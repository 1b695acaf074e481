"""One Meta-World env for one task: reset to an episode seed, render our camera, step by joint target.

Why a wrapper and not the gymnasium env as is: the policy sees the world only through a camera frame
and the joint state and acts only through joint targets, as on our robots; Meta-World's observation
vector (privileged object and goal positions) goes only to its scripted policies. Rendering uses
mujoco.Renderer (EGL headless) on the env's model at any size, not the env's own 480x480 renderer,
without shadows and reflections (see RENDER_FLAGS_OFF).

Timing: Meta-World steps at 1 / (timestep x frame_skip) = 80 Hz; the robot config's
``chunk.action_rate_hz`` sets how many env steps one joint target spans (``stride``: 2 at 40 Hz).
A target is executed like a trajectory controller executes a point: the arm's joint target is
interpolated linearly from the previous target over the stride's env steps, each interpolated point
becomes a hand target by forward kinematics and then a mocap delta by the HandTracker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from uam_ros.control.robot_config import RobotConfig, load_robot_config
from uam_ros.metaworld_suite.control import HandTracker
from uam_ros.metaworld_suite.sawyer import SawyerArm
from uam_ros.metaworld_suite.tasks import env_class, env_name, task_for

# "corner" shows the whole table with the objects ~1.6x larger than "corner2" (3.8 vs 2.4 px per
# 4 cm at 128 px, measured over 20 layouts of every MT10 task; object and goal in view in all of them).
DEFAULT_CAMERA = "corner"
# Shadows and reflections cost 90 % of a frame on a CPU-only EGL (Mesa) renderer: 0.26 s -> 0.046 s per
# 128 px frame measured here. The policy needs neither, so they are off.
RENDER_FLAGS_OFF = ("mjRND_SHADOW", "mjRND_REFLECTION")
# Meta-World mounts these cameras upside down (their image "up" is world down); we show them upright.
UPSIDE_DOWN_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})


def action_stride(env_rate_hz: float, action_rate_hz: float) -> int:
    """Env steps per joint target; the robot's action rate must divide the env rate."""
    stride = env_rate_hz / action_rate_hz
    if stride < 1 or abs(stride - round(stride)) > 1e-6:
        raise ValueError(f"chunk.action_rate_hz {action_rate_hz} must divide Meta-World's {env_rate_hz:g} Hz "
                         f"into a whole number of env steps (e.g. {env_rate_hz:g}, {env_rate_hz / 2:g}, "
                         f"{env_rate_hz / 4:g})")
    return int(round(stride))


class MetaWorldScene:
    """A Meta-World env of one MT10 task, driven by joint targets or by native actions."""

    def __init__(self, task: str, robot: RobotConfig | str = "sawyer", *, camera: str = DEFAULT_CAMERA,
                 image_size: tuple[int, int] | None = None) -> None:
        self.task = env_name(task)
        self.robot = robot if isinstance(robot, RobotConfig) else load_robot_config(robot)
        self.env = env_class(self.task)()
        self.model, self.data = self.env.model, self.env.data
        self.arm = SawyerArm(self.model, self.robot)
        self.env_dt = float(self.model.opt.timestep * self.env.frame_skip)
        self.stride = action_stride(1.0 / self.env_dt, self.robot.chunk.action_rate_hz)
        self.action_dt = self.stride * self.env_dt
        self.max_steps = int(self.env.max_path_length)  # Meta-World's horizon (500 env steps)
        self.camera = camera
        self.model.camera(camera)  # raises KeyError naming the camera if the model has none such
        self.image_size = image_size or (self.robot.camera.height, self.robot.camera.width)
        self.tracker = HandTracker()
        self._renderer: Any = None
        self._closed = False
        self.seed: int | None = None
        self.obs: np.ndarray | None = None
        self.steps = 0
        self.success = False
        self._last_arm_target = np.zeros(self.robot.arm_dof)

    # ------------------------------------------------------------------------------- episode
    def reset(self, seed: int) -> np.ndarray:
        """Start episode ``seed`` (one of Meta-World's layouts, see tasks.py); returns its observation."""
        self.env.set_task(task_for(self.task, seed))
        self.obs, _ = self.env.reset()
        self.seed = seed
        self.steps = 0
        self.success = False
        self.tracker.reset()
        self._last_arm_target = self.arm.arm_positions(self.data)
        return self.obs

    @property
    def done(self) -> bool:
        """Succeeded, or Meta-World's horizon reached (the env refuses further steps)."""
        return self.success or self.steps >= self.max_steps

    def step_native(self, action: np.ndarray) -> bool:
        """One env step with Meta-World's own action (mocap delta + gripper effort); returns success so far."""
        if self.steps >= self.max_steps:
            raise RuntimeError(f"{self.task}: episode is over ({self.max_steps} env steps)")
        self.obs, _, _, _, info = self.env.step(np.asarray(action, dtype=np.float64))
        self.steps += 1
        self.success = self.success or bool(info["success"])
        return self.success

    def step_joint_target(self, target: np.ndarray) -> bool:
        """Execute one joint target (arm joints + gripper) over ``stride`` env steps; returns success so
        far. Stops early at success or at the horizon, like Meta-World's evaluation."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (self.robot.action_dim,):
            raise ValueError(f"joint target has shape {target.shape}, expected ({self.robot.action_dim},) "
                             f"for {self.robot.action_joint_names}")
        arm_target = target[: self.robot.arm_dof]
        effort = self.arm.gripper_effort(target[self.robot.arm_dof])
        start = self._last_arm_target
        for k in range(1, self.stride + 1):
            if self.done:
                break
            waypoint = start + (arm_target - start) * (k / self.stride)
            hand_target = self.arm.hand_position_fk(waypoint)
            xyz = self.tracker.action(hand_target, self.arm.hand_position(self.data), self.env.action_scale)
            self.step_native(np.append(xyz, effort))
        self._last_arm_target = arm_target
        return self.success

    # ------------------------------------------------------------------------------- observation
    def state(self) -> np.ndarray:
        return self.arm.state(self.data)

    def render(self) -> np.ndarray:
        """The policy camera's RGB frame (H, W, 3) uint8, upright."""
        import mujoco

        if self._renderer is None:
            height, width = self.image_size
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
            for flag in RENDER_FLAGS_OFF:
                self._renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
        self._renderer.update_scene(self.data, camera=self.camera)
        image = self._renderer.render()
        if self.camera in UPSIDE_DOWN_CAMERAS:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def object_and_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """The main object's and the goal's positions from Meta-World's observation (for the record)."""
        assert self.obs is not None
        return np.asarray(self.obs[4:7], dtype=np.float64), np.asarray(self.obs[-3:], dtype=np.float64)

    def close(self) -> None:
        """Free the renderer's EGL context and the env (idempotent)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if not self._closed:
            self._closed = True
            self.env.close()

    def __enter__(self) -> MetaWorldScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
