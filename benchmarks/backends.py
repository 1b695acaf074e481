"""Latency and throughput of every available inference backend on one checkpoint, side by side.

    .venv/bin/python benchmarks/backends.py [--model DIR] [--robot franka_panda] [--rounds 10] [--iters 30]

Backends measured (those this machine can run): torch eager, torch compile (inductor), ONNX Runtime
CPU, and with a GPU ONNX Runtime CUDA (onnxruntime-gpu), torch cuda_graphs and TensorRT FP16. torch
eager and compile run on the device "auto" picks (the GPU when there is one), cuda_graphs on the GPU;
torch-eager-cpu, measured only beside a GPU, is torch eager on the CPU for the side-by-side ratio.
What is timed is Policy.infer() end to end -- preprocessing (resize, tokenise, normalise), noise,
the network, postprocessing -- on a camera-sized image, batch 1, one call at a time, exactly what
the inference worker does.

Rounds are interleaved: each round runs `iters` calls of every backend, in a rotated order, so slow
drifts of a shared machine (other jobs, thermal) hit all backends alike. Reported per backend:
p50 / p90 / p99 / mean latency [ms], throughput [inferences/s] = 1 / mean, and ratios to torch
eager (speed-up of p50, throughput ratio), plus the one-off setup (export / compile / engine build)
and warm-up times. Results: benchmarks/results/<name>.json and <name>.png.

Model: --model, else models/default/<robot> when present, else a seeded untrained checkpoint of the
default UAMConfig for the robot (init_checkpoint into a temporary directory): latency does not
depend on training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import cpu_model, save_figure  # noqa: E402
from uam_ros.runtime.policy import Observation  # noqa: E402
from uam_ros.runtime.torch_backend import default_thread_count  # noqa: E402

ALL = ("torch-eager", "torch-eager-cpu", "torch-compile", "torch-cuda-graphs", "ort-cpu", "ort-cuda", "tensorrt-fp16")


def robot_layout(robot_name: str):
    from uam_ros.control.robot_config import load_robot_config

    robot = load_robot_config(robot_name)
    names, home = robot.action_joint_names, robot.action_home
    return robot, names, home


def resolve_model(args, names, home, workdir: Path) -> tuple[Path, str]:
    if args.model:
        return Path(args.model), "given"
    default = ROOT / "models" / "default" / args.robot
    if (default / "config.json").is_file():
        return default, "models/default"
    from uam_ros.model.checkpoint import init_checkpoint

    path = init_checkpoint(
        workdir / "checkpoint", state_dim=len(home), action_dim=len(home), joint_names=names, robot_name=args.robot,
        instructions=["reach the red cube"], seed=0, state_mean=home, state_std=[0.5] * len(home),
        action_mean=home, action_std=[0.02] * len(home),
    )
    return path, "seeded untrained init_checkpoint (default UAMConfig)"


def available(requested: list[str]) -> tuple[list[str], dict[str, str]]:
    import torch

    skipped = {}
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    from uam_ros.runtime.tensorrt_backend import tensorrt_status

    trt_ok, trt_why = tensorrt_status()
    cuda = torch.cuda.is_available()
    keep = []
    for name in requested:
        why = ""
        if name == "torch-cuda-graphs" and not cuda:
            why = "no CUDA GPU"
        elif name == "torch-eager-cpu" and not cuda:
            why = "no CUDA GPU: torch-eager already runs on the CPU"
        elif name == "ort-cpu" and not providers:
            why = "onnxruntime not installed"
        elif name == "ort-cuda" and "CUDAExecutionProvider" not in providers:
            why = "onnxruntime has no CUDAExecutionProvider (needs onnxruntime-gpu and a GPU)"
        elif name == "tensorrt-fp16" and not trt_ok:
            why = trt_why
        if why:
            skipped[name] = why
        else:
            keep.append(name)
    return keep, skipped


def build(name: str, model: Path, names: list[str], threads: int, cache: Path, say):
    from uam_ros.runtime.ort_backend import OrtPolicy
    from uam_ros.runtime.tensorrt_backend import TensorRTPolicy
    from uam_ros.runtime.torch_backend import TorchPolicy

    common = dict(threads=threads, seed=0)
    if name == "torch-eager":
        return TorchPolicy(model, names, mode="eager", **common)
    if name == "torch-eager-cpu":
        return TorchPolicy(model, names, device="cpu", **common)
    if name == "torch-compile":
        return TorchPolicy(model, names, mode="compile", **common)
    if name == "torch-cuda-graphs":
        return TorchPolicy(model, names, device="cuda", mode="cuda_graphs", **common)
    if name == "ort-cpu":
        return OrtPolicy(model, names, providers="cpu", cache_dir=cache, progress=say, **common)
    if name == "ort-cuda":
        return OrtPolicy(model, names, providers="cuda", cache_dir=cache, progress=say, **common)
    if name == "tensorrt-fp16":
        return TensorRTPolicy(model, names, precision="fp16", cache_dir=cache, progress=say, **common)
    raise ValueError(name)


def stats(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {
        "n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
        "max_ms": float(ms.max()), "throughput_hz": float(1e3 / ms.mean()),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["backends"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    data = [np.asarray(results["samples_ms"][n]) for n in names]
    left.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    left.set_xticks(range(1, len(names) + 1), names, rotation=15)
    for i, name in enumerate(names, start=1):
        s = results["backends"][name]
        left.annotate(f"p50 {s['p50_ms']:.1f}\np99 {s['p99_ms']:.1f}", (i + 0.3, s["p50_ms"]), ha="left",
                      va="center", fontsize=8)
    left.set_ylabel("Policy.infer latency [ms] (whiskers p1-p99)")
    left.set_ylim(bottom=0)
    left.set_xlim(0.5, len(names) + 0.9)
    left.grid(axis="y", alpha=0.3)
    throughput = [results["backends"][n]["throughput_hz"] for n in names]
    bars = right.bar(names, throughput, color="tab:blue")
    for bar, name in zip(bars, names):
        ratio = results["backends"][name].get("throughput_vs_torch_eager")
        label = f"{bar.get_height():.0f}/s" + (f"\n{ratio:.2f}x" if ratio else "")
        right.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), textcoords="offset points",
                       xytext=(0, 3), ha="center", fontsize=8)
    right.set_ylabel("throughput [inferences/s], batch 1")
    right.set_ylim(0, max(throughput) * 1.18)
    right.tick_params(axis="x", rotation=15)
    right.grid(axis="y", alpha=0.3)
    env = results["environment"]
    save_figure(fig, path, f"UAM backends, {results['model']['description']}: {env['cpu_count']} CPU cores "
                f"({env['cpu_model']}), {env['threads']} inference thread(s), {env['gpu'] or 'no GPU'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="checkpoint directory (default: see module docstring)")
    parser.add_argument("--robot", default="franka_panda")
    parser.add_argument("--backends", nargs="*", default=list(ALL), choices=ALL)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iters", type=int, default=30, help="calls per backend per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per backend before round 1")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: cores - 1)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX / engine cache (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="backends", help="result file stem")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. the machine)")
    args = parser.parse_args(argv)

    import torch

    def say(message: str) -> None:
        print(f"  {message}", flush=True)

    threads = args.threads or default_thread_count()
    robot, names, home = robot_layout(args.robot)
    workdir = Path(tempfile.mkdtemp(prefix="uam-bench-"))
    cache = args.cache_dir or workdir / "cache"
    model, model_source = resolve_model(args, names, home, workdir)
    from uam_ros.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(model)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    description = f"{loaded.kind} {parameters / 1e6:.2f} M params, H={loaded.config.chunk_size}, " \
                  f"{loaded.config.num_steps} flow steps"
    print(f"model: {model} ({model_source}; {description})")
    selected, skipped = available(args.backends)
    for name, why in skipped.items():
        print(f"skip {name}: {why}")

    policies, setup = {}, {}
    for name in selected:
        print(f"setup {name} ...", flush=True)
        start = time.perf_counter()
        try:
            policy = build(name, model, names, threads, cache, say)
        except Exception as error:  # one backend failing must not stop the comparison
            skipped[name] = f"{type(error).__name__}: {error}"
            print(f"skip {name}: {skipped[name]}")
            continue
        built = time.perf_counter() - start
        warm = policy.warmup(iterations=args.warmup)
        policies[name] = policy
        setup[name] = {"setup_s": round(built, 3), "warmup_s": round(warm, 3)}
        print(f"  ready in {built:.1f} s, warm-up {warm:.1f} s", flush=True)
    if "torch-eager" not in policies:
        print("torch-eager is the baseline and must be measured", file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (robot.camera.height, robot.camera.width, 3), dtype=np.uint8)
    obs = Observation(image=image, state=np.asarray(home, dtype=np.float64), instruction="reach the red cube",
                      stamp_ns=0)
    samples: dict[str, list[float]] = {name: [] for name in policies}
    order = list(policies)
    load_before = os.getloadavg()
    bench_start = time.perf_counter()
    for round_index in range(args.rounds):
        rotated = order[round_index % len(order):] + order[: round_index % len(order)]
        for name in rotated:
            policy = policies[name]
            for _ in range(args.iters):
                start = time.perf_counter()
                policy.infer(obs)
                samples[name].append(time.perf_counter() - start)
        line = "  ".join(f"{n} {np.median(samples[n][-args.iters:]) * 1e3:.1f}" for n in order)
        print(f"round {round_index + 1}/{args.rounds} p50 ms: {line}", flush=True)
    bench_s = time.perf_counter() - bench_start
    load_after = os.getloadavg()

    table = {name: {**stats(samples[name]), **setup[name]} for name in policies}
    base = table["torch-eager"]
    for name, row in table.items():
        row["speedup_p50_vs_torch_eager"] = base["p50_ms"] / row["p50_ms"]
        row["throughput_vs_torch_eager"] = row["throughput_hz"] / base["throughput_hz"]
    import onnxruntime

    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": args.note,
        "model": {"path": str(model), "source": model_source, "kind": loaded.kind, "parameters": parameters,
                  "config": loaded.config.to_dict(), "weights_sha256": loaded.weights_sha256,
                  "description": description},
        "method": {"timed": "Policy.infer end to end (pre/post-processing included), batch 1",
                   "rounds": args.rounds, "iters_per_round": args.iters, "warmup_calls": args.warmup,
                   "order": "interleaved rounds, order rotated each round", "image": list(image.shape),
                   "benchmark_s": round(bench_s, 2)},
        "environment": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "threads": threads,
                        "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in load_after],
                        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
                        "python": platform.python_version(), "torch": torch.__version__,
                        "onnxruntime": onnxruntime.__version__, "platform": platform.platform()},
        "backends": table,
        "skipped": skipped,
        "samples_ms": {name: [round(s * 1e3, 4) for s in values] for name, values in samples.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out / f"{args.name}.json", args.out / f"{args.name}.png"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, png_path)

    print(f"\n{'backend':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'inf/s':>8}"
          f"{'x p50':>7}{'x thr':>7}{'setup s':>9}")
    for name, row in table.items():
        print(f"{name:<18}{row['p50_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['mean_ms']:>9.2f}"
              f"{row['throughput_hz']:>8.1f}{row['speedup_p50_vs_torch_eager']:>7.2f}"
              f"{row['throughput_vs_torch_eager']:>7.2f}{row['setup_s'] + row['warmup_s']:>9.1f}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores")
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
