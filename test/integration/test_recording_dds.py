"""Recording over real DDS: uam_policy with record:=FILE and `uam record` side by side, then
`uam replay` of the node's recording with the same (seeded, deterministic) checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from uam_ros.ros.node_process import NodeProcess
from uam_ros.recording.reader import decode, read_recording
from uam_ros.recording.topics import expand
from uam_ros.ros.qos import INSTRUCTION_QOS

INSTRUCTION = "pick up the red cube"


def start_recorder(tmp_path, out):
    """`uam record OUT` (its module entry point: the same run(), without the CLI's torch import
    competing with the policy node's start-up for the CPU)."""
    log = open(tmp_path / "record.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "uam_ros.recording.record_node", str(out), "--robot",
                                "franka_panda"], stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return process, log


def inputs_seen(client, diagnostics) -> str:
    """What the node last reported about its inputs, for a failure message (a DDS transport that
    stops delivering one topic shows here as a zero rate while the other flows)."""
    statuses = [s for msg in diagnostics.messages for s in msg.status if "uam_policy" in s.name]
    values = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
    keys = ("camera_rate_hz", "joint_state_rate_hz", "chunks_accepted", "holds", "last_reject")
    return (f"image readers matched: {client.image_pub.get_subscription_count()}; node's last diagnostics: "
            f"{statuses[-1].message if statuses else 'none received'} {({k: values.get(k) for k in keys})}")


def test_record_in_node_and_outside_then_replay_reproduces_every_chunk(tmp_path, client, panda, panda_checkpoint,
                                                                        capsys):
    in_node, outside = tmp_path / "node.mcap", tmp_path / "outside.mcap"
    recorder, recorder_log = start_recorder(tmp_path, outside)
    node = NodeProcess("uam_ros.ros.policy_node", {
        "robot": "franka_panda", "model": panda_checkpoint, "autostart": True, "inference_threads": 1,
        "diagnostics_period_s": 0.25, "backend": "torch", "enable": True, "seed": 3, "record": str(in_node),
    }, tmp_path / "policy.log")
    try:
        names = list(panda.joints.names) + [panda.gripper.joint]
        q = np.array(panda.home + [panda.gripper.open_position])
        rgb = np.random.default_rng(0).integers(0, 255, (panda.camera.height, panda.camera.width, 3), np.uint8)
        joints = lambda: client.publish_joints(names, q)  # noqa: E731
        image = lambda: client.publish_image(rgb)  # noqa: E731
        instruction = client.node.create_publisher(String, "/uam_policy/instruction", INSTRUCTION_QOS)
        instruction.publish(String(data=INSTRUCTION))
        commands = client.record(JointTrajectory, panda.controller.trajectory_topic)
        diagnostics = client.record(DiagnosticArray, "/diagnostics")
        # Both image readers (the node and `uam record`) discovered before the clock starts.
        assert client.run(60.0, joints, until=lambda: client.image_pub.get_subscription_count() >= 2), \
            f"image readers matched: {client.image_pub.get_subscription_count()} of 2\n{node.log()}"
        assert client.run(60.0, joints, image, until=lambda: len(commands.messages) >= 1), \
            f"{inputs_seen(client, diagnostics)}\n{node.log()}"
        # ... and the recorder receiving both: the client seeing its readers does not mean the recorder
        # has matched the client's writers yet (a best-effort reader drops data from an unmatched
        # writer; on a busy host that match came seconds later).
        record_log = tmp_path / "record.log"
        live = lambda: all(f"first message on {topic}" in record_log.read_text()  # noqa: E731
                           for topic in (expand(panda.camera.image_topic), expand("joint_states")))
        assert client.run(60.0, joints, image, until=live), record_log.read_text()
        sent_in_window = {"image": 0, "joint_states": 0}

        def counted(role, publish):
            def call():
                sent_in_window[role] += 1
                publish()
            return call

        start = time.monotonic()
        client.run(3.0, counted("joint_states", joints), counted("image", image))
        recorded_s = time.monotonic() - start
        assert node.stop(signal.SIGINT) == 0, node.log()
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(15) == 0, (tmp_path / "record.log").read_text()
    finally:
        node.stop()
        if recorder.poll() is None:
            recorder.kill()
        recorder_log.close()
    assert "Traceback" not in node.log() and "recording closed" in node.log(), node.log()

    # The node's file: every topic it reads and publishes, at plausible rates, plus its inferences.
    mine = read_recording(in_node)
    assert mine.complete, mine.problem
    counts = {role: len(mine.on(mine.role_topic(role))) for role in
              ("image", "joint_states", "instruction", "command", "predicted_trajectory", "gripper_command",
               "diagnostics", "observation", "chunk")}
    # Floors relative to what the client really sent in the 3 s window (a loaded host publishes less
    # than the 15/100 Hz asked); the file also holds everything before the window.
    floor = {role: 0.7 * n for role, n in sent_in_window.items()}
    assert sent_in_window["image"] >= 5 and sent_in_window["joint_states"] >= 30, sent_in_window
    assert counts["image"] >= floor["image"] and counts["joint_states"] >= floor["joint_states"], (counts, sent_in_window)
    assert counts["instruction"] == 1 and decode(mine.on(mine.role_topic("instruction"))[0]).data == INSTRUCTION
    assert counts["diagnostics"] >= 2 * recorded_s, counts
    assert counts["observation"] >= 5 and counts["chunk"] >= counts["observation"] - 1, counts
    assert counts["command"] >= 5 and counts["predicted_trajectory"] >= 5 and counts["gripper_command"] >= 1, counts
    assert mine.metadata["uam_ros"]["seed"] == "3" and mine.metadata["uam_ros.stats"]["dropped"] == "0"

    # `uam record`'s file: the same DDS traffic; every command it saw is one the node recorded. (The
    # payloads are equal messages, not equal bytes: rclpy's serialize_message pads differently from
    # the writer's wire encoding; both are valid CDR of the same message.)
    theirs = read_recording(outside)
    assert theirs.complete, theirs.problem
    seen = {role: len(theirs.on(theirs.role_topic(role))) for role in
            ("image", "joint_states", "instruction", "command", "predicted_trajectory", "diagnostics")}
    assert seen["image"] >= floor["image"] and seen["joint_states"] >= floor["joint_states"], (seen, sent_in_window)
    assert seen["instruction"] == 1 and seen["command"] >= 5 and seen["diagnostics"] >= 2 * recorded_s, seen
    sent = [decode(m) for m in mine.on(mine.role_topic("command"))]
    received = [decode(m) for m in theirs.on(theirs.role_topic("command"))]
    assert sum(msg in sent for msg in received) >= len(received) - 1  # the node may close before the last arrives
    assert list(received[0].joint_names) == list(panda.joints.names)

    # Replay (`uam replay`, in this process: torch is loaded already): the same checkpoint, with model,
    # backend, seed and threads from the file, reproduces each chunk.
    from uam_ros.cli import build_parser, main
    from uam_ros.recording import record_node

    assert build_parser().parse_args(["record", "x.mcap"]).func is record_node.run
    report_path = tmp_path / "replay.json"
    assert main(["replay", str(in_node), "--json", str(report_path), "--check"]) == 0
    out = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["chunks"]["compared"] == counts["chunk"] and report["identical"] is True
    assert report["chunks"]["max_abs_diff"] <= 1e-5
    assert report["observation_state_max_abs_diff"] <= 1e-12 and not report["skipped"] and report["noise_gaps"] == 0
    # Every commanded chunk is matched to the replayed chunk it came from.
    assert report["commands"]["compared"] >= 5 and report["unmatched_trajectories"] == 0, report
    assert "chunk max" in out and "panda_joint1" in out


def test_recorder_names_silent_topics_with_their_publisher_count_and_backs_off(tmp_path, client, capfd):
    """A topic without data is reported ("no message yet on T (N publishers seen)"), less and less
    often; a topic whose first message arrived leaves the report. Why: a recording that silently
    lacks the camera is found out only when it is replayed."""
    from rclpy.qos import QoSProfile

    from uam_ros.recording.record_node import RecorderNode
    from uam_ros.recording.topics import TopicSpec

    talking, silent = "/uam_test_recorder_talking", "/uam_test_recorder_silent"
    specs = [TopicSpec("talking", talking, String, QoSProfile(depth=10)),
             TopicSpec("silent", silent, String, QoSProfile(depth=10))]
    node = RecorderNode(tmp_path / "silence.mcap", specs, {"recorder": "test"}, silence_report_s=0.2,
                        context=client.context)
    client.executor.add_node(node)
    publisher = client.node.create_publisher(String, talking, 10)
    try:
        published = lambda: publisher.publish(String(data="hello"))  # noqa: E731
        assert client.run(30.0, published, until=lambda: talking not in node.silent, joint_hz=20.0)
        client.run(1.6, published, joint_hz=20.0)
    finally:
        client.executor.remove_node(node)
        node.recorder.close()
        node.destroy_node()
    assert node.silent == {silent}
    log = capfd.readouterr().err
    assert f"first message on {talking}" in log
    reports = log.count(f"no message yet on {silent} (0 publishers seen)")
    assert 2 <= reports <= 5, log  # 0.2 s doubling to 0.4, 0.8, 1.6 ...: not one per 0.2 s
