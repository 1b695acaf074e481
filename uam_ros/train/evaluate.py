"""Evaluation: closed-loop task success in the sim, and VQA accuracy (what action training must not erase).

    uam eval --checkpoint runs/action/checkpoint --tasks reach pick --split heldout --episodes 20
    uam eval --checkpoint runs/action/checkpoint --vl data/vl_eval        # VQA retention

It prints a table (success per task with 95 % Wilson intervals, the mean over tasks, wrong-object and
near-miss failures, VQA per question kind; uam_ros.train.eval_report); --json keeps every episode,
--plot draws the table.

closed_loop_success runs the policy in-process, the way the ROS loop does but without ROS: observe
(camera frame + joint state) -> infer a chunk -> execute its first n_action_steps targets at the
action rate (SimWorld.move_to interpolates between consecutive targets, as a trajectory controller
does) -> observe again, until the task's success predicate holds or its step limit is reached.
Evaluation seeds start at 100000 by default, far from collection seeds (0...), so even on the train
split the policy sees layouts it was not trained on.

Both return plain dicts (JSON-serialisable) so scripts and the lead's reports can use them directly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uam_ros.model.checkpoint import load_checkpoint, resolve_replan_steps
from uam_ros.model.processor import UAMProcessor
from uam_ros.train.datasets import VLData, to_float_image
from uam_ros.train.progress import Progress
from uam_ros.train.sim_policy import NOISE_MODES
from uam_ros.train.study_metrics import CAPTION_KIND, caption_f1

EVAL_SEED = 100_000
# uam_ros.sim.tasks.SPLITS, spelled out so that building the `uam` parser does not import MuJoCo
# (test_sim_tasks checks that the two agree).
SPLITS = ("train", "heldout", "heldout_combo", "heldout_shape", "heldout_paraphrase", "heldout_position")


# ------------------------------------------------------------------------------------- VQA


@torch.no_grad()
def answer_questions(model: nn.Module, processor: UAMProcessor, images: torch.Tensor, prompts: Sequence[str],
                     device: torch.device | str = "cpu", batch_size: int = 64) -> list[str]:
    """Greedy answers of the ventral VLM. images: (N, 3, S, S) float in [0, 1]. Prompts are batched by
    token length because generate() takes unpadded prompts."""
    tokenizer, max_len = processor.tokenizer, processor.max_text_len
    encoded = [tokenizer.encode(p, max_len, add_eos=False, pad=False) for p in prompts]
    answers: list[str] = [""] * len(prompts)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    was_training = model.training
    model.eval()
    for length, rows in sorted(by_length.items()):
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            tokens = torch.tensor([encoded[i] for i in chunk], dtype=torch.long, device=device)
            image = images[chunk].to(device)
            new = model.ventral.generate(image, tokens, max_new_tokens=max_len - length)
            for i, ids in zip(chunk, new.tolist()):
                answers[i] = tokenizer.decode(ids)
    model.train(was_training)
    return answers


def vqa_accuracy_for_model(model: nn.Module, processor: UAMProcessor, data: VLData, pair_ids: Sequence[int],
                           device: torch.device | str = "cpu") -> dict[str, Any]:
    """Exact-match accuracy (after the tokenizer's normalisation) overall and per question kind."""
    pairs = [data.pairs[i] for i in pair_ids]
    if not pairs:
        return {"accuracy": float("nan"), "pairs": 0, "per_kind": {}}
    images = torch.stack([to_float_image(data.images[p["image"]]) for p in pairs])
    answers = answer_questions(model, processor, images, [p["prompt"] for p in pairs], device)
    correct = [processor.tokenizer.normalize(p["answer"]) == a for p, a in zip(pairs, answers)]
    per_kind: dict[str, list[bool]] = {}
    for pair, ok in zip(pairs, correct):
        per_kind.setdefault(pair["kind"], []).append(ok)
    f1 = [caption_f1(processor.tokenizer.normalize(p["answer"]), a)
          for p, a in zip(pairs, answers) if p["kind"] == CAPTION_KIND]
    return {
        "accuracy": float(np.mean(correct)),
        "pairs": len(pairs),
        "per_kind": {k: {"accuracy": float(np.mean(v)), "pairs": len(v)} for k, v in sorted(per_kind.items())},
        # partial credit for captions (study_metrics.caption_f1): exact match of a whole list is near 0
        "caption_f1": {"mean": float(np.mean(f1)) if f1 else None, "pairs": len(f1)},
        "examples": [{"prompt": p["prompt"], "answer": p["answer"], "predicted": a}
                     for p, a in list(zip(pairs, answers))[:5]],
    }


def vqa_accuracy(checkpoint: str | Path, vl_pairs: str | Path | Sequence[str | Path], *, max_pairs: int | None = None,
                 device: str = "cpu") -> dict[str, Any]:
    """VQA/caption exact-match accuracy of a checkpoint's ventral VLM on the VL pairs of dataset dir(s)."""
    loaded = load_checkpoint(checkpoint, map_location=device)
    roots = [vl_pairs] if isinstance(vl_pairs, (str, Path)) else list(vl_pairs)
    data = VLData.load(roots, loaded.processor.image_size)
    ids = list(range(len(data.pairs)))[: max_pairs]
    result = vqa_accuracy_for_model(loaded.model, loaded.processor, data, ids, device)
    return {"checkpoint": str(checkpoint), "stage": loaded.meta.get("stage"), "kind": loaded.kind,
            "data": [str(r) for r in roots], **result}


# ------------------------------------------------------------------------------------- closed loop


def closed_loop_success(
    checkpoint: str | Path,
    robot: str | None = None,
    tasks: Sequence[str] = ("reach",),
    split: str = "heldout",
    episodes: int = 10,
    *,
    seed: int = EVAL_SEED,
    n_action_steps: int | None = None,
    camera: str | None = None,
    max_steps: int | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    progress: bool = True,
    noise: str = "fresh",
    latency_steps: int = 0,
    robot_limits: bool = False,
    noise_scale: float = 1.0,
) -> dict[str, Any]:
    """Success rate of the checkpoint's policy per task on episodes (task, split, seed + i).

    threads: torch CPU threads for inference. 1 by default: a batch-1 forward gains nothing from a
    second thread, and on a loaded 2-core machine the OpenMP spin-waits made it 100x slower (5 ms ->
    0.5-1.5 s measured here)."""
    from uam_ros.sim.tasks import sample_episode
    from uam_ros.sim.world import SimWorld
    from uam_ros.train.collect import show_episode
    from uam_ros.train.sim_policy import SimPolicy

    if threads:
        torch.set_num_threads(threads)
    policy = SimPolicy(checkpoint, robot, n_action_steps=n_action_steps, camera=camera, device=device, noise=noise,
                       latency_steps=latency_steps, robot_limits=robot_limits, noise_scale=noise_scale)

    results: dict[str, Any] = {}
    bar = Progress(len(tasks) * episodes, f"eval {split}", unit="ep", enabled=progress)
    world = None
    start = time.monotonic()
    try:
        for task in tasks:
            outcomes = []
            for i in range(episodes):
                spec = sample_episode(task, split, seed + i)
                if world is None:
                    world = SimWorld(policy.robot, spec, wrist_camera=policy.wrist_camera)
                show_episode(world, spec)
                generator = torch.Generator().manual_seed(seed + i)
                steps, success = policy.run(world, spec.instruction, generator, max_steps or spec.max_steps)
                tcp = world.ee_position()
                # Which object the tool ended nearest to: a failure next to a distractor is a
                # grounding error (wrong object), one next to the target a precision error.
                distances = {o.name: float(np.linalg.norm((tcp - world.object_position(o.name))[:2]))
                             for o in spec.objects}
                outcomes.append({"seed": seed + i, "success": success, "steps": steps,
                                 "instruction": spec.instruction,
                                 "final_tcp_to_target_xy_m": distances[spec.target],
                                 "final_tcp_nearest_object": min(distances, key=distances.get),
                                 "final_tcp_nearest_is_target": min(distances, key=distances.get) == spec.target})
                bar.update(1, task=task, ok=sum(o["success"] for o in outcomes))
            wins = sum(o["success"] for o in outcomes)
            results[task] = {"success_rate": wins / max(1, len(outcomes)), "successes": wins,
                             "episodes": len(outcomes), "episodes_detail": outcomes}
    finally:
        bar.close()
        if world is not None:
            world.close()
    total = sum(r["episodes"] for r in results.values())
    return {
        "checkpoint": str(checkpoint),
        "stage": policy.loaded.meta.get("stage"),
        "kind": policy.loaded.kind,
        "robot": policy.robot.name,
        "split": split,
        "n_action_steps": policy.n_action_steps,
        "noise": policy.noise,
        "noise_scale": policy.noise_scale,
        "latency_steps": policy.latency_steps,
        "robot_limits": policy.safety is not None,
        "limit_holds": policy.holds,
        "seed": seed,
        "success_rate": sum(r["successes"] for r in results.values()) / max(1, total),
        "tasks": results,
        "wall_s": time.monotonic() - start,
        "inference_ms_median": 1000 * float(np.median(policy.inference_s)) if policy.inference_s else None,
    }


def ros_closed_loop_success(
    checkpoint: str | Path,
    robot: str | None = None,
    tasks: Sequence[str] = ("reach",),
    split: str = "heldout",
    episodes: int = 10,
    *,
    seed: int = EVAL_SEED,
    backend: str = "auto",
    out_dir: Path | None = None,
    replan_steps: int = -1,
    real_time_factor: float = 1.0,
) -> dict[str, Any]:
    """closed_loop_success through the real nodes: uam_sim + uam_policy as processes over DDS.

    The in-process path above is the fast one for training loops; this one is what a robot sees
    (message conversion, observation sync, chunk scheduling, safety filter, the JTC topic, DDS
    latency), so a gap between the two is a bug or a latency problem, not a model problem. Runs in
    a private random ROS_DOMAIN_ID on localhost (uam_ros.demo), without overlay videos.
    """
    import random

    from uam_ros.demo import run_demo
    from uam_ros.ros_env import localhost_defaults

    localhost_defaults()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 199)))
    robot_name = robot or load_checkpoint(checkpoint).meta.get("robot_name") or "franka_panda"
    out = out_dir or Path("runs") / time.strftime("eval-ros-%Y%m%d-%H%M%S")
    replan_steps = resolve_replan_steps(replan_steps, checkpoint)  # once, for the nodes and the report
    start = time.monotonic()
    episodes_run = run_demo(robot_name, list(tasks), episodes, split, seed, str(checkpoint), out,
                            overlay=False, backend=backend, replan_steps=replan_steps,
                            real_time_factor=real_time_factor)
    results: dict[str, Any] = {}
    for task in tasks:
        mine = [e for e in episodes_run if e.task == task]
        wins = sum(e.success for e in mine)
        results[task] = {"success_rate": wins / max(1, len(mine)), "successes": wins, "episodes": len(mine),
                         "episodes_detail": [{"seed": e.seed, "success": e.success, "instruction": e.instruction,
                                              "time_to_success_s": e.time_to_success_s} for e in mine]}
    total = sum(r["episodes"] for r in results.values())
    return {
        "checkpoint": str(checkpoint), "path": "ros", "backend": backend,
        "replan_steps": replan_steps,
        "real_time_factor": real_time_factor,
        "robot": robot_name, "split": split,
        "seed": seed, "success_rate": sum(r["successes"] for r in results.values()) / max(1, total),
        "tasks": results, "wall_s": time.monotonic() - start, "outputs": str(out),
    }


