"""Inference CPU cost: how many cores the torch backend burns at the node's inference rate, per intra-op thread count.

Why this exists: jitter.py on a lent H100 box showed the node's inference child using 2.4 cores while
the model ran on the GPU at 15 inferences/s. On a GPU the CPU only prepares the inputs (image resize
in torch, tokens, noise) and waits; idle intra-op threads spin between calls. This script runs the
backend as the node's worker would -- one call per camera frame at --rate Hz -- once per thread
count, each in a fresh process (torch's thread pool is per process), and reports the process's CPU
time as a share of one core, and the inference time p50 / p99. torch_backend.default_thread_count
sets the node's default from it (cores - 1 on the CPU, 1 on a GPU).

    python benchmarks/inference_cpu.py [--device auto] [--mode auto] [--threads 15 4 2 1] [--rate 15]

Writes results/<name>.json + .png (default name: inference_cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, bench_parser, machine_info, machine_summary, save_figure, stats_ms,  # noqa: E402
                          timestamp, write_result)


def measure(model: Path, robot_name: str, threads: int, device: str, mode: str, rate_hz: float, calls: int) -> dict:
    """In this process: the policy at rate_hz for `calls` calls after 10 warm-up calls."""
    import torch

    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.runtime.policy import Observation
    from uam_ros.runtime.torch_backend import TorchPolicy

    robot = load_robot_config(robot_name)
    policy = TorchPolicy(model, robot.action_joint_names, threads=threads, device=device, mode=mode)
    image = np.random.default_rng(0).integers(0, 256, (robot.camera.height, robot.camera.width, 3), np.uint8)
    observation = Observation(image, np.asarray(robot.action_home), "reach the red cube", 10 ** 9)
    for _ in range(10):
        policy.infer(observation)
    latencies = []
    cpu_start, start = time.process_time(), time.perf_counter()
    for k in range(calls):
        t = time.perf_counter()
        policy.infer(observation)
        latencies.append(time.perf_counter() - t)
        time.sleep(max(0.0, start + (k + 1) / rate_hz - time.perf_counter()))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"threads": policy.threads, "torch_threads": torch.get_num_threads(), "device": str(policy.device),
            "mode": policy.mode, "cores_used": cpu / wall, "wall_s": wall, "inference": stats_ms(latencies)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"default ({r['threads']})" if r["requested_threads"] == 0 else str(r["threads"]) for r in rows]
    x = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bars = left.bar(x, [r["cores_used"] for r in rows], color="tab:red")
    for bar in bars:
        left.annotate(f"{bar.get_height():.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    left.set_xticks(x, labels)
    left.set_xlabel("intra-op threads")
    left.set_ylabel(f"cores used at {result['config']['rate_hz']:g} inferences/s")
    width = 0.4
    right.bar(x - width / 2, [r["inference"]["p50_ms"] for r in rows], width, label="p50")
    right.bar(x + width / 2, [r["inference"]["p99_ms"] for r in rows], width, label="p99")
    right.set_xticks(x, labels)
    right.set_xlabel("intra-op threads")
    right.set_ylabel("inference time [ms]")
    right.legend(fontsize=8)
    first = rows[0]
    save_figure(fig, path, f"torch {first['mode']} on {first['device']}: {machine_summary(result['environment'])}"
                + (f", {result['environment']['gpu']}" if result["environment"].get("gpu") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the robot's shipped model)")
    parser.add_argument("--device", default="auto", help="torch device: auto (cuda when torch sees a GPU), cpu, cuda")
    parser.add_argument("--mode", default="auto", help="torch mode (auto: cuda_graphs on a GPU, eager on the CPU)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="intra-op thread counts, one process each (default: cores - 1, 4, 2, 1 -- and 0, "
                             "the backend's own default)")
    parser.add_argument("--rate", dest="rate_hz", type=float, default=15.0, help="inferences per second")
    parser.add_argument("--calls", type=int, default=75)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process: one count
    parser.add_argument("--name", default="inference_cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from uam_ros.resources import models_dir

    model = args.model or models_dir() / "default" / args.robot
    if args.one:
        row = measure(model, args.robot, args.threads[0], args.device, args.mode, args.rate_hz, args.calls)
        print(json.dumps(row))
        return 0
    cores = os.cpu_count() or 2
    counts = args.threads or sorted({c for c in (cores - 1, 4, 2, 1) if 1 <= c <= max(1, cores - 1)},
                                    reverse=True) + [0]
    env_before = machine_info()
    rows = []
    for threads in counts:
        command = [sys.executable, __file__, "--one", "--robot", args.robot, "--model", str(model),
                   "--device", args.device, "--mode", args.mode, "--threads", str(threads),
                   "--rate", str(args.rate_hz), "--calls", str(args.calls)]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            print(f"threads {threads}: failed (exit {done.returncode})\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        row = {"requested_threads": threads, **json.loads(lines[-1])}
        rows.append(row)
        print(f"threads {threads} ({row['threads']} used, torch {row['mode']} on {row['device']}): "
              f"{row['cores_used']:.2f} cores, inference p50 {row['inference']['p50_ms']:.2f} ms "
              f"p99 {row['inference']['p99_ms']:.2f} ms", flush=True)
    env_after = machine_info()
    result = {"created": timestamp(),
              "config": {"robot": args.robot, "model": str(model), "device": args.device, "mode": args.mode,
                         "rate_hz": args.rate_hz, "calls": args.calls, "thread_counts": counts},
              "method": "each thread count in a fresh process: 10 warm-up calls, then `calls` calls paced at rate_hz; "
                        "cores_used = the process's CPU time / wall time; requested_threads 0 = the backend's default",
              "environment": {**env_before, "loadavg_before": env_before["loadavg"],
                              "loadavg_after": env_after["loadavg"]},
              "rows": rows}
    write_result(result, args.out, args.name, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
