"""Closed-loop evaluation of any Policy on MT10 with Meta-World's own success criterion.

The loop is uam_ros.train.evaluate's, with Meta-World as the world: observe (camera frame + joint
state + instruction) -> infer a chunk of joint targets -> execute its first n_action_steps targets
(scene.step_joint_target: FK -> hand target -> mocap delta, over ``stride`` env steps each) ->
observe again. An episode succeeds when ``info["success"]`` is true at any env step within
Meta-World's 500-step horizon (its evaluation's rule).

The model is anything uam_ros.runtime.factory builds (a checkpoint directory, ``python://...``), or
``expert``: per episode, MetaWorldExpertPolicy replays the scripted demonstration's joint targets --
then each task also reports the scripted policy's own success on the same episodes, and the two
numbers say what the joint-target conversion costs.

Evaluation seeds start at 100000 (tasks.py: another benchmark seed than collection's), so a trained
policy is scored on layouts it was not trained on.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uam_ros.control.robot_config import load_robot_config
from uam_ros.metaworld_suite.compat import versions
from uam_ros.metaworld_suite.expert import expert_model
from uam_ros.metaworld_suite.scene import DEFAULT_CAMERA, MetaWorldScene
from uam_ros.metaworld_suite.tasks import dataset_task, instruction, resolve_tasks
from uam_ros.runtime.policy import Observation
from uam_ros.train.progress import Progress

EVAL_SEED = 100_000
EXPERT = "expert"


def checkpoint_camera(model: str) -> tuple[str | None, tuple[int, int] | None]:
    """The camera name and frame size a checkpoint was trained on (its config.json meta), if any."""
    from uam_ros.model.checkpoint import CONFIG_FILE

    path = Path(model) / CONFIG_FILE
    if not path.is_file():
        return None, None
    meta = json.loads(path.read_text()).get("meta", {})
    size = meta.get("camera_size")
    return meta.get("camera"), (tuple(int(v) for v in size) if size else None)


def run_episode(scene: MetaWorldScene, policy: Any, seed: int, n_action_steps: int) -> dict[str, Any]:
    """One closed-loop episode; returns its record (success, env steps, inferences)."""
    scene.reset(seed)
    text = instruction(scene.task)
    inferences = 0
    inference_s = 0.0
    while not scene.done:
        stamp_ns = int(round(scene.steps * scene.env_dt * 1e9))
        observation = Observation(image=scene.render(), state=scene.state(), instruction=text, stamp_ns=stamp_ns)
        chunk = policy.infer(observation)
        inferences += 1
        inference_s += float(chunk.inference_s)
        if abs(chunk.dt_s - scene.action_dt) > 1e-6:
            raise ValueError(f"policy chunks are spaced {chunk.dt_s} s, the Sawyer's action rate needs "
                             f"{scene.action_dt} s (robot config chunk.action_rate_hz)")
        for target in np.asarray(chunk.positions)[:n_action_steps]:
            scene.step_joint_target(target)
            if scene.done:
                break
    return {"seed": seed, "success": scene.success, "env_steps": scene.steps, "inferences": inferences,
            "inference_s": inference_s}


def evaluate(model: str = EXPERT, tasks: Sequence[str] | None = None, episodes: int = 10, *,
             seed: int = EVAL_SEED, robot: str = "sawyer", backend: str = "torch", camera: str | None = None,
             image_size: tuple[int, int] | None = None, n_action_steps: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Success per task of ``model`` on episodes seed..seed+episodes-1 (see the module docstring)."""
    from uam_ros.runtime.factory import create_policy

    names = resolve_tasks(list(tasks) if tasks else None)
    robot_cfg = load_robot_config(robot)
    trained_camera, trained_size = checkpoint_camera(model) if model != EXPERT else (None, None)
    camera = camera or trained_camera or DEFAULT_CAMERA
    size = image_size or trained_size or (robot_cfg.camera.height, robot_cfg.camera.width)
    n_steps = n_action_steps or robot_cfg.chunk.n_action_steps
    joint_names = robot_cfg.action_joint_names

    def build(model_name: str) -> Any:
        choice = create_policy(backend, model_name, joint_names, threads=1, seed=0,
                               default_dt_s=1.0 / robot_cfg.chunk.action_rate_hz, robot=robot,
                               chunk_size=robot_cfg.chunk.chunk_size)
        return choice.policy, choice.reason

    shared, reason = (None, "per-episode scripted replay") if model == EXPERT else build(model)
    results: dict[str, Any] = {}
    bar = Progress(len(names) * episodes, "metaworld eval", unit="ep", enabled=progress)
    start = time.monotonic()
    try:
        for name in names:
            details = []
            with MetaWorldScene(name, robot_cfg, camera=camera, image_size=size) as scene:
                for i in range(episodes):
                    policy = shared if shared is not None else build(expert_model(name, seed + i))[0]
                    record = run_episode(scene, policy, seed + i, n_steps)
                    if shared is None:
                        record["scripted_success"] = bool(policy.scripted_success)
                        record["scripted_env_steps"] = int(policy.scripted_env_steps)
                    details.append(record)
                    bar.update(1, task=dataset_task(name), ok=sum(d["success"] for d in details))
            wins = sum(d["success"] for d in details)
            summary: dict[str, Any] = {
                "success_rate": wins / max(1, len(details)), "successes": wins, "episodes": len(details),
                "mean_env_steps": float(np.mean([d["env_steps"] for d in details])) if details else None,
            }
            if shared is None:
                scripted = sum(d["scripted_success"] for d in details)
                summary.update(scripted_successes=scripted, scripted_success_rate=scripted / max(1, len(details)))
            results[name] = {**summary, "episodes_detail": details}
    finally:
        bar.close()
    total = sum(r["episodes"] for r in results.values())
    report: dict[str, Any] = {
        "model": model, "policy": reason, "robot": robot_cfg.name, "camera": camera, "image_size": list(size),
        "seed": seed, "episodes_per_task": episodes, "n_action_steps": n_steps,
        "action_rate_hz": robot_cfg.chunk.action_rate_hz,
        "success_rate": sum(r["successes"] for r in results.values()) / max(1, total),
        "tasks": results, "wall_s": time.monotonic() - start,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()},
        "versions": versions(),
    }
    if shared is None:
        report["scripted_success_rate"] = sum(r["scripted_successes"] for r in results.values()) / max(1, total)
    return report


def format_table(report: dict[str, Any]) -> str:
    """Per-task lines for a terminal (the JSON report has everything)."""
    expert = "scripted_success_rate" in report
    lines = [f"{'task':26s} {'success':>9s}" + (f" {'scripted':>9s}" if expert else "")]
    for name, r in report["tasks"].items():
        line = f"{name:26s} {r['successes']:>4d}/{r['episodes']:<4d}"
        if expert:
            line += f" {r['scripted_successes']:>4d}/{r['episodes']:<4d}"
        lines.append(line)
    total = sum(r["episodes"] for r in report["tasks"].values())
    line = f"{'all':26s} {report['success_rate'] * 100:8.1f}%"
    if expert:
        line += f" {report['scripted_success_rate'] * 100:8.1f}%"
    lines.append(line + f"   ({total} episodes, {report['wall_s']:.0f} s)")
    return "\n".join(lines)
