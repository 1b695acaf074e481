"""Shared helpers of the benchmarks: machine description, a seeded checkpoint, statistics, /proc,
the command line and the figure ending.

Pure Python + numpy at import time (no rclpy, no torch, no matplotlib), so the unit tests can import it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU count and model, load average and niceness now, versions: stored with every result."""
    info = {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "nice": os.nice(0),
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    except ImportError:
        pass
    return info


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The benchmarks' parser: the docstring's first paragraph as description, the rest (verbatim) as
    epilog; a docstring of one paragraph gets no epilog."""
    description, sep, rest = doc.partition("\n\n")
    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=rest if sep else None)


def add_pipeline_args(parser: argparse.ArgumentParser, model_help: str) -> None:
    """The arguments of the benchmarks that run uam_sim -> uam_policy over DDS (latency, soak): the
    same robot, model, backend and input rates, so their figures can be set side by side."""
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--model", default="", help=model_help)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--joint-hz", type=float, default=500.0)


def machine_summary(env: dict, nice: bool = False) -> str:
    """"N cores (CPU model), load before->after" of a result's environment (with ", nice N" if nice)."""
    text = (f"{env['cpu_count']} cores ({env['cpu_model']}), "
            f"load {env['loadavg_before'][0]:.1f}->{env['loadavg_after'][0]:.1f}")
    return text + (f", nice {env['nice']}" if nice else "")


def save_figure(fig, path, title: str | None, *, dpi: int = 110, rect=None) -> None:
    """The figures' ending: title as suptitle (fontsize 9; None: none), tight layout (within rect if
    given), saved to path, closed."""
    import matplotlib.pyplot as plt

    if title is not None:
        fig.suptitle(title, fontsize=9)
    if rect is None:
        fig.tight_layout()
    else:
        fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_result(result: dict, out: Path, name: str, plot) -> Path:
    """out/<name>.json, then plot(result, out/<name>.png): every benchmark's JSON + plot pair."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, path.with_suffix(".png"))
    print(f"wrote {path} and .png")
    return path


def stats_ms(values_s) -> dict[str, float]:
    """p50 / p90 / p99 / max / mean of seconds, in ms (empty input: n = 0 only)."""
    ms = np.asarray(values_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0}
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


def period_errors_s(tick_times_s, period_s: float) -> np.ndarray:
    """|period - nominal| of consecutive tick times (what uam_ros.ros.tick_stats reports)."""
    t = np.asarray(tick_times_s, dtype=np.float64)
    return np.abs(np.diff(t) - period_s)


def make_checkpoint(robot_name: str, directory: Path, config_overrides: dict | None = None) -> Path:
    """A seeded, untrained checkpoint of the default UAMConfig for the robot (latency does not
    depend on training); the same one benchmarks/backends.py and jitter.py use. config_overrides:
    UAMConfig fields to change (a larger model, to see a figure against its inference time)."""
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.model.checkpoint import init_checkpoint

    robot = load_robot_config(robot_name)
    home = list(robot.action_home)
    return init_checkpoint(directory, state_dim=len(home), action_dim=len(home),
                           joint_names=robot.action_joint_names, robot_name=robot.name,
                           instructions=["reach the red cube"], seed=0, state_mean=home, config_overrides=config_overrides,
                           state_std=[0.5] * len(home), action_mean=home, action_std=[0.02] * len(home))


def private_ros_env() -> dict[str, str]:
    """localhost-only discovery and a random private ROS_DOMAIN_ID (as uam_ros.demo does), set in
    os.environ (so this process's rclpy uses them too) and returned for subprocesses."""
    from uam_ros.ros_env import localhost_defaults

    localhost_defaults()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 199)))
    os.environ.setdefault("MUJOCO_GL", "egl")
    return dict(os.environ, PYTHONUNBUFFERED="1")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (/proc/<pid>/task/*/children): a node with inference_process:=true
    runs its policy in a child, whose memory and CPU belong to the node's figures."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except (OSError, ValueError):
                pass
    return pids


def _own_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _own_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _tree_total(pid: int, read):
    """read(pid) summed over pid and its live descendants; None once pid itself is gone."""
    own = read(pid)
    if own is None:
        return None
    return own + sum(v for v in (read(p) for p in process_tree(pid)[1:]) if v is not None)


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process and its descendants (VmRSS, kB); None once the process is gone."""
    return _tree_total(pid, _own_rss_kb)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its live descendants (/proc/<pid>/stat), seconds."""
    return _tree_total(pid, _own_cpu_seconds)


def policy_params(items: list[str]) -> dict[str, object]:
    """`name:=value` strings (the ros2 run syntax) -> parameters for NodeProcess; values as YAML
    scalars (true, 2, 0.5), so they reach the node with their types."""
    import yaml

    params: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise SystemExit(f"policy parameter {item!r}: expected NAME:=VALUE (e.g. inference_process:=true)")
        params[name] = yaml.safe_load(value)
    return params


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class NodeProcess:
    """One uam_ros node as a child process (`python -m <module> --ros-args -p k:=v ...`), its output in
    a log file; stop() sends SIGINT (the node holds and exits cleanly) and kills it after a timeout."""

    def __init__(self, module: str, params: dict[str, object], log_path: Path, env: dict[str, str]) -> None:
        import subprocess
        import sys

        args = ["--ros-args"]
        for key, value in params.items():
            args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