# ------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--robot", help="robot name or YAML (default: the checkpoint's)")
    parser.add_argument("--tasks", nargs="*", default=[], help="tasks for closed-loop success (none: skip)")
    parser.add_argument("--split", choices=SPLITS, default="heldout",
                        help="episode split; heldout_{combo,shape,paraphrase,position} change one factor each")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="seed of the first evaluation episode")
    parser.add_argument("--n-action-steps", type=int, help="targets executed per chunk (default: robot config); "
                        "with --ros the node's replan_steps (default: the model's, from its checkpoint; 0: every camera image)")
    parser.add_argument("--noise", choices=NOISE_MODES, default="fresh",
                        help="flow-matching noise: a fresh draw per chunk, or one held for the whole episode")
    parser.add_argument("--noise-scale", type=float, default=1.0,
                        help="sampling temperature: the flow-matching noise times this, in [0, 1]")
    parser.add_argument("--latency-steps", type=int, default=0,
                        help="action periods from an observation to its chunk reaching the arm, which meanwhile "
                        "runs on the previous chunk (the node's camera age + inference + transport; 0: none)")
    parser.add_argument("--robot-limits", action="store_true",
                        help="pass each chunk through the node's safety filter (hold when its first target is "
                        "too far, clamp to the joint velocity / acceleration limits); off: the sim arm follows "
                        "any target")
    parser.add_argument("--grounding", action="store_true",
                        help="counterfactual grounding probe on --episodes reach layouts of --split: does the first "
                        "chunk head for whichever object the instruction names? (uam_ros.train.grounding; seconds, "
                        "no episodes)")
    parser.add_argument("--vl", nargs="*", default=[], help="dataset dirs with VL pairs for VQA accuracy")
    parser.add_argument("--max-pairs", type=int, help="at most this many VL pairs")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--ros", action="store_true",
                        help="run the episodes through the ROS nodes (uam_sim + uam_policy over DDS on localhost) "
                        "instead of in-process")
    parser.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto",
                        help="with --ros: the policy node's inference backend")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="with --ros: run the simulated world this much slower than real time (uam_sim owns "
                        "/clock; uam_policy uses it), so that inference and rendering take less of the world's time")
    parser.add_argument("--json", help="write the full results (every episode) here as JSON; '-': to stdout "
                        "instead of the table")
    parser.add_argument("--plot", type=Path, help="plot success per task (95 %% intervals), the grounding probe and "
                        "VQA per kind here (default: next to --json, as .png)")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    if args.tasks and args.ros:
        report["closed_loop"] = ros_closed_loop_success(
            args.checkpoint, args.robot, args.tasks, args.split, args.episodes, seed=args.seed, backend=args.backend,
            replan_steps=-1 if args.n_action_steps is None else args.n_action_steps, real_time_factor=args.real_time_factor)
    elif args.tasks:
        report["closed_loop"] = closed_loop_success(
            args.checkpoint, args.robot, args.tasks, args.split, args.episodes, seed=args.seed,
            n_action_steps=args.n_action_steps, device=args.device, progress=not args.quiet, noise=args.noise,
            latency_steps=args.latency_steps, robot_limits=args.robot_limits, noise_scale=args.noise_scale)
    if args.grounding:
        from uam_ros.train.grounding import grounding_probe

        report["grounding"] = grounding_probe(args.checkpoint, args.episodes, split=args.split, seed=args.seed,
                                              device=args.device)
    if args.vl:
        report["vqa"] = vqa_accuracy(args.checkpoint, args.vl, max_pairs=args.max_pairs, device=args.device)
    if not report:
        print("uam eval: nothing to do (give --tasks, --grounding and/or --vl)", file=sys.stderr)
        return 2
    from uam_ros.train.eval_report import format_table, plot_report

    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(format_table(report))
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
    plot = args.plot or (Path(args.json).with_suffix(".png") if args.json and args.json != "-" else None)
    if plot is not None:
        print(f"plot: {plot_report(report, plot)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uam eval", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
