"""A minimal progress bar on stderr (no tqdm dependency: this is all the training scripts need).

On a terminal it redraws one line in place; into a log file it writes a plain line every
``log_every_s`` seconds, so CI logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """``Progress(total, desc)``; ``update(n, **postfix)``; ``close()``. Disabled bars do nothing."""

    def __init__(
        self,
        total: int,
        desc: str = "",
        *,
        initial: int = 0,
        unit: str = "it",
        enabled: bool = True,
        stream: TextIO | None = None,
        log_every_s: float = 10.0,
    ) -> None:
        self.total = max(0, int(total))
        self.count = int(initial)
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every_s = log_every_s
        self.start = time.monotonic()
        self.start_count = self.count
        self.last_draw = 0.0
        self.drawn_count = -1
        self.postfix = ""
        self._draw(force=True)

    def update(self, n: int = 1, **postfix: object) -> None:
        self.count += n
        if postfix:
            self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in postfix.items())
        self._draw()

    def write(self, message: str) -> None:
        """Print a message line without breaking the bar."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self._draw(force=True)

    def close(self) -> None:
        if self.drawn_count != self.count:
            self._draw(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.count) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.count / self.total if self.total else 100.0
        width = 24
        filled = int(width * min(1.0, self.count / self.total)) if self.total else width
        eta = _duration(left) if left == left else "--:--"
        return (f"{self.desc} {pct:5.1f}% |{'#' * filled}{'.' * (width - filled)}| {self.count}/{self.total} "
                f"[{_duration(elapsed)}<{eta}, {rate:.2f} {self.unit}/s] {self.postfix}").strip()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self.last_draw > 0.2 or self.count >= self.total:
                self.stream.write("\r\033[K" + self._line())
                self.stream.flush()
                self.last_draw, self.drawn_count = now, self.count
        elif force or now - self.last_draw >= self.log_every_s:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
            self.last_draw, self.drawn_count = now, self.count
