"""Measure the scripted experts' success rates: ``python -m uam_ros.sim.evaluate_experts``.

Prints one Markdown row per (robot, task, split): successes / episodes, the failing seeds, the mean
number of 10 Hz steps and the wall time. By default it runs every split in uam_ros.sim.tasks.SPLITS:
train, heldout and the four evaluation sub-splits heldout_combo, heldout_shape, heldout_paraphrase
and heldout_position -- 2 robots x 6 tasks x 6 splits x --seeds (default 10) = 720 episodes. Not a
test: a full run takes a while; ``--splits train,heldout`` runs the two main splits only.
"""

from __future__ import annotations

import argparse
import sys
import time

from uam_ros.sim.expert import run_expert_episode
from uam_ros.sim.tasks import SPLITS, TASK_NAMES, sample_episode
from uam_ros.sim.world import SimWorld


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", default="franka_panda,ur5e", help="comma-separated robot names")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES), help="comma-separated task names")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated splits")
    parser.add_argument("--seeds", type=int, default=10, help="episodes per (robot, task, split)")
    parser.add_argument("--seed-start", type=int, default=1000, help="first seed")
    parser.add_argument("--min-rate", type=float, default=0.9, help="exit 1 if any row is below this rate")
    args = parser.parse_args(argv)

    seeds = range(args.seed_start, args.seed_start + args.seeds)
    print("| robot | task | split | success | rate | failed seeds | mean steps | time [s] |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 1.0
    for robot in args.robots.split(","):
        world = None
        for task in args.tasks.split(","):
            for split in args.splits.split(","):
                start = time.perf_counter()
                wins, steps, failed = 0, 0, []
                for seed in seeds:
                    if world is None:
                        world = SimWorld(robot, sample_episode(task, split, seed))
                    result = run_expert_episode(robot, task, split, seed, world=world)
                    wins += result.success
                    steps += result.steps
                    if not result.success:
                        failed.append(seed)
                rate = wins / len(seeds)
                worst = min(worst, rate)
                print(
                    f"| {robot} | {task} | {split} | {wins}/{len(seeds)} | {rate:.0%} | {failed or '-'} "
                    f"| {steps / len(seeds):.0f} | {time.perf_counter() - start:.1f} |",
                    flush=True,
                )
    return 0 if worst >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())
