"""What joint_trajectory_controller does with a JointTrajectory, in numpy, for the simulated driver.

Semantics follow ros2_controllers' JTC: joint names must match the controller's joints (any order,
no partial goals), time_from_start strictly increasing, all values finite; header.stamp 0 means
"start now"; a new trajectory replaces the running one and starts from the current desired state;
positions + velocities give cubic Hermite segments, positions alone give linear ones; after the
last point the controller holds it; a trajectory that ends in the past is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Knots:
    times: np.ndarray  # (N+1,) absolute, first = start state
    positions: np.ndarray  # (N+1, J)
    velocities: np.ndarray | None  # (N+1, J) or None for linear


class TrajectoryExecutor:
    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = tuple(joint_names)
        self._knots: _Knots | None = None
        self.accepted = 0
        self.rejected = 0

    def accept(
        self, now_s: float, stamp_s: float, joint_names: Sequence[str], time_from_start_s: Sequence[float],
        positions: Sequence[Sequence[float]], velocities: Sequence[Sequence[float]] | None,
        current_q: np.ndarray, current_v: np.ndarray,
    ) -> str:
        """Replace the running trajectory; returns "" or the reason for rejecting it (nothing changes then)."""
        problem = self._validate(now_s, stamp_s, joint_names, time_from_start_s, positions, velocities)
        if problem:
            self.rejected += 1
            return problem
        order = [list(joint_names).index(n) for n in self.joint_names]
        q = np.asarray(positions, dtype=np.float64)[:, order]
        has_v = velocities is not None and len(velocities) > 0 and all(len(v) for v in velocities)
        v = np.asarray(velocities, dtype=np.float64)[:, order] if has_v else None
        start = now_s if stamp_s == 0.0 else max(stamp_s, now_s)
        times = start + np.asarray(time_from_start_s, dtype=np.float64)
        if stamp_s != 0.0 and stamp_s < now_s:
            times = stamp_s + np.asarray(time_from_start_s, dtype=np.float64)
            keep = times > now_s
            times, q = times[keep], q[keep]
            v = v[keep] if v is not None else None
        first_q, first_v = self.sample(now_s) if self._knots is not None else (current_q, current_v)
        self._knots = _Knots(
            times=np.concatenate([[now_s], times]),
            positions=np.vstack([first_q, q]),
            velocities=None if v is None else np.vstack([first_v, v]),
        )
        self.accepted += 1
        return ""

    def _validate(self, now_s, stamp_s, joint_names, tfs, positions, velocities) -> str:
        if not len(tfs) or not len(positions):
            return "empty trajectory"
        if sorted(joint_names) != sorted(self.joint_names):
            return f"joint names {list(joint_names)} do not match the controller's {list(self.joint_names)}"
        if len(positions) != len(tfs):
            return "one position vector per point required"
        if any(len(p) != len(self.joint_names) for p in positions):
            return "a point has the wrong number of positions"
        if velocities is not None and any(len(v) not in (0, len(self.joint_names)) for v in velocities):
            return "a point has the wrong number of velocities"
        times = np.asarray(tfs, dtype=np.float64)
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0) or times[0] < 0:
            return "time_from_start must be finite and strictly increasing"
        if not np.all(np.isfinite(np.asarray(positions, dtype=np.float64))):
            return "non-finite positions"
        if velocities is not None and any(len(v) for v in velocities):
            if not np.all(np.isfinite(np.asarray([v for v in velocities if len(v)], dtype=np.float64))):
                return "non-finite velocities"
        if not np.isfinite(stamp_s):
            return "non-finite header stamp"
        if stamp_s != 0.0 and stamp_s + times[-1] < now_s:
            return "trajectory ends in the past"
        return ""

    def sample(self, now_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Desired (positions, velocities) at now_s; None when no trajectory was ever accepted."""
        k = self._knots
        if k is None:
            return None
        if now_s >= k.times[-1]:
            return k.positions[-1].copy(), np.zeros_like(k.positions[-1])
        if now_s <= k.times[0]:
            v0 = k.velocities[0] if k.velocities is not None else np.zeros_like(k.positions[0])
            return k.positions[0].copy(), v0.copy()
        i = int(np.searchsorted(k.times, now_s, side="right")) - 1
        t0, t1 = k.times[i], k.times[i + 1]
        h = t1 - t0
        s = (now_s - t0) / h
        p0, p1 = k.positions[i], k.positions[i + 1]
        if k.velocities is None:
            return p0 + s * (p1 - p0), (p1 - p0) / h
        m0, m1 = k.velocities[i] * h, k.velocities[i + 1] * h
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        q = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        dh00, dh10, dh01, dh11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
        v = (dh00 * p0 + dh10 * m0 + dh01 * p1 + dh11 * m1) / h
        return q, v

    @property
    def end_time(self) -> float | None:
        return None if self._knots is None else float(self._knots.times[-1])
