"""The recording behind uam_policy's `record:=FILE.mcap` parameter.

The node hands every message it receives and publishes to message(role, msg), and its
inference hand-off to observation()/inference(); all of them only queue a reference (see
uam_ros.recording.recorder), so the control timer never waits on the file. Recorded in the node,
the file holds exactly what the node saw, in the order it saw it (log_time = the node's clock
when its callback ran), plus two channels nothing else can record:

    <node>/recording/observation  the state vector of every observation submitted to the model
    <node>/recording/chunk        every chunk the model returned, before blending and safety

whose MCAP sequence numbers count the inferences. The k-th inference draws the k-th sample of the
seeded noise generator, so `uam replay` can feed the model the same observations in the same
order and expect the same chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from uam_ros.recording.recorder import Recorder
from uam_ros.recording.topics import TopicSpec, inference_topics
from builtin_interfaces.msg import Time

from uam_ros.ros.cdr import ns_to_sec_nanosec
from uam_ros.ros.conversions import s_to_duration

RECORD_FORMAT = "1"


def ns_to_stamp(stamp_ns: int) -> Time:
    """Exact (integer) split, so replay recovers the observation stamp to the nanosecond; a
    round trip through float seconds can be off by a few hundred ns at today's epoch times."""
    sec, nanosec = ns_to_sec_nanosec(int(stamp_ns))
    return Time(sec=sec, nanosec=nanosec)


def observation_msg(stamp_ns: int, joint_names: Sequence[str], state: np.ndarray) -> JointState:
    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.name = list(joint_names)
    msg.position = [float(v) for v in np.asarray(state, dtype=np.float64).reshape(-1)]
    return msg


def chunk_msg(stamp_ns: int, joint_names: Sequence[str], positions: np.ndarray, dt_s: float) -> JointTrajectory:
    """A raw chunk as a JointTrajectory: header.stamp = observation stamp, point i at (i+1)*dt."""
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.joint_names = list(joint_names)
    q = np.asarray(positions, dtype=np.float64)
    points = []
    for i in range(q.shape[0] if q.ndim == 2 else 0):
        point = JointTrajectoryPoint()
        point.positions = q[i].tolist()
        point.time_from_start = s_to_duration((i + 1) * float(dt_s))
        points.append(point)
    msg.points = points
    return msg


class PolicyRecording:
    """One recording for one configured policy node (configure -> cleanup/shutdown)."""

    def __init__(self, path: str | Path, topics: dict[str, TopicSpec], node_name: str,
                 joint_names: Sequence[str], metadata: dict[str, str], clock_ns: Callable[[], int]) -> None:
        internal = inference_topics(node_name)
        self.roles = {**{role: spec.topic for role, spec in topics.items()},
                      **{spec.role: spec.topic for spec in internal}}
        self.joint_names = list(joint_names)
        self.recorder = Recorder(path, [*topics.values(), *internal],
                                 {"recorder": "uam_policy record", "record_format": RECORD_FORMAT, **metadata},
                                 clock_ns=clock_ns)
        self.submitted = 0
        self.inferences = 0

    def message(self, role: str, msg) -> None:
        """A message the node received or published on the topic of role."""
        topic = self.roles.get(role)
        if topic is not None:
            self.recorder.record(topic, msg)

    def observation(self, observation) -> None:
        """An observation the inference worker accepted (uam_ros.runtime.policy.Observation)."""
        self.submitted += 1
        stamp, state, names = observation.stamp_ns, observation.state, self.joint_names
        self.recorder.record(self.roles["observation"], lambda: observation_msg(stamp, names, state),
                             sequence=self.submitted)

    def inference(self, result) -> None:
        """A result polled from the worker (uam_ros.runtime.worker.WorkerResult): one inference,
        counted even when it failed so the numbering stays that of the noise draws."""
        if result is None:
            return
        self.inferences += 1
        chunk = result.chunk
        if chunk is None:
            return
        names = self.joint_names
        self.recorder.record(self.roles["chunk"],
                             lambda: chunk_msg(chunk.observation_stamp_ns, names, chunk.positions, chunk.dt_s),
                             sequence=self.inferences)

    def close(self):
        return self.recorder.close()
