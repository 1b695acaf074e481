"""The last gate before a command leaves the process: limits, feasibility, sanity.

Everything the policy proposes passes through filter(); whatever it returns is finite, inside the
position limits, within velocity and acceleration limits from the measured state, and starts near
where the arm actually is. A proposal that cannot be made safe by clamping (non-finite values, a
first point far from the measured state) is refused as a whole: the caller holds position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uam_ros.control.robot_config import JointLimitArrays


@dataclass(frozen=True)
class SafetyResult:
    ok: bool
    reason: str  # "" when ok
    detail: str
    positions: np.ndarray | None = None  # (N, J)
    velocities: np.ndarray | None = None  # (N, J)
    clamped_points: int = 0


class SafetyFilter:
    def __init__(
        self, limits: JointLimitArrays, max_position_deviation: float, position_margin: float = 1e-4
    ) -> None:
        self.limits = limits
        self.max_position_deviation = max_position_deviation
        self.low = limits.position_min + position_margin
        self.high = limits.position_max - position_margin

    def clamp_positions(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.low, self.high)

    def filter(
        self, times_s: np.ndarray, positions: np.ndarray, q_now: np.ndarray, v_now: np.ndarray | None = None
    ) -> SafetyResult:
        """times_s: (N,) seconds from now, strictly increasing and > 0; positions: (N, J) targets."""
        joints = self.low.shape[0]
        if positions.ndim != 2 or positions.shape[1] != joints or positions.shape[0] != times_s.shape[0]:
            return SafetyResult(False, "bad_shape", f"chunk shape {positions.shape} for {joints} joints")
        if positions.shape[0] == 0:
            return SafetyResult(False, "empty", "no points left to execute")
        if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(times_s)) and np.all(np.isfinite(q_now))):
            return SafetyResult(False, "non_finite", "chunk or measured state contains NaN/inf")
        if times_s[0] <= 0.0 or np.any(np.diff(times_s) <= 0.0):
            return SafetyResult(False, "bad_timing", "chunk times are not strictly increasing from now")
        deviation = np.abs(positions[0] - q_now)
        worst = int(np.argmax(deviation))
        if deviation[worst] > self.max_position_deviation:
            return SafetyResult(
                False, "deviation",
                f"first point is {deviation[worst]:.3f} rad from the measured state on joint {worst} "
                f"(limit {self.max_position_deviation:.3f})",
            )
        target = self.clamp_positions(positions)
        clamped = np.any(target != positions, axis=1)
        vmax, amax = self.limits.velocity_max, self.limits.acceleration_max
        low, high, lower, upper = self.low, self.high, np.maximum, np.minimum
        start_q = self.clamp_positions(q_now.astype(np.float64))
        start_v = np.zeros(joints) if v_now is None else upper(lower(np.nan_to_num(v_now), -vmax), vmax)
        # Where no limit binds, the limited path is the target itself: find the first point where one
        # does with whole-chunk array operations (most chunks need no clamping at all), and walk
        # point by point only from there on -- each limited point depends on the one before it.
        dts = np.diff(times_s, prepend=0.0)[:, None]
        steps = np.diff(target, axis=0, prepend=start_q[None, :]) / dts
        before = np.vstack((start_v[None, :], steps[:-1]))
        reach = amax * dts
        binds = ~np.all((steps >= before - reach) & (steps <= before + reach) & (steps >= -vmax) & (steps <= vmax),
                        axis=1)
        first = int(np.argmax(binds)) if binds.any() else target.shape[0]
        out = target.copy()
        segment_v = steps.copy()
        if first < target.shape[0]:
            # Plain ufuncs instead of np.clip keep this loop ~4x cheaper (it runs in the control tick
            # that sends a chunk).
            prev_q = start_q if first == 0 else target[first - 1]
            prev_v = before[first]
            prev_t = 0.0 if first == 0 else times_s[first - 1]
            for k in range(first, target.shape[0]):
                t = times_s[k]
                dt = t - prev_t
                v = (target[k] - prev_q) / dt
                reach_k = amax * dt
                limited = upper(lower(upper(lower(v, prev_v - reach_k), prev_v + reach_k), -vmax), vmax)
                q = upper(lower(prev_q + limited * dt, low), high)
                limited = (q - prev_q) / dt
                out[k], segment_v[k] = q, limited
                prev_q, prev_v, prev_t = q, limited, t
        clamped |= np.any(np.abs(out - target) > 1e-9, axis=1)
        velocities = np.zeros_like(out)
        if out.shape[0] > 1:
            velocities[:-1] = 0.5 * (segment_v[:-1] + segment_v[1:])
        # The last point stops: if no newer chunk comes, the controller settles there.
        return SafetyResult(True, "", "", out, velocities, int(np.count_nonzero(clamped)))


def clamp_gripper(value: float, low: float, high: float) -> float | None:
    """None for non-finite values: the gripper keeps its last command."""
    if not np.isfinite(value):
        return None
    return float(min(max(value, low), high))
