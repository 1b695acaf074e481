"""A recording process killed with SIGKILL leaves a file readable up to its last complete chunk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (the recording stores ROS 2 messages)")

from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from uam_ros.recording.reader import read_recording  # noqa: E402

FLUSH_PERIOD_S = 0.2

CHILD = textwrap.dedent("""
    import sys, time
    from sensor_msgs.msg import JointState
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.recording.recorder import Recorder
    from uam_ros.recording.topics import policy_topics

    # Small messages and a big chunk size: the chunks never fill, so only the time-based flush
    # gets anything to disk (the size-based path is covered in test_recording_writer).
    recorder = Recorder(sys.argv[1], policy_topics(load_robot_config("franka_panda")), {"run": "crash test"},
                        chunk_size=1024 * 1024, flush_period_s=float(sys.argv[2]))
    print("ready", flush=True)
    i = 0
    while True:  # until SIGKILL
        i += 1
        msg = JointState(name=["panda_joint1"], position=[float(i)])
        recorder.record("/joint_states", msg, log_time_ns=time.time_ns(), sequence=i)
        time.sleep(0.005)
""")


def test_sigkill_leaves_every_complete_chunk_readable(tmp_path):
    path = tmp_path / "killed.mcap"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(FLUSH_PERIOD_S)], stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.2)
        killed_ns = time.time_ns()
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    recording = read_recording(path)
    assert not recording.complete and recording.problem  # no summary, no footer: it never closed
    assert recording.metadata["uam_ros"]["run"] == "crash test"  # written before the first message
    joints = recording.on("/joint_states")
    assert len(joints) >= 50
    # A prefix of what was sent, nothing missing in between, every payload intact.
    assert [m.sequence for m in joints] == list(range(1, len(joints) + 1))
    assert [deserialize_message(m.data, JointState).position[0] for m in joints] == \
        [float(i) for i in range(1, len(joints) + 1)]
    # Lost: at most the chunk in progress, closed at the latest FLUSH_PERIOD_S after its first message
    # (plus scheduling slack on a loaded machine).
    lost_s = (killed_ns - joints[-1].log_time_ns) * 1e-9
    assert lost_s < FLUSH_PERIOD_S + 0.6, f"the last readable message is {lost_s:.2f} s older than the kill"
