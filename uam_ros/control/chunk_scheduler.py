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

    def after(self, t_s: float) -> "Plan":
        keep = self.times_s >= t_s
        return Plan(self.times_s[keep], self.positions[keep])


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
        keep = times >= now_s + self.min_lead_s
        dropped = int(count - np.count_nonzero(keep))
        if not np.any(keep):
            return MergeResult(None, dropped, 0)
        times, new = times[keep], np.array(positions[keep], dtype=np.float64)
        blended = 0
        old = self.plan.after(now_s) if self.plan is not None else None
        if self.blend == "linear" and old is not None and len(old) > 0:
            steps = min(self.blend_steps, len(times))
            for k in range(steps):
                if times[k] > old.times_s[-1]:
                    break
                w = (k + 1) / (steps + 1)
                new[k] = (1.0 - w) * old.sample(times[k]) + w * new[k]
                blended += 1
        self.plan = Plan(times, new)
        return MergeResult(self.plan, dropped, blended)
