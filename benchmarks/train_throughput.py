"""Action-stage training throughput per device and precision, side by side in one run.

    .venv/bin/python benchmarks/train_throughput.py [--steps 60] [--batch 32] [--rounds 3]

What a `uam recipe` phase costs per step on this machine: the action stage of the default recipe's
model (the default UAMConfig with the recipe's pointer overrides, uam_ros.train.recipe.POINTER_MODEL)
(--model recipe; --model default: the plain default UAMConfig, whose training needs no robot
forward kinematics -- the pointer targets come from FK on the MuJoCo robot model, so `recipe` needs
the simulator installed) trained by uam_ros.train.trainer.train -- the real loop: batches from a
dataset on disk, autocast, clipping, AdamW -- on a synthetic dataset at the model's image size
(uam_ros.train.synthetic).

Configurations: cpu (fp32, the trainer's default threads), and with a GPU cuda fp32, cuda bf16
autocast, cuda fp16 autocast + gradient scaler. Rounds are interleaved (every configuration once per
round, rotated order) so drifts of a shared machine hit all alike. Reported per configuration: the
trainer's own samples/s (time inside training steps, warm-up steps excluded) per round, the median,
and its ratio to cpu. Results: benchmarks/results/<name>.json and <name>.png.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import RESULTS, bench_parser, machine_info, save_figure, timestamp, write_result  # noqa: E402

CONFIGS = ("cpu", "cuda-fp32", "cuda-bf16", "cuda-fp16")


def device_fields(name: str) -> dict:
    if name == "cpu":
        return {"device": "cpu"}
    precision = name.split("-", 1)[1]
    if precision == "fp32":
        return {"device": "cuda", "amp": False}
    return {"device": "cuda", "amp": True, "amp_dtype": {"bf16": "bfloat16", "fp16": "float16"}[precision]}


def measure(name: str, data: Path, out_dir: Path, args) -> float:
    """samples/s of the trainer over args.steps steps, the first args.warmup steps not counted."""
    from uam_ros.schema import from_dict
    from uam_ros.train.config import TrainConfig
    from uam_ros.train.recipe import POINTER_MODEL
    from uam_ros.train.trainer import train

    raw = {"stage": "action", "out_dir": str(out_dir), "data": {"train": [str(data)], "val_fraction": 0.0},
           "batch_size": args.batch, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 0, "max_steps": args.steps,
           "seed": 0, "threads": args.threads, "log_every": 1, "resume": False,
           "model": dict(POINTER_MODEL) if args.model == "recipe" else {}, **device_fields(name)}
    result = train(from_dict(TrainConfig, raw, "train_throughput"), quiet=True)
    rows = result.history["train"][args.warmup:]
    return statistics.median(row["samples_per_s"] for row in rows)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["configs"])
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    medians = [result["configs"][n]["median_samples_per_s"] for n in names]
    ax.bar(names, medians, color="#4c72b0")
    for i, name in enumerate(names):
        rounds = result["configs"][name]["rounds_samples_per_s"]
        ax.plot([i] * len(rounds), rounds, "k.", ms=4)
        ax.annotate(f"{medians[i]:.0f}/s\nx{result['configs'][name]['ratio_to_cpu']:.1f}", (i, max(rounds)),
                    xytext=(0, 6), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("training samples / s (action stage)")
    ax.set_ylim(0, max(max(r["rounds_samples_per_s"]) for r in result["configs"].values()) * 1.25)
    env = result["environment"]
    title = (f"action-stage training ({result['config']['model']} model), batch {result['config']['batch']}: "
             f"{env['cpu_count']} cores ({env['cpu_model']})" + (f", {env['gpu']}" if env.get("gpu") else ""))
    save_figure(fig, path, title)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=60, help="training steps per configuration per round")
    parser.add_argument("--warmup", type=int, default=10, help="first steps of each run not counted")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--model", default="recipe", choices=("recipe", "default"),
                        help="recipe: the default recipe's pointer model (needs MuJoCo); default: plain UAMConfig")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the trainer's default)")
    parser.add_argument("--episodes", type=int, default=40, help="synthetic episodes (length 40)")
    parser.add_argument("--name", default="train_throughput")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.warmup >= args.steps:
        parser.error("--warmup must be below --steps")

    import torch

    from uam_ros.model.config import UAMConfig
    from uam_ros.train.synthetic import make_synthetic_dataset

    skipped = {n: "no CUDA GPU" for n in args.configs if n.startswith("cuda") and not torch.cuda.is_available()}
    configs = [n for n in args.configs if n not in skipped]
    work = Path(tempfile.mkdtemp(prefix="uam-train-throughput-"))
    data = make_synthetic_dataset(work / "data", episodes=args.episodes, length=40,
                                  image_size=UAMConfig().image_size)
    before = machine_info()
    env = {**before, "loadavg_before": before["loadavg"]}
    samples: dict[str, list[float]] = {n: [] for n in configs}
    started = time.monotonic()
    for round_index in range(args.rounds):
        order = configs[round_index % len(configs):] + configs[: round_index % len(configs)]
        for name in order:
            value = measure(name, data, work / f"{name}-{round_index}", args)
            samples[name].append(value)
            print(f"round {round_index + 1}/{args.rounds} {name}: {value:.1f} samples/s", flush=True)
    env["loadavg_after"] = machine_info()["loadavg"]
    cpu = statistics.median(samples["cpu"]) if samples.get("cpu") else None
    result = {
        "benchmark": "train_throughput", "time": timestamp(), "environment": env,
        "config": {"model": args.model, "steps": args.steps, "warmup": args.warmup, "batch": args.batch,
                   "rounds": args.rounds, "episodes": args.episodes, "threads": args.threads,
                   "wall_s": time.monotonic() - started},
        "skipped": skipped,
        "configs": {n: {"rounds_samples_per_s": v, "median_samples_per_s": statistics.median(v),
                        "ratio_to_cpu": statistics.median(v) / cpu if cpu else float("nan")}
                    for n, v in samples.items()},
    }
    write_result(result, args.out, args.name, plot)
    for name, row in result["configs"].items():
        print(f"{name:10s} {row['median_samples_per_s']:8.1f} samples/s  x{row['ratio_to_cpu']:.2f} vs cpu")
    for name, why in skipped.items():
        print(f"{name:10s} skipped: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
