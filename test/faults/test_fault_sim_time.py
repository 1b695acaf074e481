"""Fault table row c (sim-time reset, docs/safety.md): uam_policy with use_sim_time:=true while this
test plays the simulator's /clock, which jumps back (an episode reset) -- once with the pipeline idle,
once with an inference in flight. Every command must be time-consistent with the sim clock at the
moment it arrives; after the reset, chunks resume with the new clock."""

from __future__ import annotations

import threading
import time

import pytest
from rosgraph_msgs.msg import Clock
from trajectory_msgs.msg import JointTrajectory

import ros_harness
from fault_harness import Arm, Diagnostics, check_chunk, check_hold, is_hold, start_node
from uam_ros.ros.conversions import s_to_stamp, stamp_to_s


class SimClock:
    # A command the node published just before its /clock subscription saw a jump is stamped on
    # the old clock and may arrive just after it: that is in flight, not time-inconsistent.
    IN_FLIGHT_S = 0.25

    def __init__(self, start_s: float) -> None:
        self._previous: tuple[float, float] | None = None
        self._base, self._m0 = start_s, time.monotonic()

    def jump_to(self, t_s: float) -> None:
        self._previous = (self._base, self._m0)
        self._base, self._m0 = t_s, time.monotonic()

    def now(self) -> float:
        return self._base + (time.monotonic() - self._m0)

    def before_jump(self, at_monotonic: float) -> float | None:
        """The pre-jump clock at at_monotonic, if that is within IN_FLIGHT_S after the last jump."""
        if self._previous is None or not 0.0 <= at_monotonic - self._m0 <= self.IN_FLIGHT_S:
            return None
        base, m0 = self._previous
        return base + (at_monotonic - m0)


@pytest.fixture
def sim(rclpy_context, panda, tmp_path):
    control, trace = tmp_path / "fault", tmp_path / "trace"
    node = start_node(tmp_path / "policy.log",
                      model=f"python://fault_policy:FaultPolicy?control={control}&trace={trace}",
                      enable=True, use_sim_time=True, inference_timeout_s=1.0)
    client = ros_harness.TestClient("uam_fault_client_sim")
    yield Sim(node, client, control, trace, panda)
    client.close()
    assert node.stop() == 0, node.log()[-3000:]


class Sim:
    """The simulator side: /clock, joint states and camera stamped with the sim clock; commands
    recorded with the sim time at which they arrived."""

    def __init__(self, node, client, control, trace, robot) -> None:
        self.node, self.client, self.control, self.trace, self.robot = node, client, control, trace, robot
        self.arm, self.diag, self.clock = Arm(robot), Diagnostics(client), SimClock(1000.0)
        self.clock_pub = client.node.create_publisher(Clock, "/clock", 10)
        self.received: list[tuple[JointTrajectory, float, float]] = []  # message, sim time, monotonic
        self.lock = threading.Lock()
        client.node.create_subscription(JointTrajectory, robot.controller.trajectory_topic, self._on_command, 10)

    def _on_command(self, msg) -> None:
        with self.lock:
            self.received.append((msg, self.clock.now(), time.monotonic()))

    def joints(self) -> None:
        now = self.clock.now()
        self.clock_pub.publish(Clock(clock=s_to_stamp(now)))
        self.client.publish_joints(self.arm.names, self.arm.q, stamp_s=now)

    def image(self) -> None:
        self.client.publish_image(self.arm.rgb, stamp_s=self.clock.now())

    def run(self, seconds: float, until=None) -> bool:
        return self.client.run(seconds, self.joints, self.image, until=until)

    def chunks_since(self, t: float) -> int:
        with self.lock:
            return sum(1 for m, _, at in self.received if at >= t and not is_hold(m))

    def start_running(self) -> None:
        assert self.client.run(60.0, self.joints, until=lambda: self.diag.value("lifecycle", "") == "active"), \
            self.node.log()
        start = time.monotonic()
        assert self.run(30.0, until=lambda: self.chunks_since(start) >= 3), self.node.log()[-3000:]
        self.check_all()

    def resumes(self) -> None:
        start = time.monotonic()
        assert self.run(20.0, until=lambda: self.chunks_since(start + 0.3) >= 3), self.node.log()[-3000:]
        self.check_all()
        assert self.node.process.poll() is None and "Traceback" not in self.node.log()

    def check_all(self) -> None:
        with self.lock:
            items = list(self.received)
        for msg, sim_at, at in items:
            if is_hold(msg):
                check_hold(msg, self.robot, self.arm.q[: self.robot.arm_dof])
                continue
            old_clock = self.clock.before_jump(at)
            if old_clock is not None and abs(stamp_to_s(msg.header.stamp) - old_clock) < 0.5:
                sim_at = old_clock  # published on the old clock just before the node saw the jump
            check_chunk(msg, self.robot, sim_at)


def test_sim_time_reset_while_idle_resumes_with_consistent_stamps(sim):
    sim.start_running()
    sim.clock.jump_to(10.0)  # the clock goes back 990 s (episode reset)
    sim.resumes()


def test_sim_time_reset_with_inference_in_flight_commands_nothing_time_inconsistent(sim):
    sim.start_running()
    sim.control.write_text("sleep 0.5")  # below inference_timeout_s: a slow but legal inference
    sim.run(1.0)
    called = sim.trace.stat().st_mtime_ns
    assert sim.run(5.0, until=lambda: sim.trace.stat().st_mtime_ns != called)  # an inference just started
    sim.clock.jump_to(3.0)  # ... from pre-reset stamps; the reset happens while it runs
    sim.run(1.0)
    sim.control.unlink()
    sim.resumes()
