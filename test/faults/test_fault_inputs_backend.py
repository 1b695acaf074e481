"""Fault table rows a, b, c, d, f, i (docs/safety.md): one enabled uam_policy process, driven by
fault_policy.FaultPolicy (python:// plugin) so the backend's faults can be switched from here.

Each row: run normally, inject the fault, expect a log line + a diagnostic + a hold at the measured
position (or no command at all), then remove the fault and expect valid chunks again. Every
JointTrajectory received on the controller topic is checked (JTC validity for chunks, hold shape
for holds) by CommandChecker. The rows run in file order on one node; SIGINT (f) comes last.
"""

from __future__ import annotations

import re
import signal
import time

import numpy as np
import pytest
from std_msgs.msg import String

from fault_harness import Arm, CommandChecker, Diagnostics, check_hold, chunk_count, is_hold, start_node
import ros_harness
from uam_ros.ros import conversions
from uam_ros.ros.qos import INSTRUCTION_QOS

INFERENCE_TIMEOUT_S = 0.5
SLOW_INFERENCE_S = 2.0  # > the 1.6 s chunk horizon: the late chunk is dropped whole


class Ctx:
    def __init__(self, node, client, robot, control, trace):
        self.node, self.client, self.robot = node, client, robot
        self.control, self.trace = control, trace
        self.arm = Arm(robot)
        self.diag = Diagnostics(client)
        self.commands = CommandChecker(client, robot)

    def good_joints(self):
        return self.arm.joints(self.client)

    def good_image(self):
        return self.arm.image(self.client)

    def log_from(self, offset: int) -> str:
        return self.node.log()[offset:]

    def log_offset(self) -> int:
        return len(self.node.log())


