"""Recorder -> MCAP -> reader round trip: what goes in comes back, field for field, in a file other
MCAP readers accept."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (the recording stores ROS 2 messages)")

import yaml  # noqa: E402
from mcap.reader import make_reader  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from uam_ros.recording.reader import decode, read_recording, repair  # noqa: E402
from uam_ros.recording.recorder import Recorder  # noqa: E402
from uam_ros.recording.writer import McapRecordingWriter  # noqa: E402
from uam_ros.recording.topics import policy_topics  # noqa: E402
from uam_ros.ros.conversions import rgb_to_image_msg, s_to_duration  # noqa: E402


def joint_state(i: int) -> JointState:
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i // 100, (i % 100) * 10_000_000
    msg.name = ["panda_joint1", "panda_joint2"]
    msg.position = [0.001 * i, -0.5]
    msg.velocity = [0.1, 0.0]
    return msg


def trajectory(i: int) -> JointTrajectory:
    msg = JointTrajectory()
    msg.joint_names = ["panda_joint1", "panda_joint2"]
    msg.points = [JointTrajectoryPoint(positions=[0.01 * i + k, -k], velocities=[0.1, 0.2],
                                       time_from_start=s_to_duration(0.1 * (k + 1))) for k in range(4)]
    return msg


def test_every_message_comes_back_equal_with_its_times_sequence_qos_and_roles(tmp_path, panda):
    path = tmp_path / "run.mcap"
    topics = policy_topics(panda)
    recorder = Recorder(path, topics, {"model": "expert://pick", "seed": 3}, chunk_size=8 * 1024)
    rgb = np.random.default_rng(1).integers(0, 255, (128, 128, 3), np.uint8)
    sent = []
    for i in range(60):
        sent.append(("/joint_states", joint_state(i), 10_000 + i))
        if i % 6 == 0:
            sent.append(("/camera/image_raw", rgb_to_image_msg(rgb + i, 1000 + i * 0.01, "camera"), 10_000 + i))
        if i % 10 == 0:
            sent.append(("/joint_trajectory_controller/joint_trajectory", trajectory(i), 10_000 + i))
    sent.append(("/uam_policy/instruction", String(data="pick up the red cube"), 20_000))
    for k, (topic, msg, t) in enumerate(sent):
        as_bytes = k % 2 == 0  # both ways in: a raw subscription's bytes and a message object
        assert recorder.record(topic, serialize_message(msg) if as_bytes else msg, log_time_ns=t,
                               publish_time_ns=t - 5, sequence=k)
    assert not recorder.record("/not/recorded", String(data="x"))
    stats = recorder.close()
    assert sum(stats.written.values()) == len(sent) and not stats.dropped and stats.errors == 0

    recording = read_recording(path)
    assert recording.complete and recording.problem == ""
    assert len(recording.messages) == len(sent)
    for (topic, msg, t), (k, got) in zip(sent, enumerate(recording.messages)):
        assert got.topic == topic and got.log_time_ns == t and got.publish_time_ns == t - 5 and got.sequence == k
        back = deserialize_message(got.data, type(msg))
        assert back == msg
    image = decode(recording.on("/camera/image_raw")[1])
    assert image.encoding == "rgb8" and np.array_equal(np.frombuffer(image.data, np.uint8).reshape(128, 128, 3),
                                                       rgb + 6)

    # Schemas, QoS and roles for ros2 bag / Foxglove / uam replay.
    assert recording.type_name("/camera/image_raw") == "sensor_msgs/msg/Image"
    qos = yaml.safe_load(recording.channels["/uam_policy/instruction"].metadata["offered_qos_profiles"])
    assert qos[0]["durability"] == "transient_local" and qos[0]["reliability"] == "reliable"
    assert recording.channels["/joint_states"].metadata["topic_type_hash"].startswith("RIHS01_")
    assert recording.role_topic("command") == "/joint_trajectory_controller/joint_trajectory"
    assert recording.metadata["uam_ros"]["model"] == "expert://pick"
    assert recording.metadata["uam_ros.stats"]["messages"] == str(len(sent))

    # mcap's own indexed reader agrees (summary, chunk indexes and statistics are valid).
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert summary.statistics.message_count == len(sent) and summary.statistics.chunk_count > 3
        assert sum(1 for _ in reader.iter_messages(topics=["/joint_states"])) == 60


class StallingRecorder(Recorder):
    """A recorder whose disk stalls until released: the caller must not notice."""

    def __init__(self, *args, **kwargs) -> None:
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _encode(self, message):
        self.release.wait(10.0)
        return super()._encode(message)


def test_a_stalled_disk_drops_and_counts_messages_instead_of_blocking_the_caller(tmp_path, panda):
    recorder = StallingRecorder(tmp_path / "slow.mcap", policy_topics(panda), queue_size=5)
    start = time.perf_counter()
    accepted = [recorder.record("/joint_states", joint_state(i)) for i in range(50)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.05, f"record() blocked for {elapsed:.3f} s"
    assert 5 <= sum(accepted) <= 6  # the queue, plus the one the writer thread holds
    assert recorder.dropped == 50 - sum(accepted)
    recorder.release.set()
    stats = recorder.close()
    assert stats.written["/joint_states"] == sum(accepted)
    recording = read_recording(tmp_path / "slow.mcap")
    assert recording.complete and len(recording.messages) == sum(accepted)
    assert recording.metadata["uam_ros.stats"]["dropped./joint_states"] == str(50 - sum(accepted))


def test_repair_makes_a_cut_short_file_complete(tmp_path, panda):
    path = tmp_path / "run.mcap"
    recorder = Recorder(path, policy_topics(panda), chunk_size=2048, compression="none")
    for i in range(200):
        recorder.record("/joint_states", joint_state(i), log_time_ns=i)
    recorder.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])

    broken = read_recording(cut)
    assert not broken.complete and broken.problem
    assert 50 < len(broken.messages) < 200
    assert [m.log_time_ns for m in broken.messages] == list(range(len(broken.messages)))  # a prefix, no gaps

    fixed = tmp_path / "fixed.mcap"
    repair(cut, fixed)
    with open(fixed, "rb") as stream:
        reader = make_reader(stream)
        assert reader.get_summary().statistics.message_count == len(broken.messages)
    again = read_recording(fixed)
    assert again.complete and [m.data for m in again.messages] == [m.data for m in broken.messages]
    assert again.channels["/joint_states"].metadata == broken.channels["/joint_states"].metadata


def test_each_chunk_reaches_the_disk_when_it_is_complete_or_old_not_at_close(tmp_path):
    """What survives SIGKILL is what the OS has; read the file through another handle while the
    writer is still open (nothing closed, nothing flushed by hand)."""
    path = tmp_path / "open.mcap"
    # Chunks smaller than Python's file buffer: without an explicit flush they would sit in it.
    writer = McapRecordingWriter(path, chunk_size=1024, compression="none", flush_period_s=0.3)
    writer.add_channel("/joint_states", "sensor_msgs/msg/JointState")
    payloads = [serialize_message(joint_state(i)) for i in range(101)]
    per_chunk = 1024 // len(payloads[0]) + 1  # messages that fill one chunk
    largest_gap = 0
    for i, data in enumerate(payloads[:100]):
        writer.write("/joint_states", data, log_time_ns=i)
        largest_gap = max(largest_gap, i + 1 - len(read_recording(path).messages))
    assert largest_gap <= per_chunk  # only the chunk in progress is missing, ever
    on_disk = read_recording(path).messages
    assert 0 < len(on_disk) < 100
    assert [m.data for m in on_disk] == payloads[: len(on_disk)]

    writer.write("/joint_states", payloads[100], log_time_ns=100)
    writer.maybe_flush()  # younger than flush_period_s: stays in memory
    assert len(read_recording(path).messages) == len(on_disk)
    time.sleep(0.35)
    writer.maybe_flush()  # older: the partial chunk is written
    assert len(read_recording(path).messages) == 101
    writer.close()
    assert read_recording(path).complete
