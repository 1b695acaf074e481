"""`uam replay` on recordings of a run whose answer is known.

The run is the node's own decision code (PolicyLoop, fed and ticked the way PolicyNode does, with
the inference worker replaced by a synchronous one on a simulated clock) recording through
PolicyRecording, driving a seeded, noise-drawing policy. Replaying with that policy must
reproduce every chunk exactly; replaying with another must not.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (the recording stores ROS 2 messages)")

from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from uam_ros.control.policy_loop import PolicyLoop  # noqa: E402
from uam_ros.recording import replay as replay_cli  # noqa: E402
from uam_ros.recording.policy_tap import PolicyRecording  # noqa: E402
from uam_ros.recording.reader import read_recording  # noqa: E402
from uam_ros.recording.recorder import Recorder  # noqa: E402
from uam_ros.recording.replay import replay  # noqa: E402
from uam_ros.recording.topics import policy_topics  # noqa: E402
from uam_ros.ros.conversions import (  # noqa: E402
    positions_msg, rgb_to_image_msg, s_to_stamp, stamp_to_s, trajectory_to_msg,
)
from uam_ros.runtime.policy import ActionChunk  # noqa: E402
from uam_ros.runtime.worker import WorkerResult  # noqa: E402

T0 = 1_700_000_000.0  # an epoch-sized clock, where float seconds lose nanoseconds
MODEL = "python://test_recording_replay:NoisyPolicy?seed=5&scale=0.003"


class NoisyPolicy:
    """Deterministic given its inputs and its place in a seeded noise sequence, like a flow-matching
    checkpoint: reacts to the state, the image and the instruction, plus one noise draw per call."""

    name = "noisy"

    def __init__(self, joint_names, chunk_size, robot, seed=0, scale=0.003, offset=0.0) -> None:
        self.dof, self.chunk_size, self.seed = len(joint_names), chunk_size, seed
        self.scale, self.offset = scale, offset
        self.dt_s = 0.1
        self.warmup()

    def warmup(self) -> float:
        self._noise = np.random.default_rng(self.seed)
        return 0.0

    def infer(self, observation) -> ActionChunk:
        steps = np.arange(1, self.chunk_size + 1)[:, None] / self.chunk_size
        drift = 0.02 * (observation.image.mean() / 255.0 - 0.5) + 0.002 * len(observation.instruction)
        # One draw per call, the same for every point: smooth enough that the safety filter never
        # clamps, so past the blend window the commands are the chunks point for point.
        noise = self._noise.standard_normal(self.dof) * self.scale
        positions = observation.state[None, :] + steps * drift + noise[None, :] + self.offset
        return ActionChunk(positions=positions, dt_s=self.dt_s, observation_stamp_ns=observation.stamp_ns)


class SyncWorker:
    """The inference worker on a simulated clock: the result is ready latency_s after submit.
    Hands observations and results to the recording as PolicyNode's _PollRecorder does."""

    def __init__(self, policy, recording, clock, latency_s=0.04) -> None:
        self.policy, self.recording, self.clock, self.latency_s = policy, recording, clock, latency_s
        self.pending = None

    def submit(self, observation) -> bool:
        if self.pending is not None:
            return False
        self.pending = (observation, self.clock())
        self.recording.observation(observation)
        return True

    def poll(self):
        result = None
        if self.pending is not None and self.clock() - self.pending[1] >= self.latency_s:
            result = WorkerResult(self.policy.infer(self.pending[0]), "", self.latency_s)
            self.pending = None
        self.recording.inference(result)
        return result

    def busy_for_s(self) -> float:
        return 0.0 if self.pending is None else self.clock() - self.pending[1]


def simulate_run(path, robot, seconds=2.0):
    """A node run: joint states at 100 Hz (the arm moving), camera at 15 Hz, an instruction that
    changes halfway, the control timer at 100 Hz, everything recorded in the node's way."""
    now = [T0]
    clock_ns = lambda: int(round(now[0] * 1e9))  # noqa: E731
    topics = {spec.role: spec for spec in policy_topics(robot)}
    recording = PolicyRecording(path, topics, "/uam_policy", robot.action_joint_names,
                                {"robot": robot.name, "model": MODEL, "seed": 5, "instruction": "reach the red cube"},
                                clock_ns)
    worker = SyncWorker(NoisyPolicy(robot.action_joint_names, robot.chunk.chunk_size, robot.name, seed=5,
                                    scale=0.003), recording, lambda: now[0])
    loop = PolicyLoop(robot, worker)
    loop.set_instruction("reach the red cube")
    names = list(robot.joints.names) + [robot.gripper.joint]
    events = [(T0 + k * 0.01 + 0.002, "joints", T0 + k * 0.01) for k in range(int(seconds * 100))]
    events += [(T0 + k / 15 + 0.006, "image", T0 + k / 15) for k in range(int(seconds * 15))]
    events += [(T0 + 0.0005 + k * 0.01, "tick", None) for k in range(int(seconds * 100))]
    events += [(T0 + seconds / 2, "instruction", "push the blue block")]
    for at, kind, value in sorted(events, key=lambda e: e[0]):
        now[0] = at
        if kind == "joints":
            msg = JointState(name=names)
            msg.header.stamp = s_to_stamp(value)
            msg.position = list(np.array(robot.home + [robot.gripper.open_position]) + 0.05 * np.sin(value - T0))
            msg.velocity = [0.0] * len(names)
            recording.message("joint_states", msg)
            loop.on_joint_state(stamp_to_s(msg.header.stamp), msg.name, msg.position, msg.velocity)
        elif kind == "image":
            shade = int((value - T0) * 15) * 7 % 255
            msg = rgb_to_image_msg(np.full((robot.camera.height, robot.camera.width, 3), shade, np.uint8), value, "cam")
            recording.message("image", msg)
            loop.on_image(stamp_to_s(msg.header.stamp), msg.encoding, msg.height, msg.width, msg.step, msg.data)
        elif kind == "instruction":
            recording.message("instruction", String(data=value))
            loop.set_instruction(value)
        else:
            result = loop.tick(at)
            if result.command is not None:
                msg = trajectory_to_msg(result.command)
                if result.chunk is not None:
                    recording.message("predicted_trajectory", msg)
                recording.message("command", msg)
            if result.gripper is not None:
                recording.message("gripper_command", positions_msg([result.gripper]))
    recording.close()
    return loop.counters


