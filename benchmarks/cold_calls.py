"""Cold calls: what the chunk tick's parts cost warm (back to back) and after the thread slept, side by side.

Why this exists: node_overhead.py found the chunk tick's parts costing 2-8x inside the node what
they cost in a loop. The node's control thread sleeps between 100 Hz ticks; on wake-up its caches
(and on a VM, its virtual CPU) are cold. This script times each part of the tick that turns a chunk
into a command (ChunkScheduler.merge, SafetyFilter.filter, command_problems, the JointTrajectory as
rclpy messages + serialize_message vs uam_ros.ros.cdr's bytes) in four conditions, interleaved in
each round so that machine noise hits all alike:
  warm          the call repeated back to back (what timeit reports)
  sleep X ms    the call once after time.sleep(X) -- X = 0.1, 1 and 10 (the 100 Hz tick's gap)
  10 ms, again  the same call right after the one timed at "sleep 10 ms": whether what the sleep
                cost is paid once per wake-up (cold caches for this code) or on every call

A trained chunk's shape: 16 points of the Panda's 7 joints (+ gripper for merge), from the middle of
the joint ranges; the safety filter twice: a chunk no limit binds (most chunks in node_overhead.py)
and one that starts too fast for the arm at rest (the filter walks every point).
Writes results/<name>.json + .png.

    python benchmarks/cold_calls.py [--rounds 40]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, bench_parser, machine_info, machine_summary, save_figure, timestamp,  # noqa: E402
                          write_result)

SLEEPS_MS = (0.1, 1.0, 10.0)


def tick_parts(robot_name: str) -> dict:
    """The calls of the chunk tick, each a no-argument closure over one fixed chunk."""
    from rclpy.serialization import serialize_message

    from uam_ros.control.chunk_scheduler import ChunkScheduler
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.control.safety import SafetyFilter
    from uam_ros.control.trajectory import build_command, command_problems
    from uam_ros.ros.cdr import trajectory_cdr
    from uam_ros.ros.conversions import trajectory_to_msg

    robot = load_robot_config(robot_name)
    limits = robot.limits_arrays()
    joints, dt = robot.arm_dof, 1.0 / robot.chunk.action_rate_hz
    times = dt * np.arange(1, 17)
    q0 = 0.5 * (limits.position_min + limits.position_max)
    target = q0 + np.cumsum(np.full((16, joints), 0.15), axis=0)  # too fast from rest: the limits bind
    gentle = q0 + np.cumsum(np.full((16, joints), 0.002), axis=0)
    command = build_command(robot.joints.names, 1795714805.1, times, gentle, np.full_like(gentle, 0.04))
    safety = SafetyFilter(limits, robot.control.max_position_deviation)
    scheduler = ChunkScheduler(robot.chunk.blend, robot.chunk.blend_steps, min_lead_s=1.0 / robot.control.rate_hz)
    chunk = np.zeros((16, robot.action_dim))

    def merge():
        scheduler.merge(chunk, dt, 100.0, 100.0 + 2 * dt)  # blends into the plan the previous call left

    scheduler.merge(chunk, dt, 100.0 - dt, 100.0)
    if safety.filter(times, gentle, q0, np.zeros(joints)).clamped_points or \
            not safety.filter(times, target, q0, np.zeros(joints)).clamped_points:
        raise RuntimeError(f"{robot_name}: the two safety-filter chunks do not bind / bind as intended")
    return {
        "ChunkScheduler.merge": merge,
        "SafetyFilter.filter (no limit binds)": lambda: safety.filter(times, gentle, q0, np.zeros(joints)),
        "SafetyFilter.filter (limits bind)": lambda: safety.filter(times, target, q0, np.zeros(joints)),
        "command_problems": lambda: command_problems(command, limits, 1.0 / robot.control.rate_hz),
        "trajectory_to_msg + serialize_message": lambda: serialize_message(trajectory_to_msg(command)),
        "trajectory_cdr": lambda: trajectory_cdr(command),
    }


def measure(parts: dict, rounds: int, warm_repeats: int = 20) -> dict[str, dict[str, list[float]]]:
    """Seconds per call: {part: {condition: [samples]}}, conditions interleaved round by round."""
    conditions = ["warm"] + [f"sleep {ms:g} ms" for ms in SLEEPS_MS] + ["10 ms, again"]
    samples = {part: {c: [] for c in conditions} for part in parts}
    for _ in range(rounds):
        for part, call in parts.items():
            call()
            start = time.perf_counter()
            for _ in range(warm_repeats):
                call()
            samples[part]["warm"].append((time.perf_counter() - start) / warm_repeats)
            for ms in SLEEPS_MS:
                time.sleep(ms * 1e-3)
                start = time.perf_counter()
                call()
                samples[part][f"sleep {ms:g} ms"].append(time.perf_counter() - start)
            start = time.perf_counter()
            call()
            samples[part]["10 ms, again"].append(time.perf_counter() - start)
    return samples


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """p50 / p90 in microseconds, and each condition's p50 as a multiple of the warm p50."""
    out = {}
    for part, by_condition in samples.items():
        warm = float(np.median(by_condition["warm"]))
        out[part] = {c: {"p50_us": float(np.median(v)) * 1e6, "p90_us": float(np.percentile(v, 90)) * 1e6,
                         "x_warm": float(np.median(v)) / warm} for c, v in by_condition.items()}
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result["p50"]
    parts = list(table)
    conditions = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / len(conditions)
    x = np.arange(len(parts))
    for i, condition in enumerate(conditions):
        values = [table[p][condition]["p50_us"] for p in parts]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=condition)
        for bar, v in zip(bars, values):
            ax.annotate(f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", fontsize=7)
    ax.set_xticks(x, [p.replace(" + ", "\n+ ") for p in parts], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("µs per call, p50")
    ax.legend(fontsize=8)
    save_figure(fig, path, f"chunk-tick parts warm vs after sleeping: {machine_summary(result['environment'])}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--name", default="cold_calls")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    env_before = machine_info()
    parts = tick_parts(args.robot)
    samples = measure(parts, args.rounds)
    env = {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": machine_info()["loadavg"]}
    table = summarize(samples)
    result = {"created": timestamp(), "config": vars(args) | {"out": str(args.out), "sleeps_ms": list(SLEEPS_MS)},
              "environment": env, "p50": table,
              "samples_us": {p: {c: [s * 1e6 for s in v] for c, v in by.items()} for p, by in samples.items()}}
    for part, by_condition in table.items():
        print(f"{part:40s} " + "  ".join(f"{c} {v['p50_us']:7.1f} us (x{v['x_warm']:.1f})" for c, v in by_condition.items()))
    write_result(result, args.out, args.name, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
