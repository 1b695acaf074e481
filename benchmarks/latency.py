"""End-to-end latency: camera stamp -> the first command computed from that frame, over DDS.

uam_sim (camera --camera-hz, joint states --joint-hz) and uam_policy (enabled, a seeded untrained
checkpoint of the default UAMConfig unless --model) run as separate processes in a private
ROS_DOMAIN_ID on localhost, exactly as `uam demo` starts them. This script subscribes next to them:

  camera/image_raw                         frames (stamp, DDS source and reception time)
  <controller>/joint_trajectory            the commands, as a controller receives them (reception time)
  /uam_policy/chunk_timing                 per commanded chunk (uam_policy publishes it while subscribed):
                                           trajectory stamp, the camera stamp it was computed from, when
                                           the node received that frame, inference start and end, publish
  /diagnostics                             backend, node-side counters

Each trajectory is matched to its chunk_timing by its header stamp; for each camera frame the first
trajectory computed from it counts. Its latency, and the parts it adds up to:

  camera -> node     frame received by the node's callback - camera stamp (render, DDS, executor)
  queue / wait       inference start - frame received (the worker finishing the previous chunk, the
                     next control tick submitting this frame, the worker thread waking up)
  inference          Policy.infer in the inference thread
  wait for tick      the control tick that polls the result - inference end (< one control period)
  tick + publish     DDS source timestamp of the trajectory - tick start (merge, safety, messages)
  transport          reception by this subscriber - DDS source timestamp
  end to end         reception by this subscriber - camera stamp  (= the sum)

camera -> node is further split at the frame's DDS source timestamp into camera publish (the sim
renders the frame after stamping it: what a real camera's exposure/readout/driver adds) and frame
-> node (DDS + the node's executor reaching the callback); frame publish -> command is the end to
end latency without the camera part.

Reported: p50 / p90 / p99 / max of each, frames used / frames received. All clocks are this host's
system clock (no use_sim_time). Writes results/<name>.json and <name>.png.

    python benchmarks/latency.py [--duration 30] [--backend auto|torch|onnxruntime] [--model DIR]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, NodeProcess, add_pipeline_args, bench_parser, machine_info, machine_summary,  # noqa: E402
                          make_checkpoint, private_ros_env, save_figure, stats_ms, timestamp)

COMPONENTS = ("camera_to_node", "queue_wait", "inference", "wait_for_tick", "tick_publish", "transport")
# camera_to_node split at the DDS source timestamp of the frame (when the camera driver published it)
CAMERA_PARTS = ("camera_publish", "frame_to_node", "frame_publish_to_command")
TIMING_FIELDS = ("command_stamp", "observation_stamp", "image_received", "inference_started", "inference_finished",
                 "published")
STAMP_TOLERANCE_S = 5e-6  # float64 seconds since the epoch resolve ~0.24 us; ticks are >= 1 ms apart


def match_chunks(trajectories: list[dict], timings: list[tuple[float, ...]]) -> tuple[list[dict], dict]:
    """Pair each trajectory with the chunk_timing of the same stamp; keep per camera frame the
    trajectory received first. trajectories: {"stamp", "received", "source"} (s); holds (stamp 0)
    are skipped. Returns (records sorted by camera stamp, counts)."""
    by_stamp = sorted(timings, key=lambda t: t[0])
    stamps = np.array([t[0] for t in by_stamp], dtype=np.float64)
    first: dict[float, dict] = {}
    counts = {"trajectories": len(trajectories), "holds": 0, "unmatched": 0, "matched": 0, "later_same_frame": 0}
    for traj in trajectories:
        if traj["stamp"] == 0.0:
            counts["holds"] += 1
            continue
        i = int(np.searchsorted(stamps, traj["stamp"])) if len(stamps) else 0
        candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps) and abs(stamps[j] - traj["stamp"]) <= STAMP_TOLERANCE_S]
        if not candidates:
            counts["unmatched"] += 1
            continue
        counts["matched"] += 1
        timing = dict(zip(TIMING_FIELDS, by_stamp[candidates[0]]))
        record = {**timing, "received": traj["received"], "source": traj.get("source", 0.0)}
        key = round(timing["observation_stamp"], 6)
        if key in first:
            counts["later_same_frame"] += 1
            if record["received"] >= first[key]["received"]:
                continue
        first[key] = record
    return sorted(first.values(), key=lambda r: r["observation_stamp"]), counts


def components(record: dict) -> dict[str, float]:
    """The parts of one frame's latency (s); those whose inputs are unknown (0) are NaN. They add up
    to end_to_end whenever all are known."""
    r = record
    known = lambda *keys: all(r.get(k, 0.0) > 0.0 for k in keys)  # noqa: E731
    nan = float("nan")
    source = r["source"] if r.get("source", 0.0) > 0.0 else r["published"]
    out = {
        "camera_to_node": r["image_received"] - r["observation_stamp"] if known("image_received") else nan,
        "queue_wait": r["inference_started"] - r["image_received"] if known("inference_started", "image_received") else nan,
        "inference": r["inference_finished"] - r["inference_started"] if known("inference_started", "inference_finished") else nan,
        "wait_for_tick": r["command_stamp"] - r["inference_finished"] if known("inference_finished") else nan,
        "tick_publish": source - r["command_stamp"],
        "transport": r["received"] - source,
        "end_to_end": r["received"] - r["observation_stamp"],
    }
    frame_source = r.get("frame_source", 0.0)
    out["camera_publish"] = frame_source - r["observation_stamp"] if frame_source > 0.0 else nan
    out["frame_to_node"] = r["image_received"] - frame_source if frame_source > 0.0 and known("image_received") else nan
    out["frame_publish_to_command"] = r["received"] - frame_source if frame_source > 0.0 else nan
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    e2e = np.asarray(result["samples_ms"]["end_to_end"])
    left.hist(e2e, bins=40, color="tab:blue", alpha=0.8)
    for q, style in ((50, "-"), (99, "--")):
        v = np.percentile(e2e, q)
        left.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
    left.axvline(e2e.max(), color="r", ls=":", lw=1, label=f"max {e2e.max():.1f} ms")
    left.set_xlabel("camera stamp -> first command from that frame received [ms]")
    left.set_ylabel("frames")
    left.legend(fontsize=8)
    table = result["latency"]
    names = [c for c in COMPONENTS if table[c]["n"]]
    bottom = 0.0
    for name in names:
        value = table[name]["p50_ms"]
        right.bar(["p50 parts"], [value], bottom=bottom, label=f"{name} {value:.1f}")
        bottom += value
    right.bar(["end to end p50"], [table["end_to_end"]["p50_ms"]], color="tab:gray")
    right.bar(["end to end p99"], [table["end_to_end"]["p99_ms"]], color="tab:red")
    right.set_ylabel("ms")
    right.legend(fontsize=7, loc="upper left")
    env = result["environment"]
    save_figure(fig, path, f"uam_sim -> uam_policy ({result['config']['backend']}) -> command, over DDS: "
                f"{machine_summary(env)}, camera {result['config']['camera_hz']:g} Hz, "
                f"joints {result['config']['joint_hz']:g} Hz")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    add_pipeline_args(parser, "checkpoint dir or expert://<task> (default: seeded untrained)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the first command not measured")
    parser.add_argument("--name", default="latency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    env = private_ros_env()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.ros.conversions import stamp_to_s
    from uam_ros.ros.qos import COMMAND_QOS, SENSOR_QOS

    robot = load_robot_config(args.robot)
    workdir = Path(tempfile.mkdtemp(prefix="uam-latency-"))
    model = args.model or str(make_checkpoint(args.robot, workdir / "ckpt"))
    env["UAM_CACHE_DIR"] = str(workdir / "cache")
    env_before = machine_info()

    rclpy.init()
    node = rclpy.create_node("uam_latency_bench")
    frames: list[tuple[float, float, float]] = []  # (stamp, received, DDS source) [s]
    trajectories: list[dict] = []
    timings: list[tuple[float, ...]] = []
    diag: dict[str, str] = {}
    recording = [False]

    def on_frame(msg: Image, info) -> None:
        if recording[0]:
            frames.append((stamp_to_s(msg.header.stamp), info["received_timestamp"] * 1e-9,
                           info["source_timestamp"] * 1e-9))

    def on_trajectory(msg: JointTrajectory, info) -> None:
        trajectories.append({"stamp": stamp_to_s(msg.header.stamp), "received": info["received_timestamp"] * 1e-9,
                             "source": info["source_timestamp"] * 1e-9, "recording": recording[0]})

    def on_timing(msg: Float64MultiArray) -> None:
        timings.append(tuple(msg.data))

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("uam_policy"):
                diag.clear()
                diag.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(Image, robot.camera.image_topic, on_frame, SENSOR_QOS)
    node.create_subscription(JointTrajectory, robot.controller.trajectory_topic, on_trajectory, COMMAND_QOS)
    node.create_subscription(Float64MultiArray, "/uam_policy/chunk_timing", on_timing, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

    sim = NodeProcess("uam_ros.ros.sim_node", {"robot": args.robot, "task": "reach", "camera_rate_hz": args.camera_hz,
                                                "joint_state_rate_hz": args.joint_hz}, workdir / "uam_sim.log", env)
    policy = NodeProcess("uam_ros.ros.policy_node", {
        "robot": args.robot, "model": model, "backend": args.backend, "autostart": True, "enable": True,
        "instruction": "reach the red cube", "predicted_path": True}, workdir / "uam_policy.log", env)

    def spin_for(seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not (sim.alive() and policy.alive()):
                return False
            rclpy.spin_once(node, timeout_sec=0.01)
            if until is not None and until():
                return True
        return until is None

    try:
        print(f"starting uam_sim + uam_policy (ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, logs in {workdir}) ...", flush=True)
        if not spin_for(300.0, until=lambda: len(timings) > 0):
            print("no chunk_timing within 300 s\n--- uam_policy ---\n" + policy.tail() + "\n--- uam_sim ---\n" + sim.tail(),
                  file=sys.stderr)
            return 1
        spin_for(args.settle)
        trajectories.clear()
        timings.clear()
        recording[0] = True
        start = time.monotonic()
        spin_for(args.duration)
        measured_s = time.monotonic() - start
        recording[0] = False
        spin_for(1.0)  # the last chunk_timing messages
    finally:
        policy.stop()
        sim.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    env_after = machine_info()

    records, counts = match_chunks([t for t in trajectories if t["recording"]], timings)
    frame_source = {round(stamp, 6): source for stamp, _, source in frames}
    for r in records:
        r["frame_source"] = frame_source.get(round(r["observation_stamp"], 6), 0.0)
    parts = [components(r) for r in records]
    keys = (*COMPONENTS, "end_to_end", *CAMERA_PARTS)
    series = {k: np.array([p[k] for p in parts], dtype=np.float64) for k in keys}
    latency = {k: stats_ms(v[np.isfinite(v)]) for k, v in series.items()}
    frame_stamps = {round(s, 6) for s, _, _ in frames}
    camera_to_bench = [r - s for s, r, _ in frames]
    used = sum(round(r["observation_stamp"], 6) in frame_stamps for r in records)
    result = {
        "created": timestamp(),
        "config": {"robot": args.robot, "model": model, "backend": diag.get("backend", args.backend),
                   "backend_reason": diag.get("backend_reason", ""), "duration_s": round(measured_s, 1),
                   "camera_hz": args.camera_hz, "joint_hz": args.joint_hz,
                   "control_rate_hz": robot.control.rate_hz, "action_rate_hz": robot.chunk.action_rate_hz},
        "method": "trajectory matched to /uam_policy/chunk_timing by header stamp; first trajectory per camera frame; "
                  "times from the node clock and DDS source/reception timestamps (one host, system clock)",
        "environment": {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": env_after["loadavg"]},
        "counts": {**counts, "frames_received_here": len(frames), "frames_used": used,
                   "frames_used_fraction": used / max(len(frame_stamps), 1)},
        "latency": latency,
        "camera_to_this_subscriber": stats_ms(camera_to_bench),
        "node_diagnostics_at_end": diag,
        "samples_ms": {k: [round(float(x) * 1e3, 3) for x in v] for k, v in series.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    if latency["end_to_end"]["n"]:
        plot(result, args.out / f"{args.name}.png")

    print(f"\n{'part':<16}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  ms  (n)")
    for k in keys:
        s = latency[k]
        if s["n"]:
            print(f"{k:<16}{s['p50_ms']:>8.1f}{s['p90_ms']:>8.1f}{s['p99_ms']:>8.1f}{s['max_ms']:>8.1f}  ({s['n']})")
    print(f"frames: {len(frames)} received here, {used} of them used; trajectories {counts}")
    print(f"backend {result['config']['backend']}; load average {env_before['loadavg'][0]:.2f} -> "
          f"{env_after['loadavg'][0]:.2f} on {os.cpu_count()} cores")
    print(f"wrote {args.out / (args.name + '.json')} and .png")
    return 0 if latency["end_to_end"]["n"] else 1


if __name__ == "__main__":
    sys.exit(main())
