"""A node in a child process, started as users start it: `python -m module --ros-args -p name:=value`.

The demo and the integration tests run the nodes this way (their own process, their own executor),
with the output in a log file; parameters are written as `ros2 run`/launch would parse them
(bringup.parameter_arguments: YAML, strings quoted where YAML would read something else).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from uam_ros.ros.bringup import parameter_arguments


def ros_arguments(params: dict[str, object]) -> list[str]:
    return ["--ros-args", *parameter_arguments(params)]


class NodeProcess:
    def __init__(self, module: str, params: dict[str, object], log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", module, *ros_arguments(params)], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Signal, wait up to timeout, then SIGKILL; the exit code (negative: killed by that signal)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode
