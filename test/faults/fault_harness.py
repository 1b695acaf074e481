"""Helpers shared by the fault-table tests: start the node, check every command, read diagnostics."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from trajectory_msgs.msg import JointTrajectory

from ros_harness import TestClient
from uam_ros.ros.node_process import NodeProcess
from test_policy_node import POLICY, Arm, check_jtc_valid  # noqa: F401  (re-exported for the tests)
from uam_ros.ros.conversions import duration_to_s, stamp_to_s

FAULTS_DIR = Path(__file__).resolve().parent


def start_node(log_path: Path, **params) -> NodeProcess:
    """uam_policy with test/faults on its PYTHONPATH (for model:=python://fault_policy:FaultPolicy)."""
    base = {"robot": "franka_panda", "autostart": True, "inference_threads": 1, "diagnostics_period_s": 0.25,
            "backend": "torch"}
    base.update(params)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(FAULTS_DIR)] + ([previous] if previous else []))
    try:
        return NodeProcess(POLICY, base, log_path)
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def is_hold(msg: JointTrajectory) -> bool:
    """Holds are stamped 0 ("start on receipt"); a chunk is stamped with its tick time, even when
    latency compensation left it a single point."""
    return len(msg.points) == 1 and stamp_to_s(msg.header.stamp) == 0.0


def check_hold(msg: JointTrajectory, robot, measured_q=None) -> None:
    """A hold: one point at the measured position, zero velocity, header stamp 0 ("start now")."""
    assert list(msg.joint_names) == list(robot.joints.names)
    assert len(msg.points) == 1
    assert stamp_to_s(msg.header.stamp) == 0.0
    point = msg.points[0]
    q, v = np.array(point.positions), np.array(point.velocities)
    assert q.shape == (robot.arm_dof,) and v.shape == (robot.arm_dof,)
    assert np.all(np.isfinite(q)) and not np.any(v)
    lim = robot.limits_arrays()
    assert np.all(q >= lim.position_min) and np.all(q <= lim.position_max)
    assert duration_to_s(point.time_from_start) >= 1.0 / robot.control.rate_hz - 1e-6
    if measured_q is not None:
        np.testing.assert_allclose(q, measured_q, atol=1e-9)


def check_chunk(msg: JointTrajectory, robot, received_at_s: float) -> None:
    """JTC's checks (test_policy_node.check_jtc_valid) plus time consistency: no point further ahead
    than one chunk horizon (chunk_size / action_rate_hz) plus the tolerated input-stamp skew."""
    check_jtc_valid(msg, robot, received_at_s)
    horizon = robot.chunk.chunk_size / robot.chunk.action_rate_hz + robot.control.max_image_age_s
    last = duration_to_s(msg.points[-1].time_from_start)
    assert last <= horizon, f"last point {last:.3f} s ahead, beyond the {horizon:.3f} s horizon"


class CommandChecker:
    """Validates every JointTrajectory received on the controller topic, once each: a chunk must pass
    joint_trajectory_controller's checks (test_policy_node.check_jtc_valid), a hold check_hold."""

    def __init__(self, client: TestClient, robot, topic: str | None = None) -> None:
        self.client, self.robot = client, robot
        self.recorder = client.record(JointTrajectory, topic or robot.controller.trajectory_topic)
        self.checked = 0

    def check_all(self) -> None:
        with self.recorder._lock:
            messages = list(self.recorder.messages)
            times = list(self.recorder.times)
        now_ros, now_mono = self.client.now_s(), time.monotonic()
        for msg, at in zip(messages[self.checked:], times[self.checked:]):
            if is_hold(msg):
                check_hold(msg, self.robot)
            else:
                check_chunk(msg, self.robot, now_ros - (now_mono - at))
        self.checked = len(messages)

    def since(self, t: float) -> list[tuple[JointTrajectory, float]]:
        with self.recorder._lock:
            return [(m, at) for m, at in zip(self.recorder.messages, self.recorder.times) if at >= t]


class Diagnostics:
    """Every uam_policy DiagnosticStatus received, with its arrival time."""

    def __init__(self, client: TestClient) -> None:
        self.recorder = client.record(DiagnosticArray, "/diagnostics")

    def statuses(self, since: float = 0.0) -> list[tuple[DiagnosticStatus, dict[str, str]]]:
        out = []
        for msg in self.recorder.since(since):
            for status in msg.status:
                if status.name.startswith("uam_policy"):
                    out.append((status, {kv.key: kv.value for kv in status.values}))
        return out

    def last(self) -> tuple[DiagnosticStatus | None, dict[str, str]]:
        statuses = self.statuses()
        return statuses[-1] if statuses else (None, {})

    def value(self, key: str, default: str = "0") -> str:
        return self.last()[1].get(key, default)

    def count(self, key: str) -> int:
        return int(self.value(key, "0"))


def chunk_count(checker: CommandChecker, since: float) -> int:
    return sum(1 for m, _ in checker.since(since) if not is_hold(m))
