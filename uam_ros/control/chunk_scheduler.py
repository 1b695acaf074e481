"""Keep one executable plan from a stream of overlapping action chunks.

A chunk is predicted from an observation taken at t_obs, but arrives after inference latency. Its
points whose time has already passed are dropped (latency compensation), and its first points are
faded in from the previous plan's unexecuted tail so the commanded path has no jump at the seam.
ros2_controllers' inference_bridge_controller lets the newest chunk win with neither of these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    times_s: np.ndarray  # (N,) absolute, strictly increasing
    positions: np.ndarray  # (N, D)

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    def sample(self, t_s: float) -> np.ndarray:
        """Linear interpolation, held constant outside the plan's span."""
        if t_s <= self.times_s[0]:
            return self.positions[0].copy()
        if t_s >= self.times_s[-1]:
            return self.positions[-1].copy()
        k = int(np.searchsorted(self.times_s, t_s, side="right"))
        t0, t1 = self.times_s[k - 1], self.times_s[k]
        w = (t_s - t0) / (t1 - t0)
        return (1.0 - w) * self.positions[k - 1] + w * self.positions[k]

    def sample_many(self, t_s: np.ndarray) -> np.ndarray:
        """sample() at each of t_s, in whole-array operations: (len(t_s), D)."""
        if len(self) == 1:
            return np.repeat(self.positions[:1], t_s.shape[0], axis=0)
        # Array methods and np.minimum/np.maximum rather than the np.searchsorted/np.clip wrappers: this
        # runs in the control tick that sends a chunk, where each numpy call is paid cold.
        k = np.minimum(np.maximum(self.times_s.searchsorted(t_s, side="right"), 1), len(self) - 1)
        before = k - 1
        t0, t1 = self.times_s[before], self.times_s[k]
        w = np.minimum(np.maximum((t_s - t0) / (t1 - t0), 0.0), 1.0)[:, None]
        return (1.0 - w) * self.positions[before] + w * self.positions[k]

    def after(self, t_s: float) -> "Plan":
        first = int(self.times_s.searchsorted(t_s, side="left"))  # times are increasing
        return Plan(self.times_s[first:], self.positions[first:])


@dataclass(frozen=True)
class MergeResult:
    plan: Plan | None
    dropped_late: int
    blended: int


class ChunkScheduler:
    def __init__(self, blend: str = "linear", blend_steps: int = 4, min_lead_s: float = 0.01) -> None:
        if blend not in ("none", "linear"):
            raise ValueError(f"blend must be 'none' or 'linear', got {blend!r}")
        self.blend = blend
        self.blend_steps = blend_steps
        self.min_lead_s = min_lead_s
        self.plan: Plan | None = None

    def clear(self) -> None:
        self.plan = None

    def merge(self, positions: np.ndarray, dt_s: float, observation_stamp_s: float, now_s: float) -> MergeResult:
        """Fold a chunk (point i at observation_stamp + (i+1)*dt) into the plan, as seen at now_s."""
        count = positions.shape[0]
        times = observation_stamp_s + dt_s * np.arange(1, count + 1, dtype=np.float64)
        # Whole-array steps throughout: this runs in the control tick that sends a chunk, where each
        # numpy call on a cold cache costs several microseconds.
        dropped = int(times.searchsorted(now_s + self.min_lead_s, side="left"))
        if dropped == count:
            return MergeResult(None, dropped, 0)
        times, new = times[dropped:], np.array(positions[dropped:], dtype=np.float64)
        blended = 0
        old = self.plan.after(now_s) if self.plan is not None else None
        if self.blend == "linear" and old is not None and len(old) > 0:
            steps = min(self.blend_steps, len(times))
            blended = int(times[:steps].searchsorted(old.times_s[-1], side="right"))  # inside the old plan
            if blended:
                w = (np.arange(1, blended + 1) / (steps + 1))[:, None]
                new[:blended] = (1.0 - w) * old.sample_many(times[:blended]) + w * new[:blended]
        self.plan = Plan(times, new)
        return MergeResult(self.plan, dropped, blended)