def copy_without(source, target, drop):
    """The recording minus the messages drop(message) selects (as if never recorded)."""
    recording = read_recording(source)
    topics = [spec for spec in policy_topics_from(recording)]
    recorder = Recorder(target, topics, dict(recording.metadata["uam_ros"]))
    for message in recording.messages:
        if not drop(message):
            recorder.record(message.topic, message.data, message.log_time_ns, message.publish_time_ns, message.sequence)
    recorder.close()


def policy_topics_from(recording):
    from uam_ros.recording.reader import message_class
    from uam_ros.recording.topics import DEFAULT_QOS, TopicSpec

    roles = {topic: key[len("topic."):] for key, topic in recording.metadata["uam_ros"].items()
             if key.startswith("topic.")}
    return [TopicSpec(roles[topic], topic, message_class(recording.type_name(topic)), DEFAULT_QOS)
            for topic in recording.channels]


@pytest.fixture(scope="module")
def run(tmp_path_factory, panda):
    path = tmp_path_factory.mktemp("replay") / "run.mcap"
    counters = simulate_run(path, panda)
    assert counters.chunks_accepted >= 10 and counters.chunks_rejected == 0, counters
    return path


def test_replay_with_the_recorded_model_reproduces_every_chunk_and_observation(run, panda):
    recording = read_recording(run)
    chunks = len(recording.on(recording.role_topic("chunk")))
    report = replay(run)  # model, seed and instruction from the file
    assert report.inferences == len(recording.on(recording.role_topic("observation"))) >= chunks >= 15
    assert report.chunks.items == chunks and report.chunks.overall_max == 0.0 and report.identical is True
    assert report.state_max_abs_diff == 0.0 and not report.skipped and report.noise_gaps == 0
    commands = [m for m in recording.on(recording.role_topic("command"))]
    assert report.commands.items == len(commands) - report.holds and report.unmatched_trajectories == 0
    # Past the blend window the commanded points are the chunk's (nothing was clamped here).
    assert report.commands_after_blend.overall_max < 1e-9
    assert report.commands.overall_max > 1e-4  # ... but the blended first points are not


def test_replay_with_another_model_says_so_and_check_fails(run, tmp_path, capsys, panda):
    other = MODEL.replace("seed=5", "seed=6")
    report = replay(run, other)
    assert report.identical is False and report.chunks.overall_max > 1e-3
    args = argparse.Namespace(file=run, model=other, backend="", robot="", seed=None, threads=None, instruction=None,
                              tolerance=1e-5, json=str(tmp_path / "r.json"), check=True)
    assert replay_cli.run(args) == 1
    out = capsys.readouterr().out
    assert "reproduced: NO" in out and "panda_joint7" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["identical"] is False and data["chunks"]["compared"] == report.chunks.items
    assert set(data["chunks"]["joints"]) == set(panda.action_joint_names)
    # The instruction is part of what is replayed, too: the first half of the run used the node's
    # instruction parameter (from the file's metadata), the second a message.
    wrong_instruction = replay(run, instruction="x")
    assert wrong_instruction.identical is False and 0 < wrong_instruction.chunks.overall_max


@pytest.mark.parametrize("lost", [1, 4])
def test_an_observation_lost_from_the_recording_keeps_the_noise_sequence_aligned(run, tmp_path, lost):
    holed = tmp_path / "holed.mcap"
    copy_without(run, holed, lambda m: m.topic.endswith("/recording/observation") and m.sequence == lost)
    report = replay(holed)
    assert report.noise_gaps == 1 and report.identical is True
    assert report.chunks.items == len(read_recording(run).on("/uam_policy/recording/chunk")) - 1


def test_a_uam_record_recording_is_matched_by_timing(run, tmp_path):
    """Without the node's inference channels: each trajectory's observation is found from its point
    times; with every inference published, even the noise lines up."""
    outside = tmp_path / "outside.mcap"
    copy_without(run, outside, lambda m: "/recording/" in m.topic)
    report = replay(outside, MODEL)
    assert report.chunks is None and report.identical is None
    assert report.commands.items >= 15 and report.unmatched_trajectories == 0
    assert report.commands_after_blend.overall_max < 1e-9
    wrong = replay(outside, MODEL.replace("scale=0.003", "scale=0.004"))
    assert wrong.commands_after_blend.overall_max > 1e-4