@pytest.fixture(scope="module")
def ctx(rclpy_context, panda, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults_a")
    control, trace = tmp / "fault", tmp / "trace"
    model = f"python://fault_policy:FaultPolicy?control={control}&trace={trace}"
    node = start_node(tmp / "policy.log", model=model, enable=True, inference_timeout_s=INFERENCE_TIMEOUT_S,
                      instruction="pick up the red cube")
    client = ros_harness.TestClient("uam_fault_client_a")
    context = Ctx(node, client, panda, control, trace)
    try:
        assert client.run(60.0, until=lambda: context.diag.value("lifecycle", "") == "active"), node.log()
        yield context
    finally:
        client.close()
        node.stop()
    assert "Traceback" not in node.log(), node.log()


def run_normally(ctx: Ctx, chunks: int = 3, timeout: float = 30.0, joints=None) -> None:
    """Good inputs until `chunks` new valid chunks arrived and diagnostics say running."""
    start = time.monotonic()
    joints = joints or ctx.good_joints()
    ok = ctx.client.run(timeout, joints, ctx.good_image(),
                        until=lambda: chunk_count(ctx.commands, start) >= chunks
                        and any(s.message == "running" for s, _ in ctx.diag.statuses(start)))
    assert ok, ("no recovery: valid chunks did not resume", ctx.node.log()[-3000:])
    ctx.commands.check_all()
    assert ctx.node.process.poll() is None


def expect_hold_then_silence(ctx: Ctx, joints, image, log_pattern: str, status_prefix: str | None,
                             counter: str | None = None, timeout: float = 15.0, quiet_s: float = 1.2,
                             inject=None):
    """The fault must produce: the log line, a diagnostic whose message starts with status_prefix
    (and `counter` increased), one hold at the measured arm position, then no command at all."""
    # "holding: ..." is logged throttled to once a second, so a new fault within 1 s of the last hold
    # log line is never logged (finding, see test_second_hold_within_a_second_is_logged); keep the rows
    # apart so each tests its own log line.
    ctx.client.run(1.1, ctx.good_joints(), ctx.good_image())
    before = {key: ctx.diag.count(key) for key in ("holds", counter) if key}
    offset, start = ctx.log_offset(), time.monotonic()
    if inject is not None:
        inject()

    def seen():
        statuses = ctx.diag.statuses(start)
        return (re.search(log_pattern, ctx.log_from(offset)) is not None
                and (status_prefix is None or any(s.message.startswith(status_prefix) for s, _ in statuses))
                and any(is_hold(m) for m, _ in ctx.commands.since(start))
                and (counter is None or ctx.diag.count(counter) > before[counter]))

    assert ctx.client.run(timeout, joints, image, until=seen), (
        log_pattern, status_prefix, [s.message for s, _ in ctx.diag.statuses(start)][-5:],
        [len(m.points) for m, _ in ctx.commands.since(start)], ctx.log_from(offset)[-3000:])
    ctx.client.run(quiet_s, joints, image)
    window = ctx.commands.since(start)
    last, last_at = window[-1]
    assert is_hold(last), [len(m.points) for m, _ in window]
    check_hold(last, ctx.robot, ctx.arm.q[: ctx.robot.arm_dof])
    assert time.monotonic() - last_at >= quiet_s - 0.05, "commands kept coming after the hold"
    ctx.client.run(0.5, joints, image)  # let the counters reach a diagnostics message
    assert ctx.diag.count("holds") > before["holds"]
    status, _ = ctx.diag.last()
    assert status.level != b"\x00", status
    ctx.commands.check_all()
    assert ctx.node.process.poll() is None


# ---- b3: extra joints are normal -------------------------------------------------------------
def test_extra_unknown_joints_alongside_all_arm_joints_are_accepted(ctx):
    names = ctx.arm.names + ["panda_finger_joint2", "conveyor_belt_joint"]

    def joints():
        ctx.client.publish_joints(names, list(ctx.arm.q) + [0.04, 12.5])

    run_normally(ctx, chunks=5, timeout=60.0, joints=joints)
    _, values = ctx.diag.last()
    assert not any(k.startswith("rejected_") for k in values), values
    assert "joint_states rejected" not in ctx.node.log()


# ---- a: joint states stop, camera continues --------------------------------------------------
def test_stale_joint_states_hold_then_recover(ctx):
    run_normally(ctx)
    expect_hold_then_silence(ctx, None, ctx.good_image(), r"holding: stale_joint_state: newest joint state is",
                             "stale_joint_state")
    run_normally(ctx)


def test_second_hold_within_a_second_is_logged(ctx):
    run_normally(ctx)
    ctx.client.run(1.1, ctx.good_joints(), ctx.good_image())
    offset, start = ctx.log_offset(), time.monotonic()
    holds = lambda: [at for m, at in ctx.commands.since(start) if is_hold(m)]  # noqa: E731
    assert ctx.client.run(10.0, None, ctx.good_image(), until=lambda: len(holds()) >= 1)
    first = holds()[0]
    assert ctx.client.run(10.0, ctx.good_joints(), ctx.good_image(), until=lambda: chunk_count(ctx.commands, first) >= 1)
    assert ctx.client.run(10.0, None, ctx.good_image(), until=lambda: len(holds()) >= 2)
    gap = holds()[1] - first
    ctx.client.run(1.5, None, ctx.good_image())
    published = len(holds())
    log = ctx.log_from(offset)
    lines = log.count("[hold sent]")  # every published hold has its own line, whatever its reason
    run_normally(ctx)
    if gap > 0.9:
        pytest.skip(f"could not provoke two holds within the 1 s throttle (gap {gap:.2f} s)")
    assert "holding: stale_joint_state" in log
    assert lines >= published >= 2, (f"{published} holds (first two {gap:.2f} s apart), {lines} '[hold sent]' "
                                     f"log line(s):\n{log[-3000:]}")


# ---- b: bad joint states / images ------------------------------------------------------------
def test_inf_joint_state_is_rejected_hold_then_recover(ctx):
    run_normally(ctx)
    q = ctx.arm.q.copy()
    q[3] = np.inf
    expect_hold_then_silence(ctx, lambda: ctx.client.publish_joints(ctx.arm.names, q), ctx.good_image(),
                             r"joint_states rejected: joint_states has non-finite positions for \['panda_joint4'\]",
                             "stale_joint_state", counter="rejected_non_finite_joint_state")
    run_normally(ctx)


def test_missing_arm_joint_is_rejected_hold_then_recover(ctx):
    run_normally(ctx)
    names = [n for n in ctx.arm.names if n != "panda_joint7"]
    q = [v for n, v in zip(ctx.arm.names, ctx.arm.q) if n != "panda_joint7"]
    expect_hold_then_silence(ctx, lambda: ctx.client.publish_joints(names, q), ctx.good_image(),
                             r"joint_states rejected: joint_states lacks arm joints \['panda_joint7'\]",
                             "stale_joint_state", counter="rejected_unknown_joints")
    run_normally(ctx)


def test_yuv422_image_is_rejected_hold_then_recover(ctx):
    if conversions._BRIDGE is not None:
        pytest.skip("cv_bridge is importable: it converts yuv422 itself, so the frame is not rejected")
    run_normally(ctx)
    expect_hold_then_silence(ctx, ctx.good_joints(), ctx.arm.image(ctx.client, "yuv422"),
                             r"camera image rejected: image encoding 'yuv422' is not supported",
                             "stale_image", counter="rejected_unsupported_encoding")
    run_normally(ctx)


# ---- c: clock jumps --------------------------------------------------------------------------
def test_stamps_jumping_100s_into_the_future_command_nothing_then_recover(ctx):
    run_normally(ctx)
    offset, start = ctx.log_offset(), time.monotonic()
    joints = lambda: ctx.client.publish_joints(ctx.arm.names, ctx.arm.q, stamp_s=ctx.client.now_s() + 100.0)  # noqa: E731
    image = lambda: ctx.client.publish_image(ctx.arm.rgb, stamp_s=ctx.client.now_s() + 100.0)  # noqa: E731
    assert ctx.client.run(15.0, joints, image, until=lambda: re.search(
        r"holding: future_joint_state: joint state stamp is (99|100)\.\d+ s in the future", ctx.log_from(offset))
        and any(s.message.startswith(("future_", "no_joint_state")) for s, _ in ctx.diag.statuses(start))), \
        ctx.log_from(offset)[-3000:]
    ctx.client.run(2.0, joints, image)
    window = ctx.commands.since(start)
    late_chunks = [m for m, at in window if not is_hold(m) and at > start + 0.5]
    assert not late_chunks, "a chunk was commanded from future-stamped inputs"
    holds = [m for m, _ in window if is_hold(m)]
    assert len(holds) <= 1
    for hold in holds:
        check_hold(hold, ctx.robot, ctx.arm.q[: ctx.robot.arm_dof])
    assert all(s.level != b"\x00" for s, _ in ctx.diag.statuses(start + 0.6))
    ctx.commands.check_all()
    print(f"future stamps: {len(holds)} hold(s) published")
    run_normally(ctx)


def test_stamps_jumping_100s_back_hold_then_recover(ctx):
    run_normally(ctx)
    joints = lambda: ctx.client.publish_joints(ctx.arm.names, ctx.arm.q, stamp_s=ctx.client.now_s() - 100.0)  # noqa: E731
    image = lambda: ctx.client.publish_image(ctx.arm.rgb, stamp_s=ctx.client.now_s() - 100.0)  # noqa: E731
    expect_hold_then_silence(ctx, joints, image, r"holding: stale_joint_state: newest joint state is (99|100)\.\d+ s old",
                             "stale_joint_state")
    run_normally(ctx)  # consistent stamps again (forward from the reset): the history restarts


# ---- d: backend faults -----------------------------------------------------------------------
def test_backend_raising_holds_counts_and_recovers(ctx):
    run_normally(ctx)
    try:
        # The diagnostic is the inference_errors counter; the status message is not checked here
        # (see the next test: it flickers to "waiting: recovered ..." between failures).
        expect_hold_then_silence(ctx, ctx.good_joints(), ctx.good_image(),
                                 r"holding: inference_error: RuntimeError: injected backend fault",
                                 None, counter="inference_errors", inject=lambda: ctx.control.write_text("raise"))
        errors = ctx.diag.count("inference_errors")
        ctx.client.run(1.0, ctx.good_joints(), ctx.good_image())
        assert ctx.diag.count("inference_errors") > errors, "every failing inference must be counted"
    finally:
        ctx.control.unlink(missing_ok=True)
    run_normally(ctx)


def test_backend_failing_continuously_keeps_diagnostics_at_error(ctx):
    run_normally(ctx)
    ctx.control.write_text("raise")
    try:
        ctx.client.run(1.0, ctx.good_joints(), ctx.good_image())
        start = time.monotonic()
        ctx.client.run(2.0, ctx.good_joints(), ctx.good_image())
        statuses = ctx.diag.statuses(start)
        assert statuses and all(s.level == b"\x02" for s, _ in statuses), [s.message for s, _ in statuses]
    finally:
        ctx.control.unlink()
        run_normally(ctx)


def test_slow_inference_beyond_timeout_holds_then_recovers(ctx):
    run_normally(ctx)
    try:
        expect_hold_then_silence(ctx, ctx.good_joints(), ctx.good_image(),
                                 rf"holding: inference_timeout: inference has run 0\.\d+ s "
                                 rf"\(limit {INFERENCE_TIMEOUT_S:.2f} s\)", "inference_timeout",
                                 quiet_s=SLOW_INFERENCE_S + 0.5,
                                 inject=lambda: ctx.control.write_text(f"sleep {SLOW_INFERENCE_S}"))
    finally:
        ctx.control.unlink(missing_ok=True)
    run_normally(ctx, timeout=30.0)


# ---- i: instruction change while running -------------------------------------------------------
def test_instruction_change_mid_chunk_updates_diagnostics_and_chunks_continue(ctx):
    run_normally(ctx)
    assert ctx.diag.value("instruction", "") == "pick up the red cube"
    publisher = ctx.client.node.create_publisher(String, "/uam_policy/instruction", INSTRUCTION_QOS)
    offset = ctx.log_offset()
    publisher.publish(String(data="push the blue block"))
    start = time.monotonic()
    assert ctx.client.run(15.0, ctx.good_joints(), ctx.good_image(),
                          until=lambda: ctx.diag.value("instruction", "") == "push the blue block"
                          and "instruction: 'push the blue block'" in ctx.log_from(offset)
                          and chunk_count(ctx.commands, start) >= 3), ctx.log_from(offset)[-2000:]
    assert ctx.trace.read_text() == "push the blue block", "the policy never saw the new instruction"
    ctx.commands.check_all()
    ctx.client.node.destroy_publisher(publisher)


# ---- f: SIGINT mid-chunk (last: it ends the node) -----------------------------------------------
def test_sigint_mid_chunk_holds_and_exits_zero(ctx):
    run_normally(ctx)
    start = time.monotonic()
    ctx.node.process.send_signal(signal.SIGINT)
    assert ctx.client.run(15.0, ctx.good_joints(), until=lambda: any(is_hold(m) for m, _ in ctx.commands.since(start)))
    assert ctx.node.stop(signal.SIGINT) == 0, ctx.node.log()[-3000:]
    window = ctx.commands.since(start)
    assert is_hold(window[-1][0]), [len(m.points) for m, _ in window]
    check_hold(window[-1][0], ctx.robot, ctx.arm.q[: ctx.robot.arm_dof])
    ctx.commands.check_all()
    assert "shutdown: holding position" in ctx.node.log() and "Traceback" not in ctx.node.log()
