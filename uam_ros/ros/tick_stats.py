"""Control-timer period statistics for /diagnostics, recorded without allocating on the hot path."""

from __future__ import annotations

import time

import numpy as np


def missed_periods(period_s: float, nominal_s: float) -> int:
    """Control periods that passed without a tick: a gap between two ticks of k nominal periods
    (to the nearest whole period) counts k - 1 missed ticks. From the gaps alone a tick more than
    half a period late already counts one (it cannot be told from a skipped one), so the count
    errs on the strict side."""
    return max(int(period_s / nominal_s + 0.5) - 1, 0)


class TickStats:
    """A fixed ring of monotonic tick times; summary() runs in the diagnostics timer, not the tick.

    Also counts since activation: ticks, late ticks (|period - nominal| > late_s, default half a
    period) and missed ticks (missed_periods), so a soak run sees every deadline miss, not only
    those in the last window.
    """

    def __init__(self, period_s: float, window: int = 1000, late_s: float | None = None) -> None:
        self.period_s = period_s
        self.late_s = 0.5 * period_s if late_s is None else late_s
        self._times = np.zeros(window, dtype=np.float64)
        self._count = 0
        self._last: float | None = None
        self.late = 0
        self.missed = 0

    def tick(self) -> None:
        now = time.monotonic()
        self._times[self._count % self._times.shape[0]] = now
        self._count += 1
        if self._last is not None:
            period = now - self._last
            if abs(period - self.period_s) > self.late_s:
                self.late += 1
            if period > 1.5 * self.period_s:
                self.missed += missed_periods(period, self.period_s)
        self._last = now

    def summary(self) -> dict[str, float]:
        """p50 / p99 / max of |period - nominal| in ms over the window, and the counts since start
        (empty until 3 ticks)."""
        n = min(self._count, self._times.shape[0])
        if n < 3:
            return {}
        start = self._count % self._times.shape[0] if self._count > n else 0
        ordered = np.roll(self._times[:n] if self._count <= n else self._times, -start)
        error_ms = np.abs(np.diff(ordered) - self.period_s) * 1e3
        return {"tick_error_p50_ms": float(np.percentile(error_ms, 50)),
                "tick_error_p99_ms": float(np.percentile(error_ms, 99)),
                "tick_error_max_ms": float(error_ms.max()),
                "ticks": self._count, "ticks_late": self.late, "ticks_missed": self.missed}
