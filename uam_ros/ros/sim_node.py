"""uam_sim: a MuJoCo arm behind the topics a real arm's driver offers.

Publishes joint_states and the camera, executes JointTrajectory messages the way
joint_trajectory_controller does (uam_ros.sim.jtc), takes gripper position commands, and reports
the episode (instruction, success). Physics follows the ROS clock in real time -- or, with
publish_clock, owns the ROS time: it publishes /clock and may run slower than real time
(real_time_factor), as Gazebo does, so that a CPU too slow to render and infer at the world's pace
still sees the world at the latency a robot computer would give (run the other nodes with
use_sim_time:=true).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from uam_ros.config_errors import ConfigError
from uam_ros.ros.bringup import SPLITS as BRINGUP_SPLITS
from uam_ros.ros.conversions import duration_to_s, rgb_to_image_msg, s_to_stamp, stamp_to_s
from uam_ros.ros.params import declare
from uam_ros.ros.qos import COMMAND_QOS, INSTRUCTION_QOS, SENSOR_QOS
from uam_ros.ros.node_main import run_node
from uam_ros.schema import spec


@dataclass(frozen=True, kw_only=True)
class SimNodeParams:
    robot: str = spec("franka_panda", description="Robot: a name in config/robots or a path to a robot YAML")
    task: str = spec("reach", description="Task of the episode (uam_ros.sim.tasks)")
    split: str = spec("train", description="Episode split (uam_ros.sim.tasks.SPLITS)", choices=BRINGUP_SPLITS)
    seed: int = spec(0, description="Episode seed", ge=0)
    joint_state_rate_hz: float = spec(100.0, description="joint_states publish rate (physics runs at 500 Hz)", gt=0.0, le=500.0)
    camera_rate_hz: float = spec(15.0, description="Camera publish rate", gt=0.0, le=120.0)
    camera: str = spec("scene", description="Camera to publish", choices=("scene", "wrist"))
    publish_clock: bool = spec(False, description="Own the ROS time: publish /clock from the physics "
                               "(run the other nodes with use_sim_time:=true)")
    real_time_factor: float = spec(1.0, description="Simulated seconds per wall-clock second (needs publish_clock)",
                                   gt=0.0, le=1.0)


def camera_info(width: int, height: int, fovy_deg: float, frame_id: str, stamp_s: float) -> CameraInfo:
    """Pinhole intrinsics of a MuJoCo camera (square pixels, vertical field of view fovy)."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    info = CameraInfo()
    info.header.stamp = s_to_stamp(stamp_s)
    info.header.frame_id = frame_id
    info.width, info.height = width, height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0  # pixel centres at integers (ROS/OpenCV convention)
    info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class CameraThread:
    """Renders off the physics thread, so a slow CPU-rendered frame never delays joint_states.

    The physics thread hands over a snapshot (qpos, mocap poses, stamp); this thread owns its own
    MjData, OpenGL context and renderer (a GL context belongs to the thread that made it).
    """

    def __init__(self, publish, width: int, height: int) -> None:
        self._publish = publish
        self._size = (width, height)
        self._cv = threading.Condition()
        self._snapshot = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="uam-sim-camera", daemon=True)
        self._thread.start()

    def submit(self, model, camera: str, qpos: np.ndarray, mocap_pos: np.ndarray, mocap_quat: np.ndarray,
               stamp_s: float) -> None:
        with self._cv:
            self._snapshot = (model, camera, qpos.copy(), mocap_pos.copy(), mocap_quat.copy(), stamp_s)
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(5.0)

    def _run(self) -> None:
        import mujoco

        model = data = renderer = None
        while True:
            with self._cv:
                while self._snapshot is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    break
                snapshot, self._snapshot = self._snapshot, None
            new_model, camera, qpos, mocap_pos, mocap_quat, stamp = snapshot
            if new_model is not model:
                if renderer is not None:
                    renderer.close()
                model = new_model
                data = mujoco.MjData(model)
                model.vis.quality.offsamples = 0  # MSAA doubles a CPU-rendered frame's cost
                renderer = mujoco.Renderer(model, height=self._size[1], width=self._size[0])
                # Shadows and reflections cost ~10x the frame time with software OpenGL.
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            data.qpos[:] = qpos
            data.mocap_pos[:] = mocap_pos
            data.mocap_quat[:] = mocap_quat
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            self._publish(renderer.render(), stamp, model.cam_fovy[model.camera(camera).id])
        if renderer is not None:
            renderer.close()


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("uam_sim", **kwargs)
        from uam_ros.control.robot_config import load_robot_config
        from uam_ros.sim.jtc import TrajectoryExecutor

        self.params = declare(self, SimNodeParams)
        self._check_clock_params()
        self.robot = load_robot_config(self.params.robot)
        self.executor_jtc = TrajectoryExecutor(self.robot.joints.names)
        self.world = None
        self._gripper_target: float | None = None
        self._sim_clock_s: float | None = None  # ROS time the physics has reached
        self._last_camera_s = -math.inf
        self._success_sent: bool | None = None
        self.reset_episode()

        topic = self.robot.controller.trajectory_topic
        self.create_subscription(JointTrajectory, topic, self._on_trajectory, COMMAND_QOS)
        if self.robot.gripper is not None:
            self.create_subscription(Float64MultiArray, self.robot.gripper.command_topic, self._on_gripper, COMMAND_QOS)
        self._joint_pub = self.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self._image_pub = self.create_publisher(Image, self.robot.camera.image_topic, SENSOR_QOS)
        info_topic = self.robot.camera.image_topic.rsplit("/", 1)[0] + "/camera_info"
        self._info_pub = self.create_publisher(CameraInfo, info_topic, SENSOR_QOS)
        self._instruction_pub = self.create_publisher(String, "~/instruction", INSTRUCTION_QOS)
        self._episode_pub = self.create_publisher(String, "~/episode", INSTRUCTION_QOS)
        self._success_pub = self.create_publisher(Bool, "~/success", INSTRUCTION_QOS)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if self.params.publish_clock else None
        # The simulated clock starts at the wall time, so that stamps read as dates in logs and never
        # come near 0 (a trajectory stamped 0 means "start now" to joint_trajectory_controller).
        self._clock_origin_s, self._wall_origin_s = self.get_clock().now().nanoseconds * 1e-9, time.monotonic()
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._publish_episode()
        self._camera = CameraThread(self._publish_frame, self.robot.camera.width, self.robot.camera.height)
        self._timer = self.create_timer(1.0 / self.params.joint_state_rate_hz, self._on_tick)
        self.get_logger().info(f"{self.robot.name}: executing {topic}; episode: {self.world.instruction}")

    # ---- episode --------------------------------------------------------------------------
    def reset_episode(self) -> None:
        from uam_ros.sim.jtc import TrajectoryExecutor
        from uam_ros.sim.tasks import sample_episode
        from uam_ros.sim.world import SimWorld

        task = self.get_parameter("task").value
        split = self.get_parameter("split").value
        seed = self.get_parameter("seed").value
        episode = sample_episode(task, split, seed)
        if self.world is None:
            self.world = SimWorld(self.robot, episode, wrist_camera=self.params.camera == "wrist")
        else:
            self.world.load_episode(episode)
            self.world.reset()
        self.executor_jtc = TrajectoryExecutor(self.robot.joints.names)
        self._gripper_target = None
        self._sim_clock_s = None
        self._success_sent = None

    def _publish_episode(self) -> None:
        episode = self.world.episode
        self._instruction_pub.publish(String(data=episode.instruction))
        self._episode_pub.publish(String(data=json.dumps(
            {"robot": self.robot.name, "task": episode.task, "split": episode.split, "seed": episode.seed,
             "instruction": episode.instruction})))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self.reset_episode()
        except (KeyError, ValueError) as exc:
            response.success, response.message = False, str(exc)
            return response
        self._publish_episode()
        response.success, response.message = True, self.world.instruction
        self.get_logger().info(f"reset: {self.world.instruction}")
        return response

    # ---- commands -------------------------------------------------------------------------
    def _check_clock_params(self) -> None:
        source = "node 'uam_sim' parameters"
        if self.params.real_time_factor != 1.0 and not self.params.publish_clock:
            raise ConfigError(source, "real_time_factor", "a world slower than real time needs publish_clock:=true "
                              "(and use_sim_time:=true on the other nodes)")
        if self.params.publish_clock and self.get_parameter("use_sim_time").value:
            raise ConfigError(source, "publish_clock", "uam_sim is then the clock's source: it cannot also use "
                              "use_sim_time:=true")

    def _now_s(self) -> float:
        """The time physics should have reached: the ROS clock, or with publish_clock the wall clock
        scaled by real_time_factor from where the simulated clock started."""
        if self._clock_pub is None:
            return self.get_clock().now().nanoseconds * 1e-9
        return self._clock_origin_s + self.params.real_time_factor * (time.monotonic() - self._wall_origin_s)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        now = self._sim_clock_s if self._sim_clock_s is not None else self._now_s()
        _, q, v = self.world.joint_state()
        dof = self.robot.arm_dof
        problem = self.executor_jtc.accept(
            now, stamp_to_s(msg.header.stamp), msg.joint_names,
            [duration_to_s(p.time_from_start) for p in msg.points],
            [list(p.positions) for p in msg.points],
            [list(p.velocities) for p in msg.points],
            q[:dof], v[:dof],
        )
        if problem:
            self.get_logger().warning(f"trajectory rejected: {problem}", throttle_duration_sec=1.0)

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 1 or not math.isfinite(msg.data[0]):
            self.get_logger().warning(f"gripper command rejected: expected one finite value, got {list(msg.data)}",
                                      throttle_duration_sec=1.0)
            return
        self._gripper_target = float(msg.data[0])

    # ---- physics and sensors --------------------------------------------------------------
    def _on_tick(self) -> None:
        now = self._now_s()
        if self._sim_clock_s is None or now < self._sim_clock_s:
            self._sim_clock_s = now  # first tick or the clock jumped back: continue from here
        dt = self.world.timestep
        # Keep up with the clock, but never try to catch up more than 50 ms after a stall.
        steps = min(int((now - self._sim_clock_s) / dt), int(0.05 / dt))
        if now - self._sim_clock_s > 0.05:
            if self._clock_pub is not None:
                # A world that owns the clock pauses through a stall instead of skipping time.
                self._clock_origin_s -= now - self._sim_clock_s - steps * dt
            else:
                self._sim_clock_s = now - steps * dt
        for _ in range(steps):
            self._sim_clock_s += dt
            desired = self.executor_jtc.sample(self._sim_clock_s)
            if desired is not None:
                # Position + velocity reference, as JTC feeds a position/velocity interface.
                self.world.set_joint_targets(desired[0], self._gripper_target, arm_qd=desired[1])
            elif self._gripper_target is not None:
                self.world.set_joint_targets(self.world._cmd_arm, self._gripper_target)
            self.world.step(1)
        stamp = self._sim_clock_s
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=s_to_stamp(stamp)))
        names, q, v = self.world.joint_state()
        msg = JointState()
        msg.header.stamp = s_to_stamp(stamp)
        msg.name = list(names)
        msg.position = q.tolist()
        msg.velocity = v.tolist()
        self._joint_pub.publish(msg)
        if stamp - self._last_camera_s >= 1.0 / self.params.camera_rate_hz - 1e-6:
            self._last_camera_s = stamp
            d = self.world.data
            self._camera.submit(self.world.model, self._camera_name(), d.qpos, d.mocap_pos, d.mocap_quat, stamp)
            success = bool(self.world.success())
            if success != self._success_sent:
                self._success_pub.publish(Bool(data=success))
                self._success_sent = success

    def _publish_frame(self, rgb: np.ndarray, stamp: float, fovy: float) -> None:
        frame = f"{self.params.camera}_camera"
        self._image_pub.publish(rgb_to_image_msg(rgb, stamp, frame))
        self._info_pub.publish(camera_info(rgb.shape[1], rgb.shape[0], float(fovy), frame, stamp))

    def close(self) -> None:
        self._camera.stop()
        self.world.close()

    def _camera_name(self) -> str:
        info = self.world.info
        return info.scene_camera if self.params.camera == "scene" else info.wrist_camera


def main(args: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless: no display on robots' compute boxes or CI
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
