import time

import numpy as np
import pytest

from uam_ros.ros.tick_stats import TickStats


def test_period_errors_from_recorded_ticks(monkeypatch):
    clock = iter([0.0, 0.010, 0.020, 0.035, 0.045])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stats = TickStats(period_s=0.010, window=10)
    for _ in range(5):
        stats.tick()
    summary = stats.summary()
    assert summary["tick_error_max_ms"] == pytest.approx(5.0)
    assert summary["tick_error_p50_ms"] == pytest.approx(0.0, abs=1e-9)


def test_ring_keeps_the_newest_window_in_order(monkeypatch):
    times = list(np.arange(25) * 0.010)
    times[-1] += 0.020  # only the newest period is late
    clock = iter(times)
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stats = TickStats(period_s=0.010, window=8)
    for _ in range(25):
        stats.tick()
    summary = stats.summary()
    assert summary["tick_error_max_ms"] == pytest.approx(20.0)
    assert TickStats(0.01).summary() == {}
