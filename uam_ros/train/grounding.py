"""Counterfactual grounding probe: does the policy go where the instruction says, whatever it names?

Closed-loop evaluation says *that* a reach failed, not whether the policy used its instruction
(docs/training_notes.md, experiment 7: none of the trained ones did). This probe measures that
directly and cheaply (one chunk per instruction, no episode): on each layout's first frame it asks
for the same scene once per object, the instruction naming each in turn (tasks.retarget: same
wording, same noise), and checks which object the first chunk
heads for -- the object whose direction from the tool is closest to the chunk's displacement (the
forward kinematics of its last target). Reported:

  accuracy     share of (layout, named object) pairs whose chunk heads for the named object
  target       the same for the layout's own target only (the instruction closed loop uses)
  distinct     share of layouts whose three chunks head for three different objects (the policy
               changes where it goes when the instruction changes)

100 layouts take ~1 minute on one CPU core, against ~10 for a 100-episode closed-loop evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uam_ros.train.evaluate import EVAL_SEED


def heading_object(start_xy: np.ndarray, end_xy: np.ndarray, objects_xy: dict[str, np.ndarray]) -> str:
    """The object whose direction from start is closest (cosine) to the displacement start -> end."""
    move = end_xy - start_xy
    norm = float(np.linalg.norm(move))
    if norm < 1e-9:
        return ""  # the chunk does not move the tool: it heads nowhere
    best, best_cos = "", -2.0
    for name, xy in objects_xy.items():
        to_object = xy - start_xy
        cos = float(move @ to_object) / (norm * max(float(np.linalg.norm(to_object)), 1e-9))
        if cos > best_cos:
            best, best_cos = name, cos
    return best


def summarize(layouts: list[dict[str, Any]]) -> dict[str, Any]:
    """accuracy / target / distinct (see the module docstring) over probed layouts."""
    pairs = [(named, heading) for layout in layouts for named, heading in layout["headings"].items()]
    target = [layout["headings"][layout["target"]] == layout["target"] for layout in layouts]
    distinct = [len(set(layout["headings"].values())) == len(layout["headings"])
                and "" not in layout["headings"].values() for layout in layouts]
    return {
        "layouts": len(layouts),
        "accuracy": float(np.mean([named == heading for named, heading in pairs])) if pairs else float("nan"),
        "target": float(np.mean(target)) if target else float("nan"),
        "distinct": float(np.mean(distinct)) if distinct else float("nan"),
    }


def grounding_probe(checkpoint: str | Path, episodes: int = 100, *, task: str = "reach", split: str = "train",
                    seed: int = EVAL_SEED, device: str = "cpu", threads: int | None = 1) -> dict[str, Any]:
    """Run the probe on layouts (task, split, seed + i), i < episodes; see the module docstring."""
    from uam_ros.kinematics import RobotKinematics
    from uam_ros.sim.tasks import retarget, sample_episode
    from uam_ros.sim.world import SimWorld
    from uam_ros.train.collect import show_episode
    from uam_ros.train.sim_policy import SimPolicy

    if threads:
        torch.set_num_threads(threads)
    policy = SimPolicy(checkpoint, device=device)
    kinematics = RobotKinematics(policy.robot, wrist_camera=policy.wrist_camera)
    dof = policy.robot.arm_dof
    layouts, skipped, world = [], 0, None
    start = time.monotonic()
    try:
        for i in range(episodes):
            spec = sample_episode(task, split, seed + i)
            try:
                variants = [retarget(spec, k) for k in range(len(spec.objects))]
            except ValueError:
                skipped += 1  # an object cannot be named unambiguously, or the task has no single target
                continue
            if world is None:
                world = SimWorld(policy.robot, spec, wrist_camera=policy.wrist_camera)
            show_episode(world, spec)
            _, q, _ = world.joint_state()
            tool = world.ee_position()
            # kinematics' world frame is the sim's: checked on the tool, not assumed
            offset = tool - kinematics.tcp_positions_world(q[:dof])[0]
            if float(np.linalg.norm(offset)) > 0.01:
                raise RuntimeError(f"kinematics and sim disagree on the tool position by {offset} m")
            objects_xy = {o.name: world.object_position(o.name)[:2] for o in spec.objects}
            headings = {}
            for variant in variants:
                generator = torch.Generator().manual_seed(seed + i)  # the same noise for every instruction
                chunk = policy.chunk(world, variant.instruction, generator)
                end = kinematics.tcp_positions_world(chunk[-1:, :dof])[0] + offset
                headings[variant.target] = heading_object(tool[:2], end[:2], objects_xy)
            layouts.append({"seed": seed + i, "target": spec.target, "headings": headings})
    finally:
        if world is not None:
            world.close()
    return {"checkpoint": str(checkpoint), "task": task, "split": split, "seed": seed, "skipped": skipped,
            **summarize(layouts), "wall_s": time.monotonic() - start, "layouts_detail": layouts}
