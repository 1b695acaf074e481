"""Rebuild, from a recording, the observations the policy node gave its model.

Uses the node's own code for every step so that a replay differs from the run only where the
recording lacks information: conversions.stamp_to_s / image_msg_to_rgb for the messages,
control.inputs (JointStateMapper, decode_image) for validation and joint order, and
control.observation.ObservationSync for pairing the image with the joint state measured when it
was taken (fed with exactly the joint states the node had received by then).

Which observations, in which order:
  * in-node recordings (record:=FILE) list every submitted observation (<node>/recording/observation,
    sequence = submission number, log_time = when the node submitted it) and every returned chunk;
  * `uam record` recordings have only the published trajectories. The observation behind each is
    found from its timing: the node puts point i of a chunk observed at t at t + (i+1)*dt, so the
    image is the newest one (before the trajectory) whose stamp is a whole number of dt before the
    points. Inferences whose chunk was never published (refused, late, failed) are invisible.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from uam_ros.control.inputs import ImageSample, InputRejected, JointSample, JointStateMapper, decode_image
from uam_ros.control.observation import ObservationSync
from uam_ros.control.robot_config import RobotConfig
from uam_ros.recording.reader import Recording, RecordedMessage, decode
from uam_ros.ros.conversions import duration_to_s, image_msg_to_rgb, stamp_to_s
from uam_ros.runtime.policy import Observation

STAMP_TOLERANCE_NS = 5_000  # trajectory times go through float seconds: a few hundred ns of rounding


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> exact integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def node_stamp_ns(stamp, arrival_ns: int) -> int:
    """The observation stamp the node derives from a header stamp: the same float arithmetic as
    PolicyNode._stamp_s + PolicyLoop (int(round(seconds * 1e9))), so keys match to the ns; an
    unstamped (0) message gets its arrival time, as in the node."""
    seconds = stamp_to_s(stamp)
    if seconds <= 0.0:
        seconds = arrival_ns * 1e-9
    return int(round(seconds * 1e9))


@dataclass(frozen=True)
class Target:
    """One inference to replay."""

    ordinal: int  # the node's inference number (= its noise draw number), from 1
    image_stamp_ns: int  # the observation stamp
    cutoff_ns: int  # joint states logged up to here were in the node's history
    recorded_state: np.ndarray | None = None  # what the node submitted (in-node recordings)
    recorded_chunk: np.ndarray | None = None  # what the model returned (in-node recordings)
    polled_ns: int | None = None  # when the node took that chunk from the worker (in-node recordings)
    instruction_cutoff_ns: int | None = None  # the instruction in force then (default: cutoff_ns)


@dataclass(frozen=True)
class RecordedTrajectory:
    """A published JointTrajectory with absolute point times."""

    log_time_ns: int
    stamp_ns: int
    joint_names: tuple[str, ...]
    times_ns: np.ndarray  # (N,) absolute
    positions: np.ndarray  # (N, J)

    @property
    def is_hold(self) -> bool:
        """Holds are one point stamped 0 ("start on receipt"); chunks carry their tick time."""
        return self.stamp_ns == 0 and len(self.times_ns) == 1


def trajectories(messages: list[RecordedMessage]) -> list[RecordedTrajectory]:
    out = []
    for message in messages:
        msg = decode(message)
        stamp = stamp_ns(msg.header.stamp)
        times = np.array([stamp + int(round(duration_to_s(p.time_from_start) * 1e9)) for p in msg.points],
                         dtype=np.int64)
        positions = np.array([list(p.positions) for p in msg.points], dtype=np.float64)
        out.append(RecordedTrajectory(message.log_time_ns, stamp, tuple(msg.joint_names), times,
                                      positions.reshape(len(msg.points), -1)))
    return out


def _timeline(entries) -> tuple[list[int], list]:
    """(log times, values) in log-time order, for bisecting 'the latest value at time t'."""
    ordered = sorted(entries, key=lambda entry: entry[0])
    return [t for t, _ in ordered], [v for _, v in ordered]


class RecordedInputs:
    """The camera, joint-state and instruction messages of a recording, indexed for replay."""

    def __init__(self, recording: Recording, robot: RobotConfig, initial_instruction: str = "") -> None:
        self.robot = robot
        self.mapper = JointStateMapper(robot.joints.names, robot.gripper.joint if robot.gripper else None)
        self.joints: list[tuple[int, JointSample]] = []  # (log_time, sample), file order
        self.rejected_joint_states = 0
        for message in recording.on(recording.role_topic("joint_states")):
            msg = decode(message)
            stamp_s = node_stamp_ns(msg.header.stamp, message.log_time_ns) * 1e-9
            try:
                self.joints.append((message.log_time_ns, self.mapper.map(stamp_s, msg.name, msg.position,
                                                                        msg.velocity)))
            except InputRejected:
                self.rejected_joint_states += 1
        self.images: dict[int, tuple[int, RecordedMessage]] = {}  # observation stamp -> (log_time, message)
        for message in recording.on(recording.role_topic("image")):
            msg = decode(message)
            self.images.setdefault(node_stamp_ns(msg.header.stamp, message.log_time_ns), (message.log_time_ns, message))
        self.image_stamps = np.array(sorted(self.images), dtype=np.int64)
        self.instructions = _timeline((m.log_time_ns, decode(m).data)
                                      for m in recording.on(recording.role_topic("instruction")))
        self.initial_instruction = initial_instruction
        gripper = ((m.log_time_ns, decode(m).data) for m in recording.on(recording.role_topic("gripper_command")))
        self.gripper_commands = _timeline((t, float(data[0])) for t, data in gripper if len(data))
        self._sync = ObservationSync(math.inf, math.inf)
        self._fed = 0  # joints[:_fed] are in _sync

    def rgb(self, image_stamp_ns: int) -> np.ndarray:
        """The frame as the node decoded it (cv_bridge when importable, else control.inputs)."""
        msg = decode(self.images[image_stamp_ns][1])
        rgb = image_msg_to_rgb(msg)
        if rgb is not None:
            return np.ascontiguousarray(rgb, dtype=np.uint8)
        camera = self.robot.camera
        return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, (camera.height, camera.width))

    @staticmethod
    def _latest(timeline: tuple[list[int], list], cutoff_ns: int, default):
        times, values = timeline
        index = bisect_right(times, cutoff_ns)
        return values[index - 1] if index else default

    def observation(self, target: Target) -> Observation:
        """The observation of target, or InputRejected saying why it cannot be rebuilt."""
        if target.image_stamp_ns not in self.images:
            raise InputRejected("no_image", f"no recorded image stamped {target.image_stamp_ns} ns")
        if target.cutoff_ns < (self.joints[self._fed - 1][0] if self._fed else -1):
            self._sync, self._fed = ObservationSync(math.inf, math.inf), 0  # out of order: start over
        while self._fed < len(self.joints) and self.joints[self._fed][0] <= target.cutoff_ns:
            self._sync.put_joints(self.joints[self._fed][1])
            self._fed += 1
        stamp_s = target.image_stamp_ns * 1e-9
        rgb = self.rgb(target.image_stamp_ns)
        self._sync.put_image(ImageSample(stamp_s, rgb))
        synced = self._sync.get(target.cutoff_ns * 1e-9)
        if not synced.ok:
            raise InputRejected(synced.reason, synced.detail)
        matched = synced.inputs.matched_joints
        state = matched.positions
        if self.robot.gripper is not None:
            # PolicyLoop._state_vector: the measured gripper, else the last gripper command, else open.
            gripper = matched.gripper
            if gripper is None:
                gripper = self._latest(self.gripper_commands, target.cutoff_ns, self.robot.gripper.open_position)
            state = np.concatenate([state, [gripper]])
        at = target.cutoff_ns if target.instruction_cutoff_ns is None else target.instruction_cutoff_ns
        instruction = self._latest(self.instructions, at, self.initial_instruction)
        return Observation(image=rgb, state=np.asarray(state, dtype=np.float64), instruction=instruction,
                           stamp_ns=target.image_stamp_ns)

    def image_for(self, trajectory: RecordedTrajectory, dt_ns: int, chunk_size: int) -> int | None:
        """The observation stamp behind a published trajectory: the newest image, no later than the
        trajectory, whose stamp is a whole number (1..chunk_size) of dt before each point."""
        if not len(trajectory.times_ns):
            return None
        end = int(np.searchsorted(self.image_stamps, trajectory.stamp_ns, side="right"))
        for candidate in self.image_stamps[:end][::-1]:
            offsets = (trajectory.times_ns - candidate) / dt_ns
            steps = np.round(offsets)
            if (np.all(np.abs(offsets - steps) * dt_ns <= STAMP_TOLERANCE_NS)
                    and steps.min() >= 1 and steps.max() <= chunk_size):
                return int(candidate)
        return None


def recorded_targets(recording: Recording) -> list[Target]:
    """In-node recordings: one target per submitted observation, with what was recorded of it."""
    chunks = {}
    for message in recording.on(recording.role_topic("chunk")):
        msg = decode(message)
        chunks[message.sequence] = (np.array([list(p.positions) for p in msg.points], dtype=np.float64),
                                    message.log_time_ns)
    targets = []
    for message in recording.on(recording.role_topic("observation")):
        msg = decode(message)
        chunk, polled = chunks.get(message.sequence, (None, None))
        targets.append(Target(message.sequence, stamp_ns(msg.header.stamp), message.log_time_ns,
                              np.array(msg.position, dtype=np.float64), chunk, polled))
    return sorted(targets, key=lambda t: t.ordinal)


def inferred_targets(inputs: RecordedInputs, published: list[RecordedTrajectory], dt_ns: int, chunk_size: int,
                     control_period_ns: int) -> tuple[list[Target], int]:
    """`uam record` recordings: one target per published chunk, numbered in publishing order.
    Returns (targets, trajectories whose observation was not found).

    The joint states are those received up to one control period after the image. A second chunk
    from the same image is a re-plan on a new instruction: it used the instruction in force when
    that chunk was published."""
    found: list[tuple[int, RecordedTrajectory]] = []
    unmatched = 0
    for trajectory in published:
        if trajectory.is_hold:
            continue
        stamp = inputs.image_for(trajectory, dt_ns, chunk_size)
        if stamp is None:
            unmatched += 1
        else:
            found.append((stamp, trajectory))
    targets: list[Target] = []
    seen: set[int] = set()
    for ordinal, (stamp, trajectory) in enumerate(sorted(found, key=lambda item: item[0]), start=1):
        cutoff = inputs.images[stamp][0] + control_period_ns
        targets.append(Target(ordinal, stamp, cutoff,
                              instruction_cutoff_ns=trajectory.log_time_ns if stamp in seen else None))
        seen.add(stamp)
    return targets, unmatched
