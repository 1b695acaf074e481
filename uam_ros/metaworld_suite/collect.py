"""Record Meta-World's scripted demonstrations into our dataset format (``uam train`` reads them as is).

Per recording step i (env step i x stride): the camera frame and the Sawyer's joint state *before*
the step, and as action the joint target -- the arm positions reached one recording step later and
the gripper target of the scripted effort (expert.joint_targets). An episode ends 8 env steps after
the scripted policy's first success (expert.SUCCESS_TAIL_ENV_STEPS: the data then shows the task
finished, not stopped on the boundary). Only successful episodes are kept; failures are listed in
meta.json. Episode files are named after (task, seed), so collection resumes
where it stopped and parallel workers never collide. The dataset's robot is ``sawyer``, its
``camera`` the Meta-World camera name, its action rate the robot config's ``chunk.action_rate_hz``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uam_ros.control.robot_config import RobotConfig, load_robot_config
from uam_ros.metaworld_suite.compat import versions
from uam_ros.metaworld_suite.expert import joint_targets, run_scripted
from uam_ros.metaworld_suite.scene import DEFAULT_CAMERA, MetaWorldScene
from uam_ros.metaworld_suite.tasks import dataset_task, instruction, resolve_tasks
from uam_ros.train.dataset_format import DatasetMeta, DatasetWriter, Episode, EpisodeInfo, episode_filename
from uam_ros.train.progress import Progress
from uam_ros.train.provenance import created_info


@dataclass(frozen=True)
class CollectJob:
    robot: str
    task: str  # Meta-World env name
    seed: int
    camera: str
    image_size: tuple[int, int]  # (height, width)


@dataclass
class CollectOutcome:
    task: str
    seed: int
    success: bool
    steps: int  # recording steps (env steps / stride)
    env_steps: int
    seconds: float
    episode: Episode | None = None


def record_episode(scene: MetaWorldScene, seed: int) -> CollectOutcome:
    """Play and record one scripted episode; the Episode is set only when it succeeded."""
    start = time.monotonic()
    rows: dict[str, list[Any]] = {name: [] for name in Episode.ARRAYS if name != "actions"}
    placement: dict[str, list[float]] = {}

    def before_step(env_step: int) -> None:
        if env_step == 0:
            obj, goal = scene.object_and_goal()
            placement.update(object=obj.tolist(), goal=goal.tolist())
        if env_step % scene.stride:
            return
        rows["frames"].append(scene.render())
        rows["joint_positions"].append(scene.state())
        rows["joint_velocities"].append(scene.arm.velocities(scene.data))
        rows["gripper_opening"].append(scene.arm.gripper_opening(scene.data))
        rows["ee_positions"].append(scene.arm.tcp_position(scene.data))
        rows["time_s"].append(env_step * scene.env_dt)

    run = run_scripted(scene, seed, before_step)
    steps = len(rows["frames"])
    outcome = CollectOutcome(scene.task, seed, run.success, steps, run.env_steps, 0.0)
    if run.success:
        task = dataset_task(scene.task)
        info = EpisodeInfo(
            task=task, split="train", seed=seed, instruction=instruction(scene.task), success=True, steps=steps,
            objects=[{"name": "object", "pos": placement["object"]}, {"name": "goal", "pos": placement["goal"]}],
            target="object", goal="goal", expert=f"metaworld-scripted:{scene.task}",
        )
        actions = joint_targets(run, scene)
        assert actions.shape[0] == steps, (actions.shape, steps)
        outcome.episode = Episode(**{k: np.stack(v) for k, v in rows.items()}, actions=actions, info=info)
    outcome.seconds = time.monotonic() - start
    return outcome


_SCENES: dict[tuple[str, str, str, tuple[int, int]], MetaWorldScene] = {}


def _scene_for(job: CollectJob) -> MetaWorldScene:
    """The worker's scene for a job: reused while jobs stay on one task (jobs come task by task), the
    previous one closed when the task changes (one env and EGL context per worker at a time)."""
    key = (job.robot, job.task, job.camera, job.image_size)
    if key not in _SCENES:
        for old in _SCENES.values():
            old.close()
        _SCENES.clear()
        _SCENES[key] = MetaWorldScene(job.task, job.robot, camera=job.camera, image_size=job.image_size)
    return _SCENES[key]


def _collect_job(args: tuple[CollectJob, str]) -> CollectOutcome:
    """Worker entry: record one episode and write its file here (compression runs in the worker)."""
    from uam_ros.train.dataset_format import save_episode

    job, root = args
    outcome = record_episode(_scene_for(job), job.seed)
    if outcome.episode is not None:
        save_episode(Path(root) / episode_filename(dataset_task(job.task), job.seed), outcome.episode)
        outcome.episode = None
    return outcome


def dataset_meta(robot: RobotConfig, tasks: Sequence[str], camera: str, image_size: tuple[int, int],
                 seed: int) -> DatasetMeta:
    assert robot.gripper is not None
    return DatasetMeta(
        robot=robot.name,
        joint_names=robot.action_joint_names,
        arm_joints=list(robot.joints.names),
        gripper_joint=robot.gripper.joint,
        image_height=image_size[0],
        image_width=image_size[1],
        camera=camera,
        action_rate_hz=float(robot.chunk.action_rate_hz),
        split="train",
        tasks=sorted(dataset_task(t) for t in tasks),
        created={**created_info(seed=seed), "versions": versions()},
        notes="Meta-World MT10 scripted-policy episodes; actions = arm joint positions reached one step later "
              "+ gripper target of the scripted effort; episodes end 8 env steps after the first success; "
              "only successful episodes are kept (failures listed)",
    )


def collect(tasks: Sequence[str] | None, episodes: int, out: str | Path, *, seed: int = 0, robot: str = "sawyer",
            camera: str = DEFAULT_CAMERA, image_size: tuple[int, int] | None = None, workers: int = 1,
            progress: bool = True) -> dict[str, Any]:
    """Record episodes seed..seed+episodes-1 of every task into ``out``; returns a summary dict."""
    names = resolve_tasks(list(tasks) if tasks else None)
    robot_cfg = load_robot_config(robot)
    size = image_size or (robot_cfg.camera.height, robot_cfg.camera.width)
    writer = DatasetWriter(out, dataset_meta(robot_cfg, names, camera, size, seed))
    jobs = [CollectJob(robot, name, seed + i, camera, size) for name in names for i in range(episodes)]
    todo = [j for j in jobs if not writer.has_episode(dataset_task(j.task), j.seed)
            and not writer.has_failure(dataset_task(j.task), j.seed)]
    bar = Progress(len(jobs), "metaworld collect", initial=len(jobs) - len(todo), unit="ep", enabled=progress)
    per_task: dict[str, dict[str, int]] = {n: {"kept": 0, "failed": 0} for n in names}
    start = time.monotonic()
    try:
        for outcome in _map(_collect_job, [(job, str(writer.root)) for job in todo], workers):
            counts = per_task[outcome.task]
            if outcome.success:
                counts["kept"] += 1
            else:
                counts["failed"] += 1
                writer.record_failure(dataset_task(outcome.task), outcome.seed, outcome.steps)
                writer.finalize()  # failures are remembered even if the run is killed later
            bar.update(1, task=dataset_task(outcome.task), kept=sum(c["kept"] for c in per_task.values()))
    finally:
        bar.close()
        final = writer.finalize()
    for name, counts in per_task.items():  # this run's kept/failed, and what the dataset holds (a resumed run)
        counts["in_dataset"] = sum(writer.has_episode(dataset_task(name), seed + i) for i in range(episodes))
    return {"out": str(out), "episodes_in_dataset": final.num_episodes, "skipped": len(jobs) - len(todo),
            "tasks": per_task, "wall_s": time.monotonic() - start}


def _map(func, jobs: list, workers: int):
    if workers <= 1 or len(jobs) <= 1:
        yield from map(func, jobs)
        return
    # spawn, not fork: EGL contexts must not be inherited half-initialised.
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(func, jobs)
