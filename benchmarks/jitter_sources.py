"""Where does the 100 Hz control timer's jitter come from? One factor at a time, side by side.

Each configuration runs in a fresh child process for --seconds and records the monotonic time of
every timer callback (the same measurement as uam_ros.ros.tick_stats: |period - 10 ms|). The
configurations vary one thing each:

  timer      sleep:  a plain Python loop sleeping to absolute deadlines (no rclpy)  -> OS scheduling
             single: rclpy SingleThreadedExecutor, spin_once(0.05) in a loop, as uam_ros.ros.node_main
             multi:  rclpy MultiThreadedExecutor, the timer in its own callback group
             events: rclpy.experimental.EventsExecutor (C++ event queue)
  load       none | infer: TorchPolicy.infer back to back in a thread of the same process (what
             InferenceWorker does; shares the GIL) | infer_ort: the same with OrtPolicy (session.run
             releases the GIL for the whole graph) | infer_process: TorchPolicy in a child process (no GIL)
  switch     sys.setswitchinterval (CPython default 5 ms: how long a thread that wants the GIL
             waits before the holder is asked to drop it)
  fifo       the timer thread at SCHED_FIFO priority (the inference thread stays SCHED_OTHER)

Rounds are interleaved (every configuration once per round, order rotated), so the machine's other
load hits all alike. Inference: TorchPolicy, seeded untrained default checkpoint, --threads intra-op
threads (default cores - 1, like the node). Writes results/<name>.json and <name>.png.

    python benchmarks/jitter_sources.py [--seconds 8] [--rounds 2] [--configs sleep single+infer ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (RESULTS, bench_parser, machine_info, machine_summary, make_checkpoint,  # noqa: E402
                          period_errors_s, save_figure, stats_ms, timestamp, write_result)

PERIOD_S = 0.01
# name -> (timer, load, switch interval s or 0 = default, fifo priority or 0)
CONFIGS: dict[str, tuple[str, str, float, int]] = {
    "sleep": ("sleep", "none", 0.0, 0),
    "sleep+infer": ("sleep", "thread", 0.0, 0),
    "single": ("single", "none", 0.0, 0),
    "single+infer": ("single", "thread", 0.0, 0),
    "single+infer+switch0.5ms": ("single", "thread", 0.0005, 0),
    "single+infer+fifo": ("single", "thread", 0.0, 10),
    "single+infer+fifo+switch0.5ms": ("single", "thread", 0.0005, 10),
    "single+infer_process": ("single", "process", 0.0, 0),
    "single+fifo": ("single", "none", 0.0, 10),
    "single+infer_process+fifo": ("single", "process", 0.0, 10),
    "events+infer_process+fifo": ("events", "process", 0.0, 10),
    "multi+infer": ("multi", "thread", 0.0, 0),
    "events+infer": ("events", "thread", 0.0, 0),
    "single+infer_ort": ("single", "thread_ort", 0.0, 0),
    "single+infer_ort+fifo": ("single", "thread_ort", 0.0, 10),
    "single+infer_ort+fifo+switch1ms": ("single", "thread_ort", 0.001, 10),
    "single+infer_ort+fifo+switch0.2ms": ("single", "thread_ort", 0.0002, 10),
    "single+infer+fifo+switch0.2ms": ("single", "thread", 0.0002, 10),
}


# ---- child ---------------------------------------------------------------------------------------
def make_policy(backend: str, checkpoint: str, threads: int):
    from uam_ros.control.robot_config import load_robot_config

    names = load_robot_config("franka_panda").action_joint_names
    if backend == "ort":
        from uam_ros.runtime.ort_backend import OrtPolicy

        return OrtPolicy(checkpoint, names, providers="cpu", cache_dir=Path(checkpoint).parent / "cache", threads=threads)
    from uam_ros.runtime.torch_backend import TorchPolicy

    return TorchPolicy(checkpoint, names, threads=threads)


def _infer_forever(checkpoint: str, threads: int, stop, counter=None, backend: str = "torch") -> None:
    from uam_ros.control.robot_config import load_robot_config
    from uam_ros.runtime.policy import Observation

    robot = load_robot_config("franka_panda")
    policy = make_policy(backend, checkpoint, threads)
    policy.warmup()
    image = np.random.default_rng(0).integers(0, 256, (robot.camera.height, robot.camera.width, 3), np.uint8)
    obs = Observation(image=image, state=np.asarray(robot.action_home), instruction="reach the red cube", stamp_ns=0)
    if counter is not None:
        counter.value = -1  # ready
    done = 0
    while not stop.is_set():
        policy.infer(obs)
        done += 1
        if counter is not None:
            counter.value = done


def _child_process_target(checkpoint: str, threads: int, stop, counter, backend: str) -> None:
    _infer_forever(checkpoint, threads, stop, counter, backend)


def child(args) -> int:
    timer, load, switch, fifo = CONFIGS[args.child]
    if switch:
        sys.setswitchinterval(switch)
    stop = threading.Event()
    worker = None
    backend = "ort" if load.endswith("_ort") else "torch"
    if load.startswith("thread"):
        import multiprocessing as mp

        ready = mp.Value("i", 0, lock=False)
        worker = threading.Thread(target=_infer_forever, args=(args.checkpoint, args.threads, stop, ready, backend),
                                  daemon=True)
        worker.start()
        while ready.value == 0:
            time.sleep(0.05)
        counter = ready
    elif load.startswith("process"):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        counter = ctx.Value("i", 0, lock=False)
        stop = ctx.Event()
        worker = ctx.Process(target=_child_process_target, args=(args.checkpoint, args.threads, stop, counter, backend),
                             daemon=True)
        worker.start()
        while counter.value == 0:
            time.sleep(0.05)
    else:
        counter = None
    if fifo:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))  # this thread only (Linux)

    n = int(args.seconds / PERIOD_S) + 10
    times = np.zeros(n, dtype=np.float64)
    count = [0]

    def on_timer() -> None:
        if count[0] < n:
            times[count[0]] = time.monotonic()
            count[0] += 1

    if timer == "sleep":
        start = time.monotonic()
        next_t = start
        while time.monotonic() - start < args.seconds:
            on_timer()
            next_t += PERIOD_S
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    else:
        import rclpy
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

        rclpy.init()
        node = rclpy.create_node("jitter_source_probe")
        if timer == "single":
            from rclpy.executors import SingleThreadedExecutor

            executor = SingleThreadedExecutor()
            group = None
        elif timer == "multi":
            from rclpy.executors import MultiThreadedExecutor

            executor = MultiThreadedExecutor(num_threads=2)
            group = MutuallyExclusiveCallbackGroup()
        else:
            from rclpy.experimental import EventsExecutor

            executor = EventsExecutor()
            group = None
        node.create_timer(PERIOD_S, on_timer, callback_group=group)
        executor.add_node(node)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    stop.set()
    inferences = counter.value if counter is not None else 0
    if worker is not None:
        worker.join(10)  # a daemon thread still inside torch at interpreter exit aborts the process
    errors = period_errors_s(times[: count[0]], PERIOD_S)
    Path(args.out).write_text(json.dumps({"config": args.child, "ticks": int(count[0]), "inferences": inferences,
                                          "errors_ms": [round(e * 1e3, 4) for e in errors]}))
    return 0


# ---- parent --------------------------------------------------------------------------------------
def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["configs"])
    fig, ax = plt.subplots(figsize=(12, 5.2))
    data = [np.asarray(result["errors_ms"][n]) for n in names]
    ax.boxplot(data, whis=(1, 99), showfliers=False)
    top = max(result["configs"][n]["p99_ms"] for n in names)
    for i, n in enumerate(names, start=1):
        s = result["configs"][n]
        ax.plot([i], [s["p99_ms"]], "rv", markersize=5)
        ax.annotate(f"p99 {s['p99_ms']:.2f}\nmax {s['max_ms']:.1f}", (i, s["p99_ms"]), textcoords="offset points",
                    xytext=(0, 5), ha="center", fontsize=6.5)
    ax.axhline(1.0, color="g", ls="--", lw=1, label="target p99 1 ms")
    ax.set_xticks(range(1, len(names) + 1), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("|period - 10 ms| [ms]\nbox p25-p75, whiskers p1-p99, red p99")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(0.0, top * 4.0)
    env = result["environment"]
    ax.set_title(f"100 Hz timer jitter by source: {machine_summary(env, nice=True)}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path, None)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per configuration per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=0, help="inference intra-op threads (default cores - 1)")
    parser.add_argument("--name", default="jitter_sources")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", dest="child_out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--replot", action="store_true", help="only redraw <name>.png from <name>.json")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads((args.out / f"{args.name}.json").read_text()), args.out / f"{args.name}.png")
        return 0
    args.threads = args.threads or max(1, (os.cpu_count() or 2) - 1)
    if args.child:
        args.out = args.child_out
        return child(args)

    workdir = Path(tempfile.mkdtemp(prefix="uam-jitter-sources-"))
    checkpoint = make_checkpoint("franka_panda", workdir / "ckpt")
    if any(CONFIGS[n][1].endswith("_ort") for n in args.configs):
        print("exporting the checkpoint to ONNX once (children load it from the cache) ...", flush=True)
        make_policy("ort", str(checkpoint), args.threads)
    env_before = machine_info()
    errors: dict[str, list[float]] = {n: [] for n in args.configs}
    inference_rate: dict[str, list[float]] = {n: [] for n in args.configs}
    for r in range(args.rounds):
        order = args.configs[r % len(args.configs):] + args.configs[: r % len(args.configs)]
        for name in order:
            out = workdir / f"{name}-{r}.json"
            cmd = [sys.executable, __file__, "--child", name, "--checkpoint", str(checkpoint), "--child-out", str(out),
                   "--seconds", str(args.seconds), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            child_result = json.loads(out.read_text())
            errors[name].extend(child_result["errors_ms"])
            inference_rate[name].append(child_result["inferences"] / args.seconds)
            e = np.asarray(child_result["errors_ms"])
            print(f"round {r + 1}/{args.rounds} {name:<30} p50 {np.percentile(e, 50):6.3f}  p99 "
                  f"{np.percentile(e, 99):7.3f}  max {e.max():7.2f} ms  ({child_result['inferences']} inferences)",
                  flush=True)
    env_after = machine_info()
    table = {}
    for name in args.configs:
        s = stats_ms(np.asarray(errors[name]) * 1e-3)
        timer, load, switch, fifo = CONFIGS[name]
        table[name] = {**s, "timer": timer, "load": load, "switch_interval_s": switch or sys.getswitchinterval(),
                       "sched_fifo_priority": fifo, "inferences_per_s": float(np.mean(inference_rate[name]))}
    result = {
        "created": timestamp(),
        "method": {"period_ms": PERIOD_S * 1e3, "seconds_per_config_per_round": args.seconds, "rounds": args.rounds,
                   "order": "interleaved, rotated each round; one fresh child process per configuration and round",
                   "inference": f"TorchPolicy (eager) or OrtPolicy (CPU, *_ort), untrained default UAMConfig, {args.threads} intra-op thread(s)",
                   "measured": "|consecutive timer callback period - 10 ms|"},
        "environment": {**env_before, "loadavg_before": env_before["loadavg"], "loadavg_after": env_after["loadavg"]},
        "configs": table,
        "errors_ms": errors,
    }
    write_result(result, args.out, args.name, plot)
    print(f"\n{'config':<32}{'p50':>8}{'p99':>8}{'max':>8}{'inf/s':>7}  [ms]")
    for name, row in table.items():
        print(f"{name:<32}{row['p50_ms']:>8.3f}{row['p99_ms']:>8.3f}{row['max_ms']:>8.2f}{row['inferences_per_s']:>7.1f}")
    print(f"load average {env_before['loadavg'][0]:.2f} -> {env_after['loadavg'][0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
