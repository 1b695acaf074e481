"""uam_policy with inference_process:=true (and control_priority) over real DDS: the policy runs in a
spawned child process; the node publishes valid trajectories, holds when that child dies, and
exits cleanly -- child included -- on SIGTERM mid-chunk."""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from trajectory_msgs.msg import JointTrajectory

from test_policy_node import (Arm, check_jtc_valid, is_hold, last_diagnostic, sigterm_holds_and_exits_cleanly,
                              start_policy)


def child_pid(node) -> int:
    match = re.search(r"inference in process (\d+)", node.log())
    assert match, node.log()
    return int(match.group(1))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_process_worker_commands_valid_chunks_holds_when_the_child_dies_and_exits_cleanly(
    tmp_path, client, panda, panda_checkpoint
):
    node = start_policy(tmp_path, panda_checkpoint, enable=True, inference_process=True, control_priority=10)
    try:
        arm = Arm(panda)
        commands = client.record(JointTrajectory, panda.controller.trajectory_topic)
        diagnostics = client.record(DiagnosticArray, "/diagnostics")
        values = lambda: last_diagnostic(diagnostics)[1]  # noqa: E731
        assert client.run(90.0, until=lambda: values().get("lifecycle") == "active"), node.log()
        pid = child_pid(node)
        assert pid != node.process.pid and not gone(pid)

        # 1. Chunks from the child arrive as valid trajectories; diagnostics say where inference runs.
        assert client.run(30.0, arm.joints(client), arm.image(client), until=lambda: len(commands.messages) >= 5), \
            node.log()[-3000:]
        for msg, at in zip(commands.messages, commands.times):
            check_jtc_valid(msg, panda, client.now_s() - (time.monotonic() - at))
        assert client.run(5.0, arm.joints(client), arm.image(client),
                          until=lambda: int(values().get("chunks_accepted", 0)) >= 3)
        v = values()
        assert v["inference_process"] == "True" and v["backend"] == "torch"
        assert float(v["inference_latency_ms"]) > 0 and v["inference_errors"] == "0"
        # root / CAP_SYS_NICE: SCHED_FIFO; elsewhere one warning and normal priority.
        assert v["control_priority"] == "SCHED_FIFO 10" or v["control_priority"].startswith("refused"), v
        if v["control_priority"].startswith("refused"):
            assert node.log().count("SCHED_FIFO refused") == 1
        else:
            assert os.sched_getscheduler(pid) == os.SCHED_OTHER, "the inference child must not run real-time"

        # 2. The child dies mid-run: the node holds at the measured position and stays up, at ERROR.
        commands.clear()
        os.kill(pid, signal.SIGKILL)
        assert client.run(10.0, arm.joints(client), arm.image(client),
                          until=lambda: any(is_hold(m) for m in commands.messages)
                          and int(values().get("inference_errors", 0)) >= 1), node.log()[-3000:]
        client.run(1.0, arm.joints(client), arm.image(client))
        assert is_hold(commands.messages[-1]) and sum(is_hold(m) for m in commands.messages) == 1
        np.testing.assert_allclose(commands.messages[-1].points[0].positions, arm.q[:7], atol=1e-9)
        status, v = last_diagnostic(diagnostics)
        assert status.message.startswith("inference_error") and "killed by SIGKILL" in status.message
        assert status.level == b"\x02" and node.process.poll() is None
        assert "holding: inference_error: inference process died (killed by SIGKILL)" in node.log()
    finally:
        assert node.stop() == 0, node.log()[-3000:]
    assert "Traceback" not in node.log()


def test_sigterm_mid_chunk_holds_exits_zero_and_ends_the_child(tmp_path, client, panda, panda_checkpoint):
    node = start_policy(tmp_path, panda_checkpoint, enable=True, inference_process=True)
    try:
        arm = Arm(panda)
        commands = client.record(JointTrajectory, panda.controller.trajectory_topic)
        assert client.run(90.0, arm.joints(client), arm.image(client),
                          until=lambda: any(len(m.points) > 1 for m in commands.messages)), node.log()[-3000:]
        pid = child_pid(node)
        sigterm_holds_and_exits_cleanly(node, client, arm, commands)
        deadline = time.monotonic() + 5.0
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(pid), "the inference process outlived the node"
    finally:
        node.stop()


def test_events_executor_commands_valid_chunks_raises_its_timer_thread_and_exits_cleanly(
    tmp_path, client, panda, panda_checkpoint
):
    """executor:=events: the same valid commands; with control_priority the executor's timer thread
    (which wakes the control tick) runs at the control priority too; SIGTERM still ends in a hold."""
    node = start_policy(tmp_path, panda_checkpoint, enable=True, inference_process=True, control_priority=10,
                        executor="events")
    try:
        arm = Arm(panda)
        commands = client.record(JointTrajectory, panda.controller.trajectory_topic)
        diagnostics = client.record(DiagnosticArray, "/diagnostics")
        values = lambda: last_diagnostic(diagnostics)[1]  # noqa: E731
        assert client.run(90.0, arm.joints(client), arm.image(client),
                          until=lambda: int(values().get("chunks_accepted", 0)) >= 3 and len(commands.messages) >= 3), \
            node.log()[-3000:]
        for msg, at in zip(commands.messages, commands.times):
            check_jtc_valid(msg, panda, client.now_s() - (time.monotonic() - at))
        state = values()["control_priority"]
        if state.startswith("refused"):
            assert node.log().count("SCHED_FIFO refused") == 1
        else:
            match = re.fullmatch(r"SCHED_FIFO 10, executor thread\(s\) \[(\d+)\]", state)
            assert match, state
            helper = int(match.group(1))
            assert helper != node.process.pid and os.path.exists(f"/proc/{node.process.pid}/task/{helper}")
            assert os.sched_getscheduler(helper) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) == os.SCHED_FIFO
            assert os.sched_getparam(helper).sched_priority == 10
            assert os.sched_getscheduler(child_pid(node)) == os.SCHED_OTHER
        sigterm_holds_and_exits_cleanly(node, client, arm, commands)
    finally:
        node.stop()
