"""Soak: uam_sim (30 Hz camera, 500 Hz joint states) + uam_policy (a model, enabled) for --duration.

Both run as processes over DDS in a private ROS_DOMAIN_ID on localhost (as `uam demo` starts them);
this script subscribes next to them and, for the whole run, watches:

  missed deadlines  the node's control-timer counters on /diagnostics (uam_ros.ros.tick_stats):
                    ticks_missed (control periods without a tick), ticks_late (period off by more
                    than half a period), and the last-1000-tick |period - nominal| p99
  RSS growth        VmRSS of each process (/proc/<pid>/status) every --sample-s: the median of the
                    first minute after --warmup vs the median of the last minute, and a linear fit
  dropped messages  commands: the node's commands_published vs trajectories received here (reliable
                    QoS; counted up to the DDS source time of the node's last /diagnostics);
                    camera / joint states (best effort): received by the node (its per-window rates
                    on /diagnostics x window) vs received here over the same interval, and vs the
                    sim's nominal rate (the sim does not count what it publishes)
  invalid commands  every received trajectory, checked here against the robot config's limits:
                    joint names, finite values, strictly increasing time_from_start, positions
                    within position_min/max, |velocities| <= velocity_max

Targets: no missed deadline, RSS growth < 5 %. Writes results/<name>.json and <name>.png.

    python benchmarks/soak.py [--duration 600] [--model DIR | expert://reach] [--backend auto]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, NodeProcess, add_pipeline_args, bench_parser, cpu_seconds, machine_info, machine_summary,  # noqa: E402
                          make_checkpoint, policy_params, private_ros_env, rss_kb, save_figure, timestamp,
                          write_result)

LIMIT_TOLERANCE = 1e-6


def trajectory_problems(joint_names, expected_names, times_s, positions, velocities, limits) -> list[str]:
    """Why a received JointTrajectory is not a valid command for this robot (empty: valid).
    limits: position_min, position_max, velocity_max arrays in expected_names order."""
    problems = []
    if list(joint_names) != list(expected_names):
        problems.append(f"joint names {list(joint_names)} != {list(expected_names)}")
        return problems
    t = np.asarray(times_s, dtype=np.float64)
    q = np.asarray(positions, dtype=np.float64)
    v = np.asarray(velocities, dtype=np.float64)
    joints = len(expected_names)
    if t.size == 0:
        return ["no points"]
    if q.shape != (t.size, joints):
        return [f"positions shape {q.shape}, expected {(t.size, joints)}"]
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q)) and (v.size == 0 or np.all(np.isfinite(v)))):
        problems.append("non-finite value")
    if np.any(np.diff(t) <= 0.0) or t[0] < 0.0:
        problems.append("time_from_start not strictly increasing from >= 0")
    if np.any(q < limits.position_min - LIMIT_TOLERANCE) or np.any(q > limits.position_max + LIMIT_TOLERANCE):
        problems.append("position outside joint limits")
    if v.size:
        if v.shape != q.shape:
            problems.append(f"velocities shape {v.shape} != positions {q.shape}")
        elif np.any(np.abs(v) > limits.velocity_max + LIMIT_TOLERANCE):
            problems.append("velocity above velocity_max")
    return problems


def rss_growth(times_s, rss_kb_values, start_s: float, window_s: float = 60.0) -> dict[str, float]:
    """RSS growth from start_s on: median of the first window vs the median of the last window, in
    % of the first, and the slope of a linear fit (kB/min). Windows shrink to a fifth of the span
    for short runs."""
    t = np.asarray(times_s, dtype=np.float64)
    r = np.asarray(rss_kb_values, dtype=np.float64)
    keep = (t >= start_s) & np.isfinite(r)
    t, r = t[keep], r[keep]
    if t.size < 3:
        return {"n": int(t.size)}
    window = min(window_s, (t[-1] - t[0]) / 5.0)
    first = float(np.median(r[t <= t[0] + window]))
    last = float(np.median(r[t >= t[-1] - window]))
    slope = float(np.polyfit(t - t[0], r, 1)[0]) * 60.0
    return {"n": int(t.size), "start_kb": first, "end_kb": last, "growth_pct": 100.0 * (last - first) / first,
            "slope_kb_per_min": slope, "max_kb": float(r.max()), "span_s": float(t[-1] - t[0]), "window_s": window}


def received_from_rates(stamps_s, rates_hz) -> float:
    """Messages a node received between its first and last report, from per-window rates: report i
    covers (stamp[i-1], stamp[i]] (uam_ros.ros.diagnostics.RateCounter)."""
    t = np.asarray(stamps_s, dtype=np.float64)
    rate = np.asarray(rates_hz, dtype=np.float64)
    if t.size < 2:
        return 0.0
    return float(np.sum(rate[1:] * np.diff(t)))


def plot(result: dict, series: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    ax = axes[0, 0]
    for name in ("uam_policy", "uam_sim"):
        t, r = series["rss"][name]
        ax.plot(t, np.asarray(r) / 1024.0, label=f"{name} ({result['rss'][name].get('growth_pct', float('nan')):+.2f} %)")
    ax.axvline(result["config"]["warmup_s"], color="gray", ls=":", lw=1)
    ax.set_ylabel("RSS [MiB]")
    ax.legend(fontsize=8)
    d = series["diag"]
    ax = axes[0, 1]
    ax.plot(d["t"], d["tick_error_p99_ms"], label="|period error| p99, last 1000 ticks [ms]")
    ax.plot(d["t"], d["tick_error_max_ms"], lw=0.8, alpha=0.6, label="max, last 1000 ticks [ms]")
    ax2 = ax.twinx()
    ax2.plot(d["t"], d["ticks_missed"], "r", label="missed ticks (cumulative)")
    ax2.set_ylabel("missed ticks", color="r")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper right")
    ax = axes[1, 0]
    ax.plot(d["t"], d["camera_rate_hz"], label="camera received by node [Hz]")
    ax.plot(d["t"], np.asarray(d["joint_state_rate_hz"]) / 10.0, label="joint states received by node [Hz / 10]")
    ax.plot(series["commands"]["t"], series["commands"]["rate"], label="commands received here [Hz]")
    ax.set_xlabel("s")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(d["t"], d["inference_latency_ms"], lw=0.8, label="inference [ms] (last, per report)")
    ax.set_xlabel("s")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    env = result["environment"]
    c = result["config"]
    save_figure(fig, path, f"soak {c['duration_s']:.0f} s: uam_sim ({c['camera_hz']:g} Hz camera, {c['joint_hz']:g} Hz "
                f"joints) + uam_policy ({c['backend']}); {machine_summary(env)}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    add_pipeline_args(parser, "checkpoint dir or expert://reach (default: seeded untrained)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds after the first command")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds at the start not used for RSS growth")
    parser.add_argument("--sample-s", type=float, default=1.0, help="RSS sampling period")
    parser.add_argument("--policy-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra uam_policy parameter, e.g. inference_process:=true (repeatable)")
    parser.add_argument("--name", default="soak")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    extra_params = policy_params(args.policy_param)  # a malformed item fails before any node starts

    env = private_ros_env()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.ros.conversions import duration_to_s, stamp_to_s
    from uam_ros.ros.qos import COMMAND_QOS, SENSOR_QOS

    robot = load_robot_config(args.robot)
    limits = robot.limits_arrays()
    workdir = Path(tempfile.mkdtemp(prefix="uam-soak-"))
    model = args.model or str(make_checkpoint(args.robot, workdir / "ckpt"))
    env["UAM_CACHE_DIR"] = str(workdir / "cache")
    env_before = machine_info()

    rclpy.init(args=[])  # not sys.argv: its NAME:=VALUE items would read as remap rules
    node = rclpy.create_node("uam_soak_bench")
    t0 = [None]  # monotonic time of the first command
    counts = {"camera": [], "joints": []}  # reception times (s, system clock)
    commands: list[tuple[float, float]] = []  # (reception, DDS source) times
    invalid: list[dict] = []
    diag_rows: list[dict] = []

    def on_camera(msg: Image, info) -> None:
        counts["camera"].append(info["received_timestamp"] * 1e-9)

    def on_joints(msg: JointState, info) -> None:
        counts["joints"].append(info["received_timestamp"] * 1e-9)

    def on_trajectory(msg: JointTrajectory, info) -> None:
        if t0[0] is None:
            t0[0] = time.monotonic()
        commands.append((info["received_timestamp"] * 1e-9, info["source_timestamp"] * 1e-9))
        problems = trajectory_problems(
            msg.joint_names, robot.joints.names, [duration_to_s(p.time_from_start) for p in msg.points],
            [list(p.positions) for p in msg.points], [list(p.velocities) for p in msg.points], limits)
        if problems:
            invalid.append({"received": info["received_timestamp"] * 1e-9, "stamp": stamp_to_s(msg.header.stamp),
                            "problems": problems})

    def on_diag(msg: DiagnosticArray, info) -> None:
        for status in msg.status:
            if status.name.startswith("uam_policy"):
                row = {kv.key: kv.value for kv in status.values}
                row.update(_stamp=stamp_to_s(msg.header.stamp), _source=info["source_timestamp"] * 1e-9,
                           _received=info["received_timestamp"] * 1e-9, _level=int.from_bytes(status.level, "little")
                           if isinstance(status.level, bytes) else int(status.level), _message=status.message,
                           _t=time.monotonic())
                diag_rows.append(row)

    node.create_subscription(Image, robot.camera.image_topic, on_camera, SENSOR_QOS)
    node.create_subscription(JointState, "joint_states", on_joints, SENSOR_QOS)
    node.create_subscription(JointTrajectory, robot.controller.trajectory_topic, on_trajectory, COMMAND_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)

    sim = NodeProcess("uam_ros.ros.sim_node", {"robot": args.robot, "task": "reach", "camera_rate_hz": args.camera_hz,
                                                "joint_state_rate_hz": args.joint_hz}, workdir / "uam_sim.log", env)
    policy = NodeProcess("uam_ros.ros.policy_node", {
        "robot": args.robot, "model": model, "backend": args.backend, "autostart": True, "enable": True,
        "instruction": "reach the red cube", **extra_params}, workdir / "uam_policy.log", env)
    procs = {"uam_policy": policy, "uam_sim": sim}
    rss = {name: ([], []) for name in procs}
    cpu = {name: [] for name in procs}
    died = ""
    started = next_sample = time.monotonic()
    next_print = [0.0]
    print(f"soak {args.duration:.0f} s (ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, logs in {workdir}) ...", flush=True)
    try:
        while True:
            rclpy.spin_once(node, timeout_sec=0.01)
            now = time.monotonic()
            if not (sim.alive() and policy.alive()):
                died = "uam_sim" if not sim.alive() else "uam_policy"
                break
            if t0[0] is None:
                if now - started > 300.0:
                    died = "no command within 300 s"
                    break
                continue
            if now >= next_sample:
                next_sample = max(next_sample + args.sample_s, now)
                for name, proc in procs.items():
                    value = rss_kb(proc.pid)
                    if value is not None:
                        rss[name][0].append(now - t0[0])
                        rss[name][1].append(value)
                        cpu[name].append(cpu_seconds(proc.pid))
                elapsed = now - t0[0]
                if elapsed >= next_print[0]:
                    next_print[0] += 60.0 if args.duration > 120 else 10.0
                    last = diag_rows[-1] if diag_rows else {}
                    print(f"  {elapsed:5.0f} s: RSS policy {rss['uam_policy'][1][-1] / 1024:.0f} MiB, sim "
                          f"{rss['uam_sim'][1][-1] / 1024:.0f} MiB; missed ticks {last.get('ticks_missed', '?')}, "
                          f"tick p99 {last.get('tick_error_p99_ms', '?')} ms, commands {len(commands)}, "
                          f"invalid {len(invalid)}, load {os.getloadavg()[0]:.1f}", flush=True)
            if now - t0[0] >= args.duration:
                spin_until = time.monotonic() + 1.5  # one more /diagnostics
                while time.monotonic() < spin_until:
                    rclpy.spin_once(node, timeout_sec=0.01)
                break
    finally:
        logs = {name: proc.tail(15) for name, proc in procs.items()}
        codes = {name: proc.stop() for name, proc in procs.items()}
        node.destroy_node()
        rclpy.try_shutdown()
    env_after = machine_info()
    if t0[0] is None or not diag_rows:
        print(f"soak failed: {died or 'no diagnostics'}\n" + "\n".join(f"--- {k} ---\n{v}" for k, v in logs.items()),
              file=sys.stderr)
        return 1

    # ---- analysis -------------------------------------------------------------------------------
    diag = [r for r in diag_rows if r["_t"] >= t0[0] and "ticks" in r]
    last = diag[-1]
    first_active = diag[0]
    num = lambda row, key: float(row.get(key, "nan"))  # noqa: E731
    span = (first_active["_received"], last["_received"])
    in_span = lambda times: sum(span[0] < t <= span[1] for t in times)  # noqa: E731
    node_camera = received_from_rates([r["_stamp"] for r in diag], [num(r, "camera_rate_hz") for r in diag])
    node_joints = received_from_rates([r["_stamp"] for r in diag], [num(r, "joint_state_rate_hz") for r in diag])
    span_s = span[1] - span[0]
    commands_by_last_diag = sum(source <= last["_source"] for _, source in commands)
    missed = int(num(last, "ticks_missed")) - int(num(first_active, "ticks_missed"))
    result = {
        "created": timestamp(),
        "config": {"robot": args.robot, "model": model, "backend": last.get("backend", args.backend),
                   "duration_s": args.duration, "warmup_s": args.warmup, "camera_hz": args.camera_hz,
                   "joint_hz": args.joint_hz, "control_rate_hz": robot.control.rate_hz, "sample_s": args.sample_s,
                   "policy_params": extra_params},
        "environment": {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": env_after["loadavg"]},
        "ended": died or "duration reached", "exit_codes": codes,
        "deadlines": {
            "ticks": int(num(last, "ticks")), "ticks_missed": int(num(last, "ticks_missed")),
            "ticks_late": int(num(last, "ticks_late")), "ticks_missed_after_first_report": missed,
            "worst_window_p99_ms": max(num(r, "tick_error_p99_ms") for r in diag),
            "worst_window_max_ms": max(num(r, "tick_error_max_ms") for r in diag),
            "median_window_p99_ms": float(np.median([num(r, "tick_error_p99_ms") for r in diag])),
            "target": "no missed control period (ticks_missed == 0)",
        },
        "rss": {name: rss_growth(*rss[name], start_s=args.warmup) for name in procs},
        "cpu_percent": {name: 100.0 * (cpu[name][-1] - cpu[name][0]) / max(rss[name][0][-1] - rss[name][0][0], 1e-9)
                        for name in procs if len(cpu[name]) > 1 and None not in (cpu[name][0], cpu[name][-1])},
        "messages": {
            "commands_published_by_node": int(num(last, "commands_published")),
            "commands_received_here_by_then": commands_by_last_diag,
            "commands_dropped": int(num(last, "commands_published")) - commands_by_last_diag,
            "commands_received_here_total": len(commands),
            "interval_s": span_s,
            "camera": {"nominal": args.camera_hz * span_s, "received_by_node": node_camera,
                       "received_here": in_span(counts["camera"])},
            "joint_states": {"nominal": args.joint_hz * span_s, "received_by_node": node_joints,
                             "received_here": in_span(counts["joints"])},
        },
        "invalid_commands": {"count": len(invalid), "first": invalid[:10]},
        "node_counters_at_end": {k: last.get(k) for k in ("chunks_accepted", "chunks_rejected", "chunk_points_late",
                                                          "holds", "inference_errors", "last_reject")},
    }
    result["targets"] = {
        "no_missed_deadline": result["deadlines"]["ticks_missed"] == 0,
        "rss_growth_below_5pct": all(r.get("growth_pct", 0.0) < 5.0 for r in result["rss"].values()),
        "no_invalid_command": len(invalid) == 0,
        "no_dropped_command": result["messages"]["commands_dropped"] == 0,
    }
    series = {
        "rss": {name: [list(rss[name][0]), list(rss[name][1])] for name in procs},
        "diag": {k: [num(r, k) for r in diag] for k in ("tick_error_p99_ms", "tick_error_max_ms", "ticks_missed",
                                                           "camera_rate_hz", "joint_state_rate_hz",
                                                           "inference_latency_ms")},
    }
    series["diag"]["t"] = [r["_t"] - t0[0] for r in diag]
    received = np.asarray([r for r, _ in commands]) - (commands[0][0] if commands else 0.0)
    edges = np.arange(0.0, max(received.max(initial=0.0), 1.0) + 1.0, 1.0)
    series["commands"] = {"t": list(edges[:-1]), "rate": list(np.histogram(received, edges)[0].astype(float))}
    result["series"] = series
    write_result(result, args.out, args.name, lambda result_, png: plot(result_, series, png))

    d, m = result["deadlines"], result["messages"]
    print(f"\nended: {result['ended']}; backend {result['config']['backend']}")
    print(f"deadlines: {d['ticks']} ticks, {d['ticks_missed']} missed, {d['ticks_late']} late; window p99 median "
          f"{d['median_window_p99_ms']:.2f} ms, worst {d['worst_window_p99_ms']:.2f} ms, worst max {d['worst_window_max_ms']:.1f} ms")
    for name, g in result["rss"].items():
        if "growth_pct" in g:
            print(f"RSS {name}: {g['start_kb'] / 1024:.1f} -> {g['end_kb'] / 1024:.1f} MiB ({g['growth_pct']:+.2f} %, "
                  f"{g['slope_kb_per_min']:+.1f} kB/min)")
    print(f"commands: node published {m['commands_published_by_node']}, received here {m['commands_received_here_by_then']} "
          f"(dropped {m['commands_dropped']}); invalid {len(invalid)}")
    for k in ("camera", "joint_states"):
        print(f"{k}: nominal {m[k]['nominal']:.0f}, node received {m[k]['received_by_node']:.0f}, here {m[k]['received_here']}")
    print(f"targets: {result['targets']}; load {env_before['loadavg'][0]:.2f} -> {env_after['loadavg'][0]:.2f} "
          f"on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
