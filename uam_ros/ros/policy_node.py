"""uam_policy: camera + joint states in, joint-trajectory chunks out (a lifecycle node).

configure loads the robot config and the model and warms the backend up (in a child process with
inference_process:=true); activate starts the control timer and the inference worker, and with
control_priority > 0 the control timer's thread runs at SCHED_FIFO. The node only converts and
wires: every decision is made by uam_ros.control.policy_loop.PolicyLoop.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from diagnostic_msgs.msg import DiagnosticArray
from visualization_msgs.msg import MarkerArray

from uam_ros.control.policy_loop import PolicyLoop, TickResult
from uam_ros.control.robot_config import RobotConfig, load_robot_config
from uam_ros.ros.cdr import float64_multiarray_cdr, trajectory_cdr
from uam_ros.ros.conversions import rgb_to_image_msg, stamp_to_s, image_msg_to_rgb
from uam_ros.ros.diagnostics import RateCounter, diagnostic_array, status_level
from uam_ros.ros.markers import PathScene, predicted_path_markers
from uam_ros.ros.params import declare
from uam_ros.ros.qos import COMMAND_QOS, INSTRUCTION_QOS, SENSOR_QOS, display_only_events
from uam_ros.ros.node_main import run_node
from uam_ros.ros.tick_stats import TickStats
from uam_ros.schema import spec


# ~/chunk_timing (std_msgs/Float64MultiArray, one per commanded chunk): header stamp of the trajectory,
# stamp of the camera frame it was computed from, when the node received that frame, when inference
# started and finished, and when the trajectory had been published -- node clock, seconds.
CHUNK_TIMING_FIELDS = "command_stamp,observation_stamp,image_received,inference_started,inference_finished,published"


@dataclass(frozen=True, kw_only=True)
class PolicyNodeParams:
    robot: str = spec("franka_panda", description="Robot: a name in config/robots or a path to a robot YAML")
    model: str = spec("", description="Checkpoint directory (safetensors + config.json); empty: models/default/<robot>")
    backend: str = spec("auto", description="Inference backend", choices=("auto", "tensorrt", "onnxruntime", "torch"))
    enable: bool = spec(False, description="Command the robot at start; false = dry-run (predict and visualise only)")
    autostart: bool = spec(False, description="Configure and activate without a lifecycle manager")
    instruction: str = spec("", description="Initial language instruction (~/instruction overrides it)")
    control_rate_hz: float = spec(0.0, description="Control timer rate; 0 = the robot config's", ge=0.0, le=1000.0)
    inference_threads: int = spec(0, description="Intra-op threads for inference; 0 = cores - 1 on the CPU, 1 on a GPU",
                                  ge=0, le=256)
    inference_timeout_s: float = spec(0.0, description="Hold when one inference runs longer; 0 = n_action_steps/action_rate", ge=0.0)
    replan_steps: int = spec(-1, description="Action steps of a chunk the arm executes before the next camera image "
                             "goes to inference; 0 = every new image; -1 = the model's (its checkpoint's "
                             "meta.replan_steps, else 0). The in-process `uam eval --n-action-steps` row it matches",
                             ge=-1, le=1000)
    inference_process: bool = spec(False, description="Run the policy in a child process instead of a thread of "
                                   "the node: the control timer no longer shares the GIL with inference, and a "
                                   "backend that crashes the process is an inference error + hold, not the node's "
                                   "end (costs a second Python process and a few seconds at configure)")
    control_priority: int = spec(0, description="SCHED_FIFO priority of the thread running the control timer, set "
                                 "once activated (after the inference worker started); 0 = off. Needs CAP_SYS_NICE "
                                 "or `ulimit -r`; when refused: one warning, normal priority. Use it together "
                                 "with inference_process:=true, else the timer still waits for the GIL "
                                 "(benchmarks/README.md, jitter.py)",
                                 ge=0, le=99)
    output_mode: str = spec("trajectory", description="Command interface", choices=("trajectory", "position"))
    executor: str = spec("single", description="rclpy executor the node runs in (read at start): 'single' = "
                         "SingleThreadedExecutor; 'events' = rclpy's experimental EventsExecutor, ~3x less CPU per "
                         "message (benchmarks/node_overhead.py); its timer thread gets control_priority too",
                         choices=("single", "events"))
    diagnostics_period_s: float = spec(1.0, description="Period of /diagnostics messages", gt=0.0, le=60.0)
    seed: int = spec(0, description="Seed of the flow-matching noise", ge=0)
    predicted_path: bool = spec(True, description="Publish ~/predicted_path (end-effector path of each chunk, "
                                "forward kinematics of the robot's MuJoCo model)")
    record: str = spec("", description="Record inputs, commands, predictions, /diagnostics and each inference to "
                       "this MCAP file from configure to cleanup/shutdown (empty: off; see docs/recording.md)")


class _PollRecorder:
    """Passes the loop's calls through to the inference worker and keeps the last polled result,
    so a chunk the safety filter refused can still be drawn (the loop drops it when it holds).
    With record:=FILE it also hands every accepted observation and every result to the recording."""

    def __init__(self, worker, recording=None) -> None:
        self.worker = worker
        self.recording = recording
        self.last = None

    def submit(self, observation) -> bool:
        accepted = self.worker.submit(observation)
        if accepted and self.recording is not None:
            self.recording.observation(observation)
        return accepted

    def poll(self):
        self.last = self.worker.poll()
        if self.recording is not None:
            self.recording.inference(self.last)
        return self.last

    def busy_for_s(self) -> float:
        return self.worker.busy_for_s()


class PolicyNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("uam_policy", **kwargs)
        self.params = declare(self, PolicyNodeParams)
        self.enabled = self.params.enable
        self.robot: RobotConfig | None = None
        self.loop: PolicyLoop | None = None
        self.worker = None
        self.backend_name = "none"
        self.backend_reason = ""
        self.warmup_s = 0.0
        self.lifecycle_state = "unconfigured"
        self.commands_published = 0
        self._timer = None
        self._tick_stats: TickStats | None = None  # control-timer period errors, for /diagnostics
        self._camera_rate = RateCounter()
        self._joint_rate = RateCounter()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=display_only_events())
        self._diag_timer = self.create_timer(self.params.diagnostics_period_s, self._publish_diagnostics)
        self._endpoints: list = []
        self.kinematics = None  # uam_ros.kinematics.RobotKinematics, built at configure
        self._poll: _PollRecorder | None = None
        self._last_path = None
        self._pending_path: dict | None = None  # ~/predicted_path to draw at the next tick without a command
        self._next_diagnostics_s = 0.0  # monotonic time of the next /diagnostics from a tick, while active
        self._recording = None  # uam_ros.recording.policy_tap.PolicyRecording with record:=FILE
        self._image_received: deque = deque(maxlen=32)  # (camera stamp, node time received), for ~/chunk_timing
        self._priority_pending = False  # set control_priority at the next tick, in the timer's thread
        self._priority_tid: int | None = None  # native id of the thread running at SCHED_FIFO
        self._executor_threads: list[int] = []  # the executor's own threads that wake the control timer
        self._raised_threads: list[int] = []  # those of them at SCHED_FIFO now
        self._priority_state = "off"
        self._priority_warned = False

    # ---- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # any load failure leaves the node unconfigured, with a clear reason
            self.get_logger().error(f"configure failed: {exc}")
            self.lifecycle_state = f"configure_failed: {exc}"
            self._close_recording()
            self._destroy_endpoints()
            self._stop_worker()
            self.worker = None
            return TransitionCallbackReturn.FAILURE
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        from uam_ros.model.checkpoint import resolve_replan_steps
        from uam_ros.resources import models_dir
        from uam_ros.runtime.factory import create_policy
        from uam_ros.runtime.worker import InferenceWorker

        robot = load_robot_config(self.params.robot)
        if self.params.control_rate_hz > 0:
            from dataclasses import replace

            robot = replace(robot, control=replace(robot.control, rate_hz=self.params.control_rate_hz))
        model = self.params.model or str(models_dir() / "default" / robot.name)
        self.replan_steps = resolve_replan_steps(self.params.replan_steps, model)
        joint_names = robot.action_joint_names
        policy_args = dict(threads=self.params.inference_threads, seed=self.params.seed,
                           default_dt_s=1.0 / robot.chunk.action_rate_hz, robot=self.params.robot,
                           chunk_size=robot.chunk.chunk_size)
        if self.params.inference_process:
            from uam_ros.runtime.process_worker import ProcessInferenceWorker

            # Spawned here, from the executor thread before any real-time priority is set (activate).
            worker = ProcessInferenceWorker(self.params.backend, model, joint_names, **policy_args,
                                            image_shape=(robot.camera.height, robot.camera.width, 3),
                                            progress=self.get_logger().info)
            name, reason, fallback, self.warmup_s = (worker.backend_name, worker.backend_reason, worker.fallback,
                                                     worker.warmup_s)
            where = f"in process {worker.pid}"
        else:
            choice = create_policy(self.params.backend, model, joint_names, **policy_args,
                                   options={"progress": self.get_logger().info})
            name, reason, fallback = choice.name, choice.reason, choice.fallback
            self.warmup_s = choice.policy.warmup()
            worker = InferenceWorker(choice.policy)
            where = "in a thread"
        self.worker = worker
        if fallback:
            self.get_logger().warning(reason)
        replan = f"replan after {self.replan_steps} action steps" if self.replan_steps else "replan on every image"
        self.get_logger().info(
            f"robot '{robot.name}', model '{model}', backend {name} ({reason}), inference {where}, "
            f"warm-up {self.warmup_s:.2f} s, {replan}, {'ENABLED' if self.enabled else 'dry-run'}"
        )
        self.robot, self.backend_name, self.backend_reason = robot, name, reason
        if self.params.record:
            self._recording = self._open_recording(robot, model)
        self._poll = _PollRecorder(self.worker, self._recording)
        self.loop = PolicyLoop(robot, self._poll, self.params.inference_timeout_s or None, self.replan_steps)
        self.loop.set_instruction(self.params.instruction)
        self.kinematics = self._load_kinematics(robot) if self.params.predicted_path else None
        self._last_path = None
        self._create_endpoints(robot)

    def _open_recording(self, robot: RobotConfig, model: str):
        """record:=FILE (uam_ros.recording.policy_tap): queued, written by its own thread."""
        from uam_ros.recording.policy_tap import PolicyRecording
        from uam_ros.recording.topics import policy_topics

        topics = {spec.role: spec for spec in policy_topics(robot, self.resolve_topic_name)}
        metadata = {"robot": robot.name, "robot_config": self.params.robot, "model": model,
                    "backend": self.backend_name, "seed": self.params.seed, "instruction": self.params.instruction,
                    "inference_threads": self.params.inference_threads, "control_rate_hz": robot.control.rate_hz,
                    "enable": self.enabled, "node": self.get_fully_qualified_name()}
        recording = PolicyRecording(self.params.record, topics, self.get_fully_qualified_name(),
                                    robot.action_joint_names, metadata, lambda: self.get_clock().now().nanoseconds)
        self.get_logger().info(f"recording to {self.params.record}")
        return recording

    def _close_recording(self) -> None:
        recording, self._recording = self._recording, None
        if self._poll is not None:
            self._poll.recording = None
        if recording is not None:
            stats = recording.close()
            dropped = sum(stats.dropped.values())
            self.get_logger().info(f"recording closed: {recording.recorder.path}, {sum(stats.written.values())} "
                                   f"messages, {stats.bytes / 1e6:.2f} MB"
                                   + (f", {dropped} dropped" if dropped else ""))

    def _record(self, role: str, msg) -> None:
        if self._recording is not None:
            self._recording.message(role, msg)

    def _load_kinematics(self, robot: RobotConfig):
        """FK model for ~/predicted_path, built once here (off the control path). A robot without a
        MuJoCo model (no sim: section) still runs; it just publishes no path."""
        import time

        from uam_ros.kinematics import RobotKinematics

        start = time.monotonic()
        try:
            kinematics = RobotKinematics(robot)
        except Exception as exc:  # noqa: BLE001 - visualisation must never stop the policy
            self.get_logger().warning(f"~/predicted_path disabled: no kinematic model for '{robot.name}': {exc}")
            return None
        self.get_logger().info(f"~/predicted_path: forward kinematics of '{robot.name}' "
                               f"({robot.base_frame} -> {kinematics.info.tcp_site}), built in "
                               f"{time.monotonic() - start:.2f} s")
        return kinematics

    def _create_endpoints(self, robot: RobotConfig) -> None:
        pub = self.create_lifecycle_publisher
        self._traj_pub = pub(JointTrajectory, robot.controller.trajectory_topic, COMMAND_QOS)
        display = display_only_events
        self._predicted_pub = pub(JointTrajectory, "~/predicted_trajectory", 10, event_callbacks=display())
        self._future_pub = pub(Image, "~/imagined_future", 2, event_callbacks=display())
        self._timing_pub = pub(Float64MultiArray, "~/chunk_timing", 10, event_callbacks=display())
        self._path_pub = (pub(MarkerArray, "~/predicted_path", 2, event_callbacks=display())
                          if self.kinematics is not None else None)
        self._gripper_pub = pub(Float64MultiArray, robot.gripper.command_topic, COMMAND_QOS) if robot.gripper else None
        self._position_pub = None
        if self.params.output_mode == "position":
            self._position_pub = pub(Float64MultiArray, robot.controller.position_command_topic, COMMAND_QOS)
        self._endpoints = [
            self.create_subscription(JointState, "joint_states", self._on_joint_state, SENSOR_QOS),
            self.create_subscription(Image, robot.camera.image_topic, self._on_image, SENSOR_QOS),
            self.create_subscription(String, "~/instruction", self._on_instruction, INSTRUCTION_QOS),
            self.create_service(SetBool, "~/enable", self._on_enable),
        ]
        self._publishers_owned = [p for p in (self._traj_pub, self._predicted_pub, self._future_pub,
                                              self._gripper_pub, self._position_pub, self._path_pub,
                                              self._timing_pub)
                                  if p is not None]

    def _destroy_endpoints(self) -> None:
        for endpoint in self._endpoints:
            if hasattr(endpoint, "srv_name"):
                self.destroy_service(endpoint)
            else:
                self.destroy_subscription(endpoint)
        self._endpoints = []
        for publisher in getattr(self, "_publishers_owned", []):
            self.destroy_lifecycle_publisher(publisher)
        self._publishers_owned = []

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.worker.start()  # before any real-time priority: no inference thread or process inherits it
        # A full (generation 2) garbage collection walks every object the process holds -- ~200 k after
        # configure (rclpy, MuJoCo, numpy; torch too with the thread worker): ~0.1 s, every ~15 s,
        # inside whichever callback happens to allocate, usually a tick. Collect once now and freeze
        # the survivors, so later full collections only walk what was allocated since.
        gc.collect()
        gc.freeze()
        self._tick_stats = TickStats(1.0 / self.robot.control.rate_hz)
        self._priority_pending = self.params.control_priority > 0
        self._pending_path = None
        self._timer = self.create_timer(1.0 / self.robot.control.rate_hz, self._on_tick)
        self._diag_timer.cancel()  # while the loop runs, its ticks publish /diagnostics (_run_deferred)
        self._next_diagnostics_s = time.monotonic()
        self.lifecycle_state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_motion("deactivated")
        self._stop_loop()
        gc.unfreeze()  # what configure built can be collected again after cleanup
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close_recording()
        self._destroy_endpoints()
        self._stop_worker()
        self.loop = self.worker = self.robot = self._poll = self.kinematics = None
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.safe_stop()
        return TransitionCallbackReturn.SUCCESS

    def _stop_loop(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
            self._diag_timer.reset()
        self._pending_path = None
        self._priority_pending = False
        self._restore_priority()
        self._stop_worker()

    def _stop_worker(self) -> None:
        """The inference thread, or the inference process (stop message, SIGTERM, SIGKILL: bounded)."""
        if self.worker is not None:
            self.worker.stop()

    # ---- control thread priority -----------------------------------------------------------
    @property
    def executor_kind(self) -> str:
        """What uam_ros.ros.node_main.run_node spins this node in."""
        return self.params.executor

    def adopt_executor_threads(self, tids: list[int]) -> None:
        """The executor's helper threads (the EventsExecutor's timer thread): with control_priority
        they run at the control thread's priority, since the control tick cannot start before they wake."""
        self._executor_threads = list(tids)

    def _apply_priority(self) -> None:
        """control_priority:=N -> SCHED_FIFO N for the thread that runs the control timer (called from
        its first tick). SCHED_RESET_ON_FORK: threads or processes it starts do not inherit it."""
        self._priority_pending = False
        priority = self.params.control_priority
        try:
            policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
            os.sched_setscheduler(0, policy, os.sched_param(priority))
        except (OSError, AttributeError) as exc:
            self._priority_state = f"refused: {exc}"
            if not self._priority_warned:
                self._priority_warned = True
                self.get_logger().warning(
                    f"control_priority:={priority}: SCHED_FIFO refused ({exc}); the control timer runs at "
                    "normal priority. Grant CAP_SYS_NICE or an rtprio limit (ulimit -r, "
                    "/etc/security/limits.conf) to use it")
            return
        self._priority_tid = threading.get_native_id()
        self._priority_state = f"SCHED_FIFO {priority}"
        for tid in self._executor_threads:
            try:
                os.sched_setscheduler(tid, policy, os.sched_param(priority))
                self._raised_threads.append(tid)
            except OSError as exc:  # gone, or refused although the control thread was raised
                self._priority_state += f" (executor thread {tid}: {exc})"
        if self._raised_threads:
            self._priority_state += f", executor thread(s) {self._raised_threads}"
        note = "" if self.params.inference_process else (
            " (inference runs in a thread of this process: the timer still waits for the GIL; "
            "inference_process:=true removes that)")
        helpers = f" with executor thread(s) {self._raised_threads}" if self._raised_threads else ""
        self.get_logger().info(f"control timer thread {self._priority_tid}{helpers} at SCHED_FIFO priority "
                               f"{priority}{note}")

    def _restore_priority(self) -> None:
        tid, self._priority_tid = self._priority_tid, None
        if tid is None:
            return
        helpers, self._raised_threads = self._raised_threads, []
        for helper in helpers:
            try:
                os.sched_setscheduler(helper, os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass  # the thread ended with its executor
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            self._priority_state = "off"
        except OSError as exc:  # the thread is gone, or we may no longer change it
            self._priority_state = f"not restored: {exc}"

    def _stop_motion(self, reason: str) -> None:
        """Hold position if we were moving the arm; used on disable, deactivate and shutdown."""
        if self.loop is None or self.lifecycle_state != "active":
            return
        result = self.loop.hold(self._now_s(), reason, f"policy {reason}")
        if result.command is not None and self.enabled:
            msg = trajectory_cdr(result.command)
            self._traj_pub.publish(msg)
            self._record("command", msg)
            self.get_logger().info(f"{reason}: holding position")

    def close(self) -> None:
        self.safe_stop()

    def safe_stop(self) -> None:
        """Clean exit: hold if moving, stop the timer and the inference thread. Idempotent."""
        try:
            self._stop_motion("shutdown")
        finally:
            self._stop_loop()
            self._close_recording()

    # ---- callbacks ------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp_s(self, header) -> float:
        stamp = stamp_to_s(header.stamp)
        return stamp if stamp > 0.0 else self._now_s()  # stamp 0: the driver did not stamp; use arrival

    def _on_joint_state(self, msg: JointState) -> None:
        if self.loop is None:
            return
        self._record("joint_states", msg)
        self._joint_rate.tick()
        problem = self.loop.on_joint_state(self._stamp_s(msg.header), msg.name, msg.position, msg.velocity)
        if problem:
            self.get_logger().warning(f"joint_states rejected: {problem}", throttle_duration_sec=2.0)

    def _on_image(self, msg: Image) -> None:
        if self.loop is None:
            return
        self._record("image", msg)
        self._camera_rate.tick()
        stamp = self._stamp_s(msg.header)
        self._image_received.append((stamp, self._now_s()))
        rgb = image_msg_to_rgb(msg)
        if rgb is not None:
            problem = self.loop.on_rgb_image(stamp, rgb)
        else:
            problem = self.loop.on_image(stamp, msg.encoding, msg.height, msg.width, msg.step, msg.data)
        if problem:
            self.get_logger().warning(f"camera image rejected: {problem}", throttle_duration_sec=2.0)

    def _on_instruction(self, msg: String) -> None:
        if self.loop is not None:
            self._record("instruction", msg)
            self.loop.set_instruction(msg.data)
            self.get_logger().info(f"instruction: '{msg.data}'")

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if not request.data and self.enabled:
            self._stop_motion("disabled")
        self.enabled = bool(request.data)
        response.success = True
        response.message = "enabled: commanding the robot" if self.enabled else "dry-run: predicting only"
        self.get_logger().info(response.message)
        return response

    def _on_tick(self) -> None:
        self._tick_stats.tick()
        if self._priority_pending:
            self._apply_priority()
        now = self._now_s()
        previous = self.loop.status
        self._poll.last = None
        result: TickResult = self.loop.tick(now)
        if result.command is not None and result.chunk is None:
            # A hold is published once per fault entry while the arm was moving: always log it.
            self.get_logger().warning(f"holding: {self.loop.status}: {self.loop.status_detail} [hold sent]")
        elif self.loop.status != previous and self.loop.status not in ("running", "waiting"):
            self.get_logger().warning(f"holding: {self.loop.status}: {self.loop.status_detail}",
                                      throttle_duration_sec=1.0)
        if result.command is not None:
            # Serialized here (uam_ros.ros.cdr) and published as bytes: rclpy's message objects and
            # their conversion were a third of the tick that sends a chunk.
            msg = trajectory_cdr(result.command)
            if result.chunk is not None:
                # Display topics are published only while someone subscribes (DDS would deliver an
                # unmatched message to no one anyway); serialising them costs the tick that commands.
                if self._predicted_pub.get_subscription_count():
                    self._predicted_pub.publish(msg)
                self._record("predicted_trajectory", msg)
            if self.enabled:
                self._traj_pub.publish(msg)
                self._record("command", msg)
                self.commands_published += 1
            if result.chunk is not None and self._timing_pub.get_subscription_count():
                self._publish_chunk_timing(result)
        if self.enabled and result.gripper is not None and self._gripper_pub is not None:
            gripper = float64_multiarray_cdr([result.gripper])
            self._gripper_pub.publish(gripper)
            self._record("gripper_command", gripper)
        refused = self.loop.status.startswith("rejected_") and self._poll.last is not None
        path_job = None
        if self._path_pub is not None and (result.command is not None or refused):
            if self._recording is not None or self._path_pub.get_subscription_count():
                path_job = self._path_job(now, result)  # drawn at the next tick that sends nothing
            else:
                self._last_path = None  # nobody draws it: the next viewer starts without a stale "previous"
        if result.imagined_future is not None and (self._recording is not None
                                                   or self._future_pub.get_subscription_count()):
            future = rgb_to_image_msg(result.imagined_future, now, self.robot.base_frame)
            self._future_pub.publish(future)
            self._record("imagined_future", future)
        if self.enabled and self._position_pub is not None:
            setpoint = self.loop.setpoint(now)
            if setpoint is not None:
                position = float64_multiarray_cdr(setpoint)
                self._position_pub.publish(position)
                self._record("position_command", position)
        # What is not control -- ~/predicted_path (MuJoCo FK + markers, ~half of a chunk tick's cost) and
        # /diagnostics -- runs after the command is out, on a tick that sent none: never in a callback of
        # its own, which the (single-threaded) executor could start just before a tick is due and so
        # delay that tick, and never adding to the tick that turns a chunk into a command.
        if result.command is None:
            self._run_deferred(time.monotonic())
        if path_job is not None:
            self._pending_path = path_job  # a newer one replaces one not drawn yet (10 ms apart at most)

    def _run_deferred(self, mono: float) -> None:
        job, self._pending_path = self._pending_path, None
        if job is not None:
            try:
                self._publish_path(job)
            except Exception as exc:  # noqa: BLE001 - visualisation must never stop the control loop
                self.get_logger().error(f"~/predicted_path: {exc}", throttle_duration_sec=5.0)
        if mono >= self._next_diagnostics_s:
            self._next_diagnostics_s = max(self._next_diagnostics_s + self.params.diagnostics_period_s, mono)
            self._publish_diagnostics()

    def _publish_chunk_timing(self, result: TickResult) -> None:
        """~/chunk_timing: which camera frame this tick's trajectory was computed from, and when each
        step happened (node clock, s; 0 = unknown). Published after the trajectory, only while
        subscribed (benchmarks/latency.py)."""
        polled = self._poll.last
        observed = result.chunk.observation_stamp_ns * 1e-9
        received = next((t for stamp, t in reversed(self._image_received) if abs(stamp - observed) < 1e-6), 0.0)
        now = self._now_s()
        to_node_clock = now - time.monotonic()
        started = polled.started_s + to_node_clock if polled is not None and polled.started_s else 0.0
        finished = polled.finished_s + to_node_clock if polled is not None and polled.finished_s else 0.0
        msg = Float64MultiArray()
        msg.layout.dim = [MultiArrayDimension(label=CHUNK_TIMING_FIELDS, size=6, stride=6)]
        msg.data = [result.command.stamp_s, observed, received, started, finished, now]
        self._timing_pub.publish(msg)

    def _path_job(self, now: float, result: TickResult) -> dict:
        """What _publish_path needs, taken at the tick that decided (references and strings only: the
        plan, command and polled chunk are new objects per chunk, never modified afterwards)."""
        loop = self.loop
        latency_ms = loop.counters.last_inference_s * 1e3
        status = (f"{loop.status} | {self.backend_name} {latency_ms:.0f} ms | "
                  f"{'ENABLED' if self.enabled else 'dry-run'}")
        return {"now": now, "command": result.command if result.chunk is not None else None,
                "plan": loop.scheduler.plan, "polled": self._poll.last, "loop_status": loop.status,
                "status": status, "detail": loop.status_detail}

    def _publish_path(self, job: dict) -> None:
        """~/predicted_path for an accepted chunk, a refused one (red) or a hold (path cleared)."""
        kinematics, robot = self.kinematics, self.robot
        if kinematics is None or self._path_pub is None:
            return
        dof = robot.arm_dof
        status = job["status"]
        if job["command"] is not None:
            command = job["command"]
            path = kinematics.tcp_positions(command.positions)
            plan = job["plan"]  # the merged chunk before the safety filter, point for point
            clamped = requested = closed = None
            if plan is not None and plan.positions.shape[0] == command.positions.shape[0]:
                asked = plan.positions[:, :dof]
                clamped = np.any(np.abs(asked - command.positions) > 1e-9, axis=1)
                if np.any(clamped):
                    requested = kinematics.tcp_positions(asked)
                if robot.gripper is not None:
                    g = plan.positions[:, dof]
                    closed = np.abs(g - robot.gripper.closed_position) < np.abs(g - robot.gripper.open_position)
            scene = PathScene(path=path, times_s=command.time_from_start_s, clamped=clamped, requested=requested,
                              gripper_closed=closed, previous=self._last_path, status=status)
            self._last_path, stamp = path, command.stamp_s
        else:
            rejected = None
            polled = job["polled"]
            if polled is not None and polled.chunk is not None and job["loop_status"].startswith("rejected_"):
                q = np.asarray(polled.chunk.positions, dtype=np.float64)
                if q.ndim == 2 and q.shape[1] >= dof:
                    q = q[np.all(np.isfinite(q[:, :dof]), axis=1)]
                    rejected = kinematics.tcp_positions(q) if len(q) else None
            scene = PathScene(rejected=rejected, previous=self._last_path, status=f"{status}: {job['detail']}")
            stamp = job["now"]
        markers = predicted_path_markers(robot.base_frame, stamp, scene)
        self._path_pub.publish(markers)
        self._record("predicted_path", markers)

    def _publish_diagnostics(self) -> None:
        now = self._now_s()
        loop = self.loop
        state = loop.status if (loop is not None and self.lifecycle_state == "active") else self.lifecycle_state
        values: dict[str, object] = {
            "lifecycle": self.lifecycle_state.split(":")[0],
            "enabled": self.enabled,
            "backend": self.backend_name,
            "backend_reason": self.backend_reason,
            "warmup_s": f"{self.warmup_s:.3f}",
            "inference_process": self.params.inference_process,
            "control_priority": self._priority_state,
            "camera_rate_hz": f"{self._camera_rate.rate(now):.1f}",
            "joint_state_rate_hz": f"{self._joint_rate.rate(now):.1f}",
            "commands_published": self.commands_published,
            **{k: f"{v:.3f}" for k, v in (self._tick_stats.summary() if self._tick_stats else {}).items()},
        }
        if loop is not None:
            c = loop.counters
            values.update({
                "inference_latency_ms": f"{c.last_inference_s * 1e3:.1f}",
                "chunks_accepted": c.chunks_accepted,
                "chunks_rejected": c.chunks_rejected,
                "chunk_points_late": c.chunks_late,
                "holds": c.holds,
                "inference_errors": c.inference_errors,
                "last_reject": c.last_reject,
                "instruction": loop.instruction,
            })
            for reason, count in sorted(c.inputs_rejected.items()):
                values[f"rejected_{reason}"] = count
        if self._recording is not None:
            values["record_dropped"] = self._recording.recorder.dropped
        message = state if loop is None or not loop.status_detail else f"{state}: {loop.status_detail}"
        hardware = self.robot.name if self.robot else self.params.robot
        level = status_level(state, self.loop is not None)
        array = diagnostic_array(now, f"uam_policy: {self.get_fully_qualified_name()}", hardware, level, message, values)
        self._diag_pub.publish(array)
        self._record("diagnostics", array)


def _autostart(node: "PolicyNode") -> None:
    if node.params.autostart:
        node.trigger_configure()
        if node.lifecycle_state == "inactive":
            node.trigger_activate()


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, args, on_start=_autostart)


if __name__ == "__main__":
    main()
