"""Control-timer period statistics for /diagnostics, recorded without allocating on the hot path."""

from __future__ import annotations

import time

import numpy as np


class TickStats:
    """A fixed ring of monotonic tick times; summary() runs in the diagnostics timer, not the tick."""

    def __init__(self, period_s: float, window: int = 1000) -> None:
        self.period_s = period_s
        self._times = np.zeros(window, dtype=np.float64)
        self._count = 0

    def tick(self) -> None:
        self._times[self._count % self._times.shape[0]] = time.monotonic()
        self._count += 1

    def summary(self) -> dict[str, float]:
        """p50 / p99 / max of |period - nominal| in ms over the window (empty until 3 ticks)."""
        n = min(self._count, self._times.shape[0])
        if n < 3:
            return {}
        start = self._count % self._times.shape[0] if self._count > n else 0
        ordered = np.roll(self._times[:n] if self._count <= n else self._times, -start)
        error_ms = np.abs(np.diff(ordered) - self.period_s) * 1e3
        return {"tick_error_p50_ms": float(np.percentile(error_ms, 50)),
                "tick_error_p99_ms": float(np.percentile(error_ms, 99)),
                "tick_error_max_ms": float(error_ms.max())}
