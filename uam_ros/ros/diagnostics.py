"""/diagnostics content for the policy node, built from the loop's counters."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from uam_ros.ros.conversions import s_to_stamp

_WARN_STATES = ("waiting", "unconfigured", "inactive")


def status_level(state: str, configured: bool) -> bytes:
    if not configured:
        return DiagnosticStatus.ERROR if state.startswith("configure_failed") else DiagnosticStatus.WARN
    if state == "running":
        return DiagnosticStatus.OK
    if state in _WARN_STATES:
        return DiagnosticStatus.WARN
    return DiagnosticStatus.ERROR if state.startswith(("inference", "rejected", "bad_chunk")) else DiagnosticStatus.WARN


def diagnostic_array(
    now_s: float, name: str, hardware_id: str, level: bytes, message: str, values: dict[str, object]
) -> DiagnosticArray:
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = s_to_stamp(now_s)
    array.status = [status]
    return array


class RateCounter:
    """Messages per second over the last reporting window."""

    def __init__(self) -> None:
        self.count = 0
        self._window_start: float | None = None

    def tick(self) -> None:
        self.count += 1

    def rate(self, now_s: float) -> float:
        if self._window_start is None or now_s <= self._window_start:
            self._window_start, self.count = now_s, 0
            return 0.0
        value = self.count / (now_s - self._window_start)
        self._window_start, self.count = now_s, 0
        return value
