"""``python -m uam_ros.metaworld_suite collect|eval``: Meta-World MT10 demonstrations and evaluation.

    python -m uam_ros.metaworld_suite collect --tasks reach push --episodes 50 --out data/mt10
    python -m uam_ros.metaworld_suite eval --model expert --episodes 10 --out runs/mt10_expert.json
    python -m uam_ros.metaworld_suite eval --model runs/action/checkpoint --episodes 10

Tasks are MT10's, named either way: reach-v3 or reach, pick-place-v3 or pick_place (default: all ten).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from uam_ros.metaworld_suite.compat import MetaWorldUnavailable


def _size(text: str) -> tuple[int, int]:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m uam_ros.metaworld_suite", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, episodes: int) -> None:
        p.add_argument("--tasks", nargs="*", default=None, metavar="TASK", help="MT10 tasks (default: all ten)")
        p.add_argument("--episodes", type=int, default=episodes, help="episodes per task (seeds S..S+N-1)")
        p.add_argument("--robot", default="sawyer", help="robot config name or YAML (default: sawyer)")
        p.add_argument("--camera", default=None, help="Meta-World camera (default: corner, or the checkpoint's)")
        p.add_argument("--image-size", type=_size, default=None, metavar="PX",
                       help="square frame size (default: the robot config's camera size, or the checkpoint's)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    collect = sub.add_parser("collect", help="record scripted demonstrations as a uam dataset")
    common(collect, 10)
    collect.add_argument("--out", type=Path, required=True, help="dataset directory (created, or resumed)")
    collect.add_argument("--seed", type=int, default=0, help="seed of each task's first episode")
    collect.add_argument("--workers", type=int, default=1, help="parallel processes (spawned)")

    evaluate = sub.add_parser("eval", help="closed-loop success of a policy (Meta-World's info['success'])")
    common(evaluate, 10)
    evaluate.add_argument("--model", default="expert",
                          help="checkpoint directory, python://module:Factory?..., or 'expert' (replay the "
                          "scripted demonstrations' joint targets; also reports the scripted success)")
    evaluate.add_argument("--backend", default="torch", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                          help="inference backend for a checkpoint (default torch, as uam eval runs it)")
    evaluate.add_argument("--seed", type=int, default=None, help="seed of each task's first episode (default 100000)")
    evaluate.add_argument("--n-action-steps", type=int, default=None,
                          help="targets executed per chunk (default: the robot config's)")
    evaluate.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.episodes < 0 or (args.command == "collect" and args.workers < 1):
        print("error: --episodes must be >= 0 and --workers >= 1", file=sys.stderr)
        return 2
    try:
        if args.command == "collect":
            from uam_ros.metaworld_suite.collect import collect
            from uam_ros.metaworld_suite.scene import DEFAULT_CAMERA

            summary = collect(args.tasks, args.episodes, args.out, seed=args.seed, robot=args.robot,
                              camera=args.camera or DEFAULT_CAMERA, image_size=args.image_size,
                              workers=args.workers, progress=not args.quiet)
            print(json.dumps(summary, indent=2))
            empty = [t for t, c in summary["tasks"].items() if args.episodes and not c["in_dataset"]]
            return 1 if empty else 0
        from uam_ros.metaworld_suite.evaluate import EVAL_SEED, evaluate, format_table

        report = evaluate(args.model, args.tasks, args.episodes, seed=EVAL_SEED if args.seed is None else args.seed,
                          robot=args.robot, backend=args.backend, camera=args.camera, image_size=args.image_size,
                          n_action_steps=args.n_action_steps, progress=not args.quiet)
        text = json.dumps(report, indent=2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        print(format_table(report), file=sys.stderr)
        print(text)
        return 0
    except (MetaWorldUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
