"""Control-timer jitter of uam_policy at 100 Hz, idle and while inference runs: thread vs process worker,
with and without a real-time control thread, side by side in one run.

Configurations (--configs; each a fresh `uam_policy` process, untrained default-config checkpoint):
  thread          inference in a thread of the node (inference_process:=false, the PR-9 node)
  thread+fifo     ... and control_priority:=N (SCHED_FIFO for the control timer's thread)
  process         inference in a spawned child process (inference_process:=true)
  process+fifo    ... and control_priority:=N  (the fix proposed by jitter_sources.py)
  process+fifo+events  ... with rclpy's EventsExecutor instead of SingleThreadedExecutor (the node's
                  executor:=events; its timer thread at the control priority too, uam_ros.ros.node_main)
Each configuration runs two phases: idle (joint states only: no observation is complete, nothing is
inferred) and inference (joint states at 100 Hz + camera at 15 Hz: the worker runs back to back).
The node measures its own timer periods (uam_ros.ros.tick_stats: a 1000-tick window) and reports
|period - 10 ms| p50/p99/max on /diagnostics; this script reads them at the end of every 10.5 s
window of a phase (non-overlapping windows), so each configuration gets `rounds x windows` samples
of p50/p99/max. Rounds are interleaved (every configuration once per round, order rotated), so the
machine's other load hits all alike. Also recorded: inferences/s (chunks accepted), the CPU time of
the node process and of its inference child.

    python benchmarks/jitter.py [--configs thread process process+fifo] [--rounds 2] [--windows 2]
                                [--control-priority 10] [--backend torch] [--predicted-path]

Writes results/<name>.json (default jitter) and results/<name>.png.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, NodeProcess, bench_parser, cpu_seconds, machine_info, make_checkpoint,  # noqa: E402
                          private_ros_env, save_figure, timestamp, write_result)

WINDOW_S = 10.5  # the node's 1000-tick window at 100 Hz, plus the 0.5 s diagnostics period
# name -> (inference_process, uses control_priority, executor)
CONFIGS: dict[str, tuple[bool, bool, str]] = {
    "thread": (False, False, "single"),
    "thread+fifo": (False, True, "single"),
    "process": (True, False, "single"),
    "process+fifo": (True, True, "single"),
    "process+fifo+events": (True, True, "events"),
}
KEYS = ("tick_error_p50_ms", "tick_error_p99_ms", "tick_error_max_ms")


def summarise(windows: list[dict]) -> dict:
    """Per phase: the median window's p50 and p99, the worst window's p99 and max, totals."""
    if not windows:
        return {"windows": 0}
    col = {k: np.asarray([w[k] for w in windows]) for k in KEYS}
    return {"windows": len(windows),
            "p50_ms": float(np.median(col["tick_error_p50_ms"])),
            "p99_ms": float(np.median(col["tick_error_p99_ms"])),
            "p99_worst_ms": float(col["tick_error_p99_ms"].max()),
            "max_ms": float(col["tick_error_max_ms"].max()),
            "ticks_late": int(sum(w.get("ticks_late", 0) for w in windows)),
            "inferences_per_s": float(np.mean([w.get("inferences_per_s", 0.0) for w in windows])),
            "node_cpu_pct": float(np.mean([w.get("node_cpu_pct", 0.0) for w in windows])),
            "child_cpu_pct": float(np.mean([w.get("child_cpu_pct", 0.0) for w in windows]))}


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--inference-process", dest="inference_process", action="store_true",
                        help="shorthand: only the process worker configurations")
    parser.add_argument("--control-priority", type=int, default=10, help="SCHED_FIFO priority of the +fifo configs")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=2, help="10.5 s windows per phase and round")
    parser.add_argument("--idle-windows", type=int, default=1)
    parser.add_argument("--predicted-path", action="store_true", help="~/predicted_path on (default off)")
    parser.add_argument("--threads", type=int, default=0, help="inference_threads (0 = cores - 1)")
    parser.add_argument("--name", default="jitter")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="only redraw <name>.png from <name>.json")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads((args.out / f"{args.name}.json").read_text()), args.out / f"{args.name}.png")
        return 0
    if args.inference_process:
        args.configs = [n for n in args.configs if CONFIGS[n][0]]

    env = private_ros_env()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.ros.conversions import rgb_to_image_msg, s_to_stamp

    robot = load_robot_config("franka_panda")
    workdir = Path(tempfile.mkdtemp(prefix="uam-jitter-"))
    ckpt = make_checkpoint(robot.name, workdir / "ckpt")
    env = dict(env, UAM_CACHE_DIR=str(workdir / "cache"))
    if args.backend == "onnxruntime":  # export once, so no configuration pays it at start
        from uam_ros.runtime.factory import create_policy

        print("exporting ONNX once ...", flush=True)
        create_policy("onnxruntime", ckpt, robot.action_joint_names, options={"cache_dir": str(workdir / "cache")})
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

    def drive(seconds: float, camera: bool, alive, until=None) -> bool:
        start = time.monotonic()
        next_joint = next_image = start
        while time.monotonic() - start < seconds and alive():
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
                return True
        return until is None

    def run_config(name: str, r: int) -> dict:
        process, fifo, executor = CONFIGS[name]
        params = {"autostart": True, "model": str(ckpt), "backend": args.backend, "control_rate_hz": 100.0,
                  "diagnostics_period_s": 0.5, "predicted_path": args.predicted_path, "enable": True,
                  "inference_threads": args.threads, "inference_process": process,
                  "control_priority": args.control_priority if fifo else 0, "executor": executor}
        policy = NodeProcess("uam_ros.ros.policy_node", params, workdir / f"policy_{name}_{r}.log",
                             env)
        latest.clear()
        phases: dict[str, list[dict]] = {"idle": [], "inference": []}

        def activated() -> bool:  # this node's, not a late message of the previous one
            return latest.get("lifecycle") == "active" and "warm-up" in policy.log_path.read_text()

        try:
            if not drive(180.0, False, policy.alive, until=activated):
                raise RuntimeError(f"{name}: node did not activate:\n{policy.log_path.read_text()[-3000:]}")
            match = re.search(r"inference in process (\d+)", policy.log_path.read_text())
            child = int(match.group(1)) if match else None
            drive(1.0, False, policy.alive)
            for phase, camera, windows in (("idle", False, args.idle_windows), ("inference", True, args.windows)):
                if camera:
                    drive(3.0, True, policy.alive)  # the first chunks (and their warm-up) out of the window
                for _ in range(windows):
                    chunks0 = int(latest.get("chunks_accepted", 0))
                    late0 = int(float(latest.get("ticks_late", 0)))
                    cpu0 = (cpu_seconds(policy.pid), cpu_seconds(child) if child else None, time.monotonic())
                    drive(WINDOW_S, camera, policy.alive)
                    cpu1 = (cpu_seconds(policy.pid), cpu_seconds(child) if child else None, time.monotonic())
                    if not policy.alive() or not all(k in latest for k in KEYS):
                        raise RuntimeError(f"{name}: node stopped reporting:\n{policy.log_path.read_text()[-3000:]}")
                    dt = cpu1[2] - cpu0[2]
                    window = {k: float(latest[k]) for k in KEYS}
                    window["ticks_late"] = int(float(latest.get("ticks_late", 0))) - late0  # > 5 ms off
                    window["inferences_per_s"] = (int(latest.get("chunks_accepted", 0)) - chunks0) / dt
                    window["inference_latency_ms"] = float(latest.get("inference_latency_ms", 0.0))
                    window["node_cpu_pct"] = 100.0 * (cpu1[0] - cpu0[0]) / dt if cpu0[0] is not None else 0.0
                    window["child_cpu_pct"] = (100.0 * (cpu1[1] - cpu0[1]) / dt
                                               if cpu0[1] is not None and cpu1[1] is not None else 0.0)
                    window["loadavg"] = os.getloadavg()[0]
                    window["ticks_since_activation"] = int(float(latest.get("ticks", 0)))
                    if window["ticks_since_activation"] < 1000:
                        raise RuntimeError(f"{name}: the tick window is not full ({window['ticks_since_activation']})")
                    phases[phase].append(window)
            priority_state = latest.get("control_priority", "")
        finally:
            code = policy.stop()
            drive(1.0, False, lambda: True)  # take the stopped node's last diagnostics out of the queue
            latest.clear()
        if code != 0:
            raise RuntimeError(f"{name}: node exited with {code}:\n{policy.log_path.read_text()[-3000:]}")
        return {"phases": phases, "control_priority_state": priority_state}

    env_before = machine_info()
    raw: dict[str, dict[str, list[dict]]] = {n: {"idle": [], "inference": []} for n in args.configs}
    states: dict[str, str] = {}
    try:
        for r in range(args.rounds):
            order = args.configs[r % len(args.configs):] + args.configs[: r % len(args.configs)]
            for name in order:
                out = run_config(name, r)
                states[name] = out["control_priority_state"]
                for phase, windows in out["phases"].items():
                    raw[name][phase].extend(windows)
                    for w in windows:
                        print(f"round {r + 1}/{args.rounds} {name:<20} {phase:<9} p50 {w['tick_error_p50_ms']:6.3f} "
                              f"p99 {w['tick_error_p99_ms']:7.3f} max {w['tick_error_max_ms']:7.2f} ms  "
                              f"{w['inferences_per_s']:5.1f} inf/s  node CPU {w['node_cpu_pct']:5.1f} %  "
                              f"load {w['loadavg']:.2f}", flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    env_after = machine_info()
    table = {name: {"inference_process": CONFIGS[name][0], "executor": CONFIGS[name][2],
                    "control_priority": args.control_priority if CONFIGS[name][1] else 0,
                    "control_priority_state": states.get(name, ""),
                    **{phase: summarise(raw[name][phase]) for phase in ("idle", "inference")}}
             for name in args.configs}
    result = {
        "created": timestamp(),
        "method": {"control_rate_hz": 100.0, "window_s": WINDOW_S, "rounds": args.rounds,
                   "windows_per_phase": {"idle": args.idle_windows, "inference": args.windows},
                   "backend": args.backend, "predicted_path": args.predicted_path,
                   "inference_threads": args.threads or "cores - 1",
                   "measured": "uam_policy's own |timer period - 10 ms| over 1000-tick windows (TickStats), read "
                               "from /diagnostics at the end of each non-overlapping window; p50/p99 = median "
                               "window, p99_worst / max = worst window",
                   "order": "interleaved rounds, order rotated each round; a fresh node per configuration and round",
                   "inputs": "this script: joint states 100 Hz, camera 15 Hz (inference phase only)"},
        "environment": {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": env_after["loadavg"],
                        "loadavg_during": [round(w["loadavg"], 2) for n in raw for p in raw[n].values() for w in p]},
        "target": {"inference_p99_ms": 1.0},
        "configs": table,
        "windows": raw,
    }
    write_result(result, args.out, args.name, plot)
    print(f"\n{'config':<21}{'phase':<11}{'p50':>7}{'p99':>8}{'p99 worst':>10}{'max':>8}{'inf/s':>7}{'node CPU %':>11}"
          f"{'child CPU %':>12}")
    for name, row in table.items():
        for phase in ("idle", "inference"):
            s = row[phase]
            if s.get("windows"):
                print(f"{name:<21}{phase:<11}{s['p50_ms']:>7.3f}{s['p99_ms']:>8.3f}{s['p99_worst_ms']:>10.3f}"
                      f"{s['max_ms']:>8.2f}{s['inferences_per_s']:>7.1f}{s['node_cpu_pct']:>11.1f}"
                      f"{s['child_cpu_pct']:>12.1f}")
    print(f"load average {env_before['loadavg'][0]:.2f} -> {env_after['loadavg'][0]:.2f} on {os.cpu_count()} cores, "
          f"nice {env_before['nice']}")
    return 0


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = result["configs"]
    names = list(configs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, phase in zip(axes, ("idle", "inference")):
        x = np.arange(len(names))
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99 (median window)"),
                                          ("p99_worst_ms", "p99 (worst window)"), ("max_ms", "max"))):
            values = [configs[n][phase].get(key, np.nan) for n in names]
            bars = ax.bar(x + 0.2 * (i - 1.5), values, 0.2, label=label)
            for bar, v in zip(bars, values):
                if np.isfinite(v):
                    ax.annotate(f"{v:.2f}" if v < 10 else f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, v),
                                textcoords="offset points", xytext=(0, 2), ha="center", fontsize=6)
        ax.axhline(1.0, color="g", ls="--", lw=1, label="target p99 1 ms")
        ax.set_xticks(x, names, fontsize=7, rotation=15)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(phase if phase == "idle" else "inference running back to back", fontsize=9)
    axes[0].set_ylabel("|timer period - 10 ms| [ms]")
    top = max(configs[n][p].get("max_ms", 0.0) for n in names for p in ("idle", "inference"))
    axes[0].set_ylim(0.0, max(top, 1.0) * 3.0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    env, method = result["environment"], result["method"]
    save_figure(fig, path, f"uam_policy control timer at 100 Hz ({method['backend']}): {env['cpu_count']} cores, load "
                f"{env['loadavg_before'][0]:.1f} -> {env['loadavg_after'][0]:.1f}, nice {env['nice']}, "
                f"{method['rounds']} rounds", dpi=120, rect=(0, 0.06, 1, 1))


if __name__ == "__main__":
    sys.exit(main())
