"""Commands in the shape joint_trajectory_controller accepts, built and checked without ROS.

JTC rules (ros2_controllers): joint names match the controller, time_from_start strictly
increasing, header stamp = when the trajectory starts, positions with velocities -> cubic spline,
all values finite. We publish whole chunks with the first point at least one control period
ahead, so the controller never receives a point that is already in the past.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uam_ros.control.robot_config import JointLimitArrays


@dataclass(frozen=True)
class TrajectoryCommand:
    joint_names: tuple[str, ...]
    stamp_s: float  # header.stamp: the instant time_from_start counts from
    time_from_start_s: np.ndarray  # (N,)
    positions: np.ndarray  # (N, J)
    velocities: np.ndarray  # (N, J)

    @property
    def is_hold(self) -> bool:
        return self.positions.shape[0] == 1 and not np.any(self.velocities)


def build_command(
    joint_names: Sequence[str], now_s: float, time_from_start_s: np.ndarray, positions: np.ndarray,
    velocities: np.ndarray,
) -> TrajectoryCommand:
    return TrajectoryCommand(tuple(joint_names), now_s, np.asarray(time_from_start_s, dtype=np.float64),
                             positions, velocities)


HOLD_LEAD_S = 0.1


def hold_command(joint_names: Sequence[str], q_hold: np.ndarray, lead_s: float = HOLD_LEAD_S) -> TrajectoryCommand:
    """Stay where the arm is: one point at the measured position, zero velocity.

    Stamped 0 ("start when received"): a hold delayed in transit must still be executed, whereas
    JTC rejects a stamped trajectory that already ended. The lead gives the controller a gentle
    stop from whatever velocity the arm has.
    """
    q = np.asarray(q_hold, dtype=np.float64).reshape(1, -1)
    return TrajectoryCommand(tuple(joint_names), 0.0, np.array([lead_s]), q, np.zeros_like(q))


def command_problems(
    command: TrajectoryCommand, limits: JointLimitArrays, min_lead_s: float, tolerance: float = 1e-6
) -> list[str]:
    """Every reason JTC (or our own safety rules) would refuse this command; empty when valid.

    Array methods rather than the np.all/np.any/np.diff wrappers: this runs in the control tick that
    sends a chunk, where each numpy call is paid cold (benchmarks/cold_calls.py)."""
    problems = []
    positions, velocities = command.positions, command.velocities
    n, joints = positions.shape if positions.ndim == 2 else (0, 0)
    if joints != len(command.joint_names):
        problems.append(f"{joints} position columns for {len(command.joint_names)} joint names")
    if n == 0:
        problems.append("no points")
        return problems
    if velocities.shape != positions.shape:
        problems.append("velocities missing or mis-shaped")
    t = command.time_from_start_s
    if t.shape[0] != n:
        problems.append("one time per point required")
    elif ((t[1:] - t[:-1]) <= 0).any():
        problems.append("time_from_start not strictly increasing")
    elif t[0] < min_lead_s - tolerance:
        problems.append(f"first point {t[0]:.4f} s ahead, needs >= {min_lead_s:.4f} s")
    for name, finite in (("positions", np.isfinite(positions).all()), ("velocities", np.isfinite(velocities).all()),
                         ("times", np.isfinite(t).all()), ("stamp", math.isfinite(command.stamp_s))):
        if not finite:
            problems.append(f"non-finite {name}")
    if (positions < limits.position_min - tolerance).any() or (positions > limits.position_max + tolerance).any():
        problems.append("positions outside joint limits")
    if velocities.shape == positions.shape and (np.abs(velocities) > limits.velocity_max + tolerance).any():
        problems.append("velocities above joint limits")
    return problems
