"""The control loop's decisions, free of ROS: when to infer, what to command, when to hold.

The ROS node converts messages, calls on_* and tick(), and publishes what tick() returns. Keeping
the decisions here makes every safety behaviour testable with plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from uam_ros.control.chunk_scheduler import ChunkScheduler, Plan
from uam_ros.control.inputs import ImageSample, InputRejected, JointStateMapper, decode_image
from uam_ros.control.observation import ObservationSync
from uam_ros.control.robot_config import RobotConfig
from uam_ros.control.safety import SafetyFilter, clamp_gripper
from uam_ros.control.trajectory import HOLD_LEAD_S, TrajectoryCommand, build_command, command_problems, hold_command
from uam_ros.runtime.policy import ActionChunk, Observation


# Statuses caused by the inputs; they clear as soon as the inputs are usable again.
INPUT_FAULTS = frozenset({
    "no_joint_state", "no_image", "stale_joint_state", "stale_image", "future_joint_state", "future_image",
})


class InferenceQueue(Protocol):
    """What the loop needs of uam_ros.runtime.worker.InferenceWorker."""

    def submit(self, observation: Observation) -> bool: ...

    def poll(self): ...

    def busy_for_s(self) -> float: ...


@dataclass
class LoopCounters:
    chunks_accepted: int = 0
    chunks_rejected: int = 0
    chunks_late: int = 0
    holds: int = 0
    inference_errors: int = 0
    inputs_rejected: dict[str, int] = field(default_factory=dict)
    last_inference_s: float = 0.0
    last_reject: str = ""


@dataclass(frozen=True)
class TickResult:
    command: TrajectoryCommand | None = None  # new trajectory for the controller (chunk or hold)
    gripper: float | None = None  # new gripper position command
    imagined_future: np.ndarray | None = None
    chunk: ActionChunk | None = None  # the raw chunk behind command, for visualisation


class PolicyLoop:
    def __init__(self, robot: RobotConfig, worker: InferenceQueue, inference_timeout_s: float | None = None,
                 replan_steps: int = 0) -> None:
        """replan_steps: action steps of an accepted chunk the arm executes before the next observation
        goes to inference (0: every new camera image). Why: a chunk policy is evaluated executing n
        steps per inference, and the default model's success depends on n (docs/training_notes.md);
        on every image the node replans more often than any row it was measured on."""
        if replan_steps < 0:
            raise ValueError(f"replan_steps must be >= 0, got {replan_steps}")
        self.robot = robot
        self.worker = worker
        self.period_s = 1.0 / robot.control.rate_hz
        self.mapper = JointStateMapper(robot.joints.names, robot.gripper.joint if robot.gripper else None)
        self.sync = ObservationSync(robot.control.max_image_age_s, robot.control.max_joint_state_age_s)
        self.scheduler = ChunkScheduler(robot.chunk.blend, robot.chunk.blend_steps, min_lead_s=self.period_s)
        self.limits = robot.limits_arrays()
        self.safety = SafetyFilter(self.limits, robot.control.max_position_deviation)
        self.inference_timeout_s = inference_timeout_s or robot.chunk.n_action_steps / robot.chunk.action_rate_hz
        self.replan_s = replan_steps / robot.chunk.action_rate_hz
        self.instruction = ""
        self.counters = LoopCounters()
        self.status = "waiting"  # "running" or the reason for holding
        self.status_detail = "no inputs yet"
        self._last_submitted_stamp: float | None = None
        self._active: Plan | None = None  # what the controller is executing (absolute times)
        self._last_gripper: float | None = None
        self._moving = False  # the controller is executing a chunk we sent
        self._replan_from_s: float | None = None  # replan_steps counts from this observation (None: now)

    # ---- inputs -------------------------------------------------------------------------
    def _reject(self, exc: InputRejected) -> None:
        self.counters.inputs_rejected[exc.reason] = self.counters.inputs_rejected.get(exc.reason, 0) + 1
        self.counters.last_reject = str(exc)

    def on_joint_state(
        self, stamp_s: float, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float]
    ) -> str:
        """Returns "" when accepted, else the rejection message (the node logs it, throttled)."""
        try:
            self.sync.put_joints(self.mapper.map(stamp_s, names, positions, velocities))
            return ""
        except InputRejected as exc:
            self._reject(exc)
            return str(exc)

    def on_image(self, stamp_s: float, encoding: str, height: int, width: int, step: int, data) -> str:
        try:
            rgb = decode_image(encoding, height, width, step, data, (self.robot.camera.height, self.robot.camera.width))
        except InputRejected as exc:
            self._reject(exc)
            return str(exc)
        self.sync.put_image(ImageSample(stamp_s, rgb))
        return ""

    def on_rgb_image(self, stamp_s: float, rgb: np.ndarray) -> str:
        """For images already decoded (cv_bridge); still checks the configured size."""
        expected = (self.robot.camera.height, self.robot.camera.width)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != expected:
            exc = InputRejected("wrong_image_size", f"image is {rgb.shape}, the robot config expects {expected}")
            self._reject(exc)
            return str(exc)
        self.sync.put_image(ImageSample(stamp_s, np.ascontiguousarray(rgb, dtype=np.uint8)))
        return ""

    def set_instruction(self, text: str) -> None:
        if text != self.instruction:
            self.instruction = text
            self._last_submitted_stamp = self._replan_from_s = None  # re-plan with the new goal at once

    # ---- decisions ----------------------------------------------------------------------
    def _state_vector(self, arm_q: np.ndarray, gripper: float | None) -> np.ndarray:
        if self.robot.gripper is None:
            return arm_q.copy()
        if gripper is None:
            gripper = self._last_gripper if self._last_gripper is not None else self.robot.gripper.open_position
        return np.concatenate([arm_q, [gripper]])

    def hold(self, now_s: float, reason: str, detail: str) -> TickResult:
        """Command the measured position, once, when the arm was executing one of our chunks.

        If we never commanded motion (or already held), the arm is not moving on our account and
        a new trajectory would only interrupt whatever the controller is doing.
        """
        self.status, self.status_detail = reason, detail
        self.scheduler.clear()
        self._replan_from_s = None  # whatever comes next starts from a fresh observation
        latest = self.sync.latest_joints
        if not self._moving or latest is None:
            return TickResult()
        self._moving = False
        self.counters.holds += 1
        q = self.safety.clamp_positions(latest.positions)
        command = hold_command(self.robot.joints.names, q, max(HOLD_LEAD_S, self.period_s))
        self._active = Plan(np.array([now_s + command.time_from_start_s[0]]), q.reshape(1, -1))
        return TickResult(command=command)

    def tick(self, now_s: float) -> TickResult:
        synced = self.sync.get(now_s)
        result = self.worker.poll()
        if not synced.ok:
            held = self.hold(now_s, synced.reason, synced.detail)  # while the measured state is known
            if synced.reason.startswith("future"):
                self.sync.reset()  # the clock jumped back; start over from fresh messages
            return held
        inputs = synced.inputs
        if self.worker.busy_for_s() > self.inference_timeout_s:
            return self.hold(now_s, "inference_timeout",
                              f"inference has run {self.worker.busy_for_s():.2f} s (limit {self.inference_timeout_s:.2f} s)")
        if inputs.image.stamp_s != self._last_submitted_stamp and self._replan_due(inputs.image.stamp_s):
            observation = Observation(
                image=inputs.image.image,
                state=self._state_vector(inputs.matched_joints.positions, inputs.matched_joints.gripper),
                instruction=self.instruction,
                stamp_ns=int(round(inputs.image.stamp_s * 1e9)),
            )
            if self.worker.submit(observation):
                self._last_submitted_stamp = self._replan_from_s = inputs.image.stamp_s
        if result is None:
            if self.status in INPUT_FAULTS:
                # The inputs are fine again. Backend and chunk faults stay reported until the
                # backend delivers a chunk that is accepted.
                self.status_detail = f"recovered from {self.status}, waiting for a new chunk"
                self.status = "waiting"
            return TickResult()
        self.counters.last_inference_s = result.latency_s
        if result.error:
            self.counters.inference_errors += 1
            return self.hold(now_s, "inference_error", result.error)
        return self._accept_chunk(now_s, result.chunk, inputs.latest_joints)

    def _replan_due(self, image_stamp_s: float) -> bool:
        """Whether an observation taken at image_stamp_s should go to inference now."""
        if not self.replan_s or self._replan_from_s is None:
            return True  # replanning on every image, or starting over (first chunk, hold, new instruction)
        # 1 ms of slack: camera stamps are quantised, and one exactly replan_s later is due.
        return image_stamp_s >= self._replan_from_s + self.replan_s - 1e-3

    def _accept_chunk(self, now_s: float, chunk: ActionChunk, latest) -> TickResult:
        observed_s = chunk.observation_stamp_ns * 1e-9
        if observed_s > now_s + self.period_s:
            # Observed "after now": the clock was reset (sim time) while this inference ran, so the
            # chunk's timing belongs to another clock epoch.
            self.counters.chunks_rejected += 1
            return self.hold(now_s, "rejected_clock", f"chunk observed at {observed_s:.3f} s, now is {now_s:.3f} s "
                             "(clock reset during inference?)")
        expected = (self.robot.action_dim,)
        if chunk.positions.ndim != 2 or chunk.positions.shape[1:] != expected:
            self.counters.chunks_rejected += 1
            return self.hold(now_s, "bad_chunk", f"chunk shape {chunk.positions.shape}, expected (H, {expected[0]})")
        merged = self.scheduler.merge(chunk.positions, chunk.dt_s, chunk.observation_stamp_ns * 1e-9, now_s)
        self.counters.chunks_late += merged.dropped_late
        if merged.plan is None:
            self.status_detail = "chunk arrived after all of its points were due"
            return TickResult()
        plan = merged.plan
        arm = plan.positions[:, : self.robot.arm_dof]
        times = plan.times_s - now_s
        safe = self.safety.filter(times, arm, latest.positions, latest.velocities)
        if not safe.ok:
            self.counters.chunks_rejected += 1
            self.counters.last_reject = safe.detail
            return self.hold(now_s, f"rejected_{safe.reason}", safe.detail)
        command = build_command(self.robot.joints.names, now_s, times, safe.positions, safe.velocities)
        problems = command_problems(command, self.limits, self.period_s)
        if problems:  # belt and braces: the filter should make this impossible
            self.counters.chunks_rejected += 1
            return self.hold(now_s, "rejected_invalid", "; ".join(problems))
        gripper = None
        if self.robot.gripper is not None:
            gripper = clamp_gripper(plan.positions[0, -1], self.robot.gripper.low, self.robot.gripper.high)
            if gripper is not None:
                self._last_gripper = gripper
        self.counters.chunks_accepted += 1
        self.status, self.status_detail = "running", ""
        self._moving = True
        self._active = Plan(plan.times_s, safe.positions)
        return TickResult(command=command, gripper=gripper, imagined_future=chunk.imagined_future, chunk=chunk)

    def setpoint(self, now_s: float) -> np.ndarray | None:
        """Position for one-command-per-tick drivers (forward_command_controller), one period ahead."""
        if self._active is None:
            return None
        return self._active.sample(now_s + self.period_s)
