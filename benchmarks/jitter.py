"""Control-timer jitter of uam_policy at 100 Hz, without and with inference running, side by side.

One node process (untrained default-config checkpoint for franka_panda), two phases in one run:
  idle:      joint states only -> no observation is complete, no inference runs
  inference: joint states + camera -> the inference thread runs back to back
The node measures its own timer periods (uam_ros.ros.tick_stats, last 1000 ticks) and reports
|period - 10 ms| p50/p99/max on /diagnostics; this script reads them at the end of each phase.
Writes benchmarks/results/jitter.json and jitter.png.

    python benchmarks/jitter.py [--backend torch|onnxruntime] [--seconds 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--seconds", type=float, default=12.0, help="per phase (>= 10 fills the 1000-tick window)")
    args = parser.parse_args()

    from uam_ros.ros_env import localhost_defaults

    localhost_defaults()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 199)))
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.model.checkpoint import init_checkpoint
    from uam_ros.ros.conversions import rgb_to_image_msg, s_to_stamp

    robot = load_robot_config("franka_panda")
    workdir = Path(tempfile.mkdtemp(prefix="uam-jitter-"))
    ckpt = init_checkpoint(workdir / "ckpt", state_dim=robot.action_dim, action_dim=robot.action_dim,
                           joint_names=robot.action_joint_names, robot_name=robot.name, instructions=["reach the cube"],
                           action_mean=robot.action_home, action_std=[0.02] * robot.action_dim)
    log = open(workdir / "policy.log", "w")
    node_cmd = [sys.executable, "-m", "uam_ros.ros.policy_node", "--ros-args", "-p", "autostart:=true",
                "-p", f"model:={ckpt}", "-p", f"backend:={args.backend}", "-p", "control_rate_hz:=100.0",
                "-p", "diagnostics_period_s:=0.5", "-p", "predicted_path:=false"]
    policy = subprocess.Popen(node_cmd, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, UAM_CACHE_DIR=str(workdir / "cache")))
    rclpy.init()
    node = rclpy.create_node("uam_jitter_bench")
    latest: dict[str, str] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("uam_policy"):
                latest.clear()
                latest.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    joints_pub = node.create_publisher(JointState, "joint_states", qos_profile_sensor_data)
    image_pub = node.create_publisher(Image, robot.camera.image_topic, qos_profile_sensor_data)
    rgb = np.random.default_rng(0).integers(0, 255, (robot.camera.height, robot.camera.width, 3), np.uint8)

    def run(seconds: float, camera: bool, until=None) -> None:
        start = time.monotonic()
        next_joint = next_image = start
        while time.monotonic() - start < seconds and policy.poll() is None:
            now = time.monotonic()
            stamp = node.get_clock().now().nanoseconds * 1e-9
            if now >= next_joint:
                msg = JointState()
                msg.header.stamp = s_to_stamp(stamp)
                msg.name, msg.position = robot.action_joint_names, list(robot.action_home)
                joints_pub.publish(msg)
                next_joint += 0.01
            if camera and now >= next_image:
                image_pub.publish(rgb_to_image_msg(rgb, stamp, "camera"))
                next_image += 1.0 / 15.0
            rclpy.spin_once(node, timeout_sec=0.002)
            if until is not None and until():
                return

    phases = {}
    try:
        run(120.0, camera=False, until=lambda: latest.get("lifecycle") == "active")
        for name, camera in (("idle", False), ("inference", True)):
            run(args.seconds, camera)
            phases[name] = {k: float(latest[k]) for k in ("tick_error_p50_ms", "tick_error_p99_ms", "tick_error_max_ms")}
            phases[name]["inference_latency_ms"] = float(latest.get("inference_latency_ms", 0.0))
            phases[name]["chunks_accepted"] = int(latest.get("chunks_accepted", 0))
            print(f"{name:>9}: " + ", ".join(f"{k} {v}" for k, v in phases[name].items()), flush=True)
    finally:
        policy.send_signal(signal.SIGINT)
        policy.wait(20)
        node.destroy_node()
        rclpy.try_shutdown()
        log.close()

    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared VM, no GPU)",
        "backend": args.backend, "control_rate_hz": 100.0, "seconds_per_phase": args.seconds,
        "method": "uam_policy measures its own timer periods (last 1000 ticks) and reports |period - 10 ms|",
        "phases": phases,
        "ratio_p99_inference_over_idle": phases["inference"]["tick_error_p99_ms"] / max(phases["idle"]["tick_error_p99_ms"], 1e-6),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jitter.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    keys = ["tick_error_p50_ms", "tick_error_p99_ms", "tick_error_max_ms"]
    x = np.arange(len(keys))
    for i, (name, values) in enumerate(phases.items()):
        ax.bar(x + 0.38 * i, [values[k] for k in keys], 0.38, label=name)
    ax.set_xticks(x + 0.19, ["p50", "p99", "max"])
    ax.set_ylabel("|timer period - 10 ms| [ms]")
    ax.set_title(f"uam_policy control timer at 100 Hz ({args.backend})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "jitter.png", dpi=120)
    print(f"wrote {RESULTS / 'jitter.json'} and jitter.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
