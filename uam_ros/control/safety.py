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
        # np.minimum/np.maximum: np.clip's result, without its Python-level dispatch (this runs in
        # the control tick that sends a chunk, where each numpy call costs several microseconds cold).
        return np.minimum(np.maximum(q, self.low), self.high)

    def filter(
        self, times_s: np.ndarray, positions: np.ndarray, q_now: np.ndarray, v_now: np.ndarray | None = None
    ) -> SafetyResult:
        """times_s: (N,) seconds from now, strictly increasing and > 0; positions: (N, J) targets.

        Written for few numpy calls (array methods, no np.diff/np.vstack/np.clip wrappers): in the node
        this runs once per chunk, right after the control thread woke up, where each distinct numpy
        call costs several times its warm cost (benchmarks/cold_calls.py)."""
        joints = self.low.shape[0]
        if positions.ndim != 2 or positions.shape[1] != joints or positions.shape[0] != times_s.shape[0]:
            return SafetyResult(False, "bad_shape", f"chunk shape {positions.shape} for {joints} joints")
        count = positions.shape[0]
        if count == 0:
            return SafetyResult(False, "empty", "no points left to execute")
        if not (np.isfinite(positions).all() and np.isfinite(times_s).all() and np.isfinite(q_now).all()):
            return SafetyResult(False, "non_finite", "chunk or measured state contains NaN/inf")
        dts = np.empty(count)  # time from the point before (from now, for the first)
        dts[0] = times_s[0]
        np.subtract(times_s[1:], times_s[:-1], out=dts[1:])
        if times_s[0] <= 0.0 or (dts[1:] <= 0.0).any():
            return SafetyResult(False, "bad_timing", "chunk times are not strictly increasing from now")
        deviation = np.abs(positions[0] - q_now)
        worst = int(deviation.argmax())
        if deviation[worst] > self.max_position_deviation:
            return SafetyResult(
                False, "deviation",
                f"first point is {deviation[worst]:.3f} rad from the measured state on joint {worst} "
                f"(limit {self.max_position_deviation:.3f})",
            )
        target = self.clamp_positions(positions)
        clamped = (target != positions).any(axis=1)
        vmax, amax = self.limits.velocity_max, self.limits.acceleration_max
        low, high, lower, upper = self.low, self.high, np.maximum, np.minimum
        start_q = self.clamp_positions(q_now.astype(np.float64))
        if v_now is None:
            start_v = np.zeros(joints)
        else:
            start_v = upper(lower(v_now if np.isfinite(v_now).all() else np.nan_to_num(v_now), -vmax), vmax)
        # Where no limit binds, the limited path is the target itself: find the first point where one
        # does with whole-chunk array operations (most chunks need no clamping at all), and walk
        # point by point only from there on -- each limited point depends on the one before it.
        dt_column = dts[:, None]
        steps = np.empty_like(target)  # velocity of each segment, from the measured state on
        np.subtract(target[0], start_q, out=steps[0])
        np.subtract(target[1:], target[:-1], out=steps[1:])
        steps /= dt_column
        before = np.empty_like(steps)  # the velocity each segment starts from
        before[0] = start_v
        before[1:] = steps[:-1]
        reach = amax * dt_column
        binds = ~((steps >= before - reach) & (steps <= before + reach) & (steps >= -vmax) & (steps <= vmax)).all(axis=1)
        first = int(binds.argmax()) if binds.any() else count
        out = target
        segment_v = steps
        if first < count:
            out, segment_v = target.copy(), steps.copy()
            # Plain ufuncs instead of np.clip keep this loop ~4x cheaper (it runs in the control tick
            # that sends a chunk).
            prev_q = start_q if first == 0 else target[first - 1]
            prev_v = before[first]
            prev_t = 0.0 if first == 0 else times_s[first - 1]
            for k in range(first, count):
                t = times_s[k]
                dt = t - prev_t
                v = (target[k] - prev_q) / dt
                reach_k = amax * dt
                limited = upper(lower(upper(lower(v, prev_v - reach_k), prev_v + reach_k), -vmax), vmax)
                q = upper(lower(prev_q + limited * dt, low), high)
                limited = (q - prev_q) / dt
                out[k], segment_v[k] = q, limited
                prev_q, prev_v, prev_t = q, limited, t
            clamped |= (np.abs(out - target) > 1e-9).any(axis=1)
        velocities = np.zeros_like(out)
        if count > 1:
            np.add(segment_v[:-1], segment_v[1:], out=velocities[:-1])
            velocities[:-1] *= 0.5
        # The last point stops: if no newer chunk comes, the controller settles there.
        return SafetyResult(True, "", "", out, velocities, int(clamped.sum()))


def clamp_gripper(value: float, low: float, high: float) -> float | None:
    """None for non-finite values: the gripper keeps its last command."""
    if not np.isfinite(value):
        return None
    return float(min(max(value, low), high))
