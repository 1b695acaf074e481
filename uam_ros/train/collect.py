"""`uam collect`: record scripted-expert episodes (and vision-language pairs) into a dataset directory.

    uam collect --robot franka_panda --tasks reach pick --episodes 20 --split train --out data/train
    uam collect --tasks reach --episodes 10 --split heldout --out data/heldout
    uam collect --tasks --episodes 0 --vl-pairs 3000 --out data/vl        # vision-language pairs only
    uam collect --tasks reach --episodes 300 --seed 300 --recovery-from models/default/franka_panda \
        --handoff 4 56 --out data/recovery                                  # recovery (DAgger-style) episodes

Episode ``i`` of a task uses seed ``--seed + i`` in ``uam_ros.sim.tasks.sample_episode(task, split,
seed)``; the expert runs at the robot's action rate (10 Hz), one camera frame, joint state and
commanded target per step. Only successful episodes are kept; failures are listed in meta.json.
Collection is resumable (episode files already present, and failures already recorded, are
skipped) and runs over ``--workers`` processes (spawned, each with its own MuJoCo world).

The split is part of the dataset's identity: a directory collected as ``train`` refuses held-out
episodes and vice versa, so held-out data can never end up in a training set by accident.

Vision-language pairs (``--vl-pairs M``) are questions and captions about random table scenes
rendered by the same camera: colours, shapes, counts, left/right, nearer/farther. Their scenes use
*every* colour and shape, including the combinations and the ``cross`` shape that the train split
of the action data never contains -- the ventral VLM learns about them, the action data does not.

Recovery episodes (``--recovery-from CHECKPOINT``) put the expert where the *policy* goes: the
policy acts for a seeded random number of steps in ``--handoff MIN MAX`` (exactly as ``uam eval``
runs it; those steps are not recorded), then the scripted expert takes over from the state the
policy left and is recorded as usual. Behaviour cloning only ever sees expert states, so a policy
that drifts a few centimetres off them has no data on how to come back (covariate shift); these
episodes are that data, labelled by the same expert. Episodes where the policy succeeds before the
hand-off are not kept (nothing to recover from) and are counted separately.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uam_ros.train.dataset_format import (
    DatasetError,
    DatasetMeta,
    DatasetWriter,
    Episode,
    EpisodeInfo,
)
from uam_ros.train.progress import Progress
from uam_ros.train.provenance import created_info

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
VL_PAIRS_PER_SCENE = 6
VL_SCENES_PER_JOB = 10  # scenes per worker job; one object layout ("structure") per job keeps compiles rare
MIN_VISIBLE_PIXELS = 12  # an object this small in the image is not asked about: the scene is re-drawn


# ------------------------------------------------------------------------------------- sim coupling


def show_episode(world: Any, episode: Any) -> None:
    """Put ``episode`` into an existing SimWorld (the compiled model is reused when the objects'
    shapes are the same). Rendering is left exactly as SimWorld does it -- the ROS sim node renders
    the same way, so training frames and run-time frames come from one code path."""
    if world.episode is episode:
        world.reset()
    else:
        world.load_episode(episode)


# ------------------------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class EpisodeJob:
    robot: str
    task: str
    split: str
    seed: int
    camera: str
    image_size: tuple[int, int]  # (height, width)
    max_steps: int | None
    recovery_from: str | None = None  # checkpoint whose policy acts before the expert takes over
    handoff: int = 0  # policy steps before the hand-off (recovery episodes only)
    policy_steps: int | None = None  # targets the policy executes per chunk (None: the robot config's)


@dataclass
class EpisodeOutcome:
    task: str
    seed: int
    success: bool
    steps: int
    seconds: float
    episode: Episode | None  # only successful episodes are returned
    policy_succeeded: bool = False  # recovery: the policy solved the task before the hand-off


def handoff_step(seed: int, low: int, high: int) -> int:
    """The recovery hand-off step of episode ``seed``: uniform in [low, high], seeded by the episode
    alone, so a resumed or re-run collection hands off at the same step."""
    return int(np.random.default_rng([seed, 0x4A11D0FF]).integers(low, high + 1))


_WORLD = None  # one SimWorld per worker process, reused across episodes
_WORLD_KEY: tuple[str, bool] | None = None


def _world_for(job: EpisodeJob, episode_spec: Any) -> Any:
    global _WORLD, _WORLD_KEY
    from uam_ros.sim.world import SimWorld

    key = (job.robot, job.camera == "wrist")
    if _WORLD is None or _WORLD_KEY != key:
        _WORLD = SimWorld(job.robot, episode_spec, wrist_camera=key[1])
        _WORLD_KEY = key
    show_episode(_WORLD, episode_spec)
    return _WORLD


_POLICY = None  # one SimPolicy per worker process (recovery episodes), reused across episodes


def _policy_for(job: EpisodeJob) -> Any:
    global _POLICY
    import torch

    from uam_ros.train.sim_policy import SimPolicy

    if _POLICY is None or (_POLICY.checkpoint, _POLICY.requested_steps) != (job.recovery_from, job.policy_steps):
        torch.set_num_threads(1)  # batch-1 inference; workers already fill the cores
        _POLICY = SimPolicy(job.recovery_from, job.robot, camera=job.camera, n_action_steps=job.policy_steps)
    return _POLICY


def _policy_prefix(job: EpisodeJob, world: Any, spec: Any) -> bool:
    """Let the policy act for ``job.handoff`` steps (seeded as ``uam eval`` seeds the episode);
    True when it solved the task on its own before the hand-off."""
    import torch

    # SimPolicy is built for the job's robot and checks the checkpoint's joint layout against it.
    generator = torch.Generator().manual_seed(job.seed)
    _, solved = _policy_for(job).run(world, spec.instruction, generator, job.handoff)
    return solved


def record_expert_episode(job: EpisodeJob) -> EpisodeOutcome:
    """Run the scripted expert on (task, split, seed) and record every 10 Hz step.

    The loop is ``uam_ros.sim.expert.run_expert_episode``'s (same stop rule), recording more per
    step: the frame and joint state *before* the step and the target commanded in it. With
    ``job.recovery_from`` the checkpoint's policy acts first (not recorded) and the expert starts
    from wherever it left the arm; the step limit counts the policy's steps too.
    """
    from uam_ros.sim.expert import ScriptedExpert
    from uam_ros.sim.tasks import retarget, sample_episode, split_retarget_id

    start = time.monotonic()
    layout_seed, named = split_retarget_id(job.seed)  # named > 0: a counterfactual (--all-targets)
    spec = retarget(sample_episode(job.task, job.split, layout_seed), named)
    world = _world_for(job, spec)
    if world.cfg.gripper is None:
        raise DatasetError(f"robot {job.robot!r} has no gripper; the scripted experts need one")
    limit = job.max_steps if job.max_steps is not None else spec.max_steps
    handoff = 0
    if job.recovery_from:
        handoff = min(job.handoff, limit - 1)
        if _policy_prefix(job, world, spec):
            return EpisodeOutcome(job.task, job.seed, False, handoff, time.monotonic() - start, None,
                                  policy_succeeded=True)
        limit -= handoff
    expert = ScriptedExpert(world)
    dt = 1.0 / world.cfg.chunk.action_rate_hz
    height, width = job.image_size
    rows: dict[str, list[np.ndarray]] = {k: [] for k in Episode.ARRAYS}
    success = False
    for _ in range(limit):
        _, q, v = world.joint_state()
        rows["frames"].append(world.render(job.camera, width, height))
        rows["joint_positions"].append(q)
        rows["joint_velocities"].append(v)
        rows["gripper_opening"].append(np.float32(world.gripper_opening()))
        rows["ee_positions"].append(world.ee_position())
        rows["time_s"].append(np.float64(world.time))
        action = expert.act()
        rows["actions"].append(action)
        world.move_to(action[:-1], float(action[-1]), dt)
        success = world.success()
        if expert.done() or success:  # run_expert_episode's stop rule
            break
    steps = len(rows["actions"])
    seconds = time.monotonic() - start
    if not success:
        return EpisodeOutcome(job.task, job.seed, False, steps, seconds, None)
    info = EpisodeInfo(
        task=job.task,
        split=job.split,
        seed=job.seed,
        instruction=spec.instruction,
        success=True,
        steps=steps,
        objects=[
            {"name": o.name, "shape": o.shape, "color": o.color, "pos": [float(o.pos[0]), float(o.pos[1])],
             "yaw": float(o.yaw)}
            for o in spec.objects
        ],
        target=spec.target,
        goal=spec.goal,
        expert="scripted recovery" if job.recovery_from else "scripted",
        handoff_step=handoff,
        handoff_policy=str(job.recovery_from or ""),
    )
    episode = Episode(**{k: np.stack(v) for k, v in rows.items()}, info=info)
    return EpisodeOutcome(job.task, job.seed, True, steps, seconds, episode)


def _named_variants(task: str, split: str, seed: int) -> list[int]:
    """Episode ids of layout ``seed`` with each of its objects named in turn (tasks.retarget); an
    object that cannot be named unambiguously is left out."""
    from uam_ros.sim.tasks import retarget, retarget_id, sample_episode

    spec = sample_episode(task, split, seed)
    ids = [seed]
    for k in range(1, len(spec.objects)):
        try:
            retarget(spec, k)
        except ValueError:
            continue
        ids.append(retarget_id(seed, k))
    return ids


def _collect_job(args: tuple[EpisodeJob, str]) -> EpisodeOutcome:
    """Worker entry: record one episode and, when it succeeded, write its file (in the worker, so
    compression runs in parallel); the episode arrays are not sent back."""
    job, root = args
    outcome = record_expert_episode(job)
    if outcome.episode is not None:
        from uam_ros.train.dataset_format import episode_filename, save_episode

        save_episode(Path(root) / episode_filename(job.task, job.seed), outcome.episode)
        outcome.episode = None
    return outcome


# ------------------------------------------------------------------------------------- VL pairs


@dataclass(frozen=True)
class SceneObject:
    """What the question generator knows about one object: its words and where it is in the image."""

    color: str
    shape: str
    u: float  # horizontal image position of its visible pixels, 0 = left edge .. 1 = right edge
    depth: float  # distance from the camera [m]

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"


def article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def vl_candidates(objects: Sequence[SceneObject], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """Every (kind, prompt, answer) this scene supports. Ambiguous questions are never asked: an
    object is named only when its label is unique, left/right needs 10% of the image width between
    the two, nearer/farther 6 cm."""
    from uam_ros.sim.objects import COLORS, SHAPES

    out: list[tuple[str, str, str]] = []
    ordered = sorted(objects, key=lambda o: o.u)
    out.append(("caption", "list the objects from left to right:", ", ".join(o.label for o in ordered)))
    colors = [o.color for o in objects]
    shapes = [o.shape for o in objects]
    labels = [o.label for o in objects]
    for obj in objects:
        if shapes.count(obj.shape) == 1:
            out.append(("color", f"what color is the {obj.shape}?", obj.color))
        if colors.count(obj.color) == 1:
            out.append(("shape", f"what is the {obj.color} object?", obj.shape))
    out.append(("count", "how many objects are there?", NUMBER_WORDS[len(objects)]))
    color = str(rng.choice(list(COLORS)))
    out.append(("count", f"how many {color} objects are there?", NUMBER_WORDS[colors.count(color)]))
    shape = str(rng.choice(list(SHAPES)))
    out.append(("count", f"how many {plural(shape)} are there?", NUMBER_WORDS[shapes.count(shape)]))
    present = objects[int(rng.integers(len(objects)))]
    out.append(("exists", f"is there {article(present.label)} {present.label}?", "yes"))
    absent = [f"{c} {s}" for c in COLORS for s in SHAPES if f"{c} {s}" not in labels]
    label = absent[int(rng.integers(len(absent)))]
    out.append(("exists", f"is there {article(label)} {label}?", "no"))
    unique = [o for o in objects if labels.count(o.label) == 1]
    for i, a in enumerate(unique):
        for b in unique[i + 1:]:
            if abs(a.u - b.u) > 0.1:
                first, second = (a, b) if rng.random() < 0.5 else (b, a)
                side = "left" if rng.random() < 0.5 else "right"
                truth = (first.u < second.u) == (side == "left")
                out.append(("spatial", f"is the {first.label} {side} of the {second.label}?", "yes" if truth else "no"))
            if abs(a.depth - b.depth) > 0.06:
                first, second = (a, b) if rng.random() < 0.5 else (b, a)
                nearer = first if first.depth < second.depth else second
                out.append(("spatial", f"which is closer to the camera, the {first.label} or the {second.label}?",
                            nearer.label))
    return out


Candidate = tuple[str, str, str]  # (kind, prompt, answer)


def pick_vl_pairs(candidates: list[Candidate], rng: np.random.Generator, k: int) -> list[Candidate]:
    """The caption plus k-1 questions, spread over the question kinds (round robin over shuffled kinds)."""
    caption = [c for c in candidates if c[0] == "caption"][:1]
    by_kind: dict[str, list[tuple[str, str, str]]] = {}
    for cand in candidates:
        if cand[0] != "caption":
            by_kind.setdefault(cand[0], []).append(cand)
    for items in by_kind.values():
        rng.shuffle(items)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    chosen: list[tuple[str, str, str]] = []
    while len(chosen) < k - len(caption) and any(by_kind.values()):
        for kind in kinds:
            if by_kind[kind] and len(chosen) < k - len(caption):
                chosen.append(by_kind[kind].pop())
    return caption + chosen


def _vl_structure(rng: np.random.Generator) -> list[str]:
    """The shapes of one VL job's scenes: 2-4 objects, mostly movable, at most one bin."""
    from uam_ros.sim.objects import SHAPES

    movable = [s for s, info in SHAPES.items() if info.movable]
    fixtures = [s for s, info in SHAPES.items() if not info.movable]
    shapes: list[str] = []
    for _ in range(int(rng.integers(2, 5))):
        pool = fixtures if rng.random() < 0.3 else movable
        shape = str(rng.choice(pool))
        if shape == "bin" and "bin" in shapes:
            shape = str(rng.choice(movable))
        shapes.append(shape)
    return shapes


def _vl_layout(rng: np.random.Generator, shapes: Sequence[str]) -> list[Any] | None:
    from uam_ros.sim.objects import COLORS, SHAPES, ObjectSpec
    from uam_ros.sim.tasks import SPACING, TABLE_REGION

    placed: list[tuple[np.ndarray, float]] = []
    objects = []
    x0, x1, y0, y1 = TABLE_REGION
    for i, shape in enumerate(shapes):
        radius = SHAPES[shape].radius
        for _ in range(200):
            pos = np.array([rng.uniform(x0 + radius, x1 - radius), rng.uniform(y0 + radius, y1 - radius)])
            if all(np.linalg.norm(pos - p) >= radius + r + SPACING for p, r in placed):
                break
        else:
            return None
        placed.append((pos, radius))
        color = str(rng.choice(list(COLORS)))
        objects.append(ObjectSpec(f"vl{i}", shape, color, (float(pos[0]), float(pos[1])),
                                  float(rng.uniform(-math.pi, math.pi))))
    return objects


def render_vl_scenes(robot: str, camera: str, image_size: tuple[int, int], seed: int, n_scenes: int,
                     pairs_per_scene: int = VL_PAIRS_PER_SCENE) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render n_scenes random scenes of one object structure; returns (images, pairs) with pairs'
    ``image`` indices local to the returned images."""
    import mujoco

    from uam_ros.sim.tasks import EpisodeSpec
    from uam_ros.sim.world import SimWorld

    rng = np.random.default_rng(seed)
    shapes = _vl_structure(rng)
    height, width = image_size
    world = None
    segmenter = None
    images, pairs = [], []
    try:
        while len(images) < n_scenes:
            objects = _vl_layout(rng, shapes)
            if objects is None:
                continue
            spec = EpisodeSpec(task="reach", split="train", seed=seed, instruction="", objects=tuple(objects),
                               target=objects[0].name)
            if world is None:
                world = SimWorld(robot, spec, wrist_camera=camera == "wrist")
            show_episode(world, spec)
            if segmenter is None:
                segmenter = mujoco.Renderer(world.model, height=height, width=width)
                segmenter.enable_segmentation_rendering()
            segmenter.update_scene(world.data, camera=camera)
            seg = segmenter.render()
            scene = _scene_objects(world, objects, seg, camera)
            if scene is None:  # something hidden (e.g. behind the arm): draw another layout
                continue
            image = world.render(camera, width, height)
            index = len(images)
            images.append(image)
            for kind, prompt, answer in pick_vl_pairs(vl_candidates(scene, rng), rng, pairs_per_scene):
                pairs.append({
                    "image": index, "kind": kind, "prompt": prompt, "answer": answer,
                    "scene": {"objects": [o.label for o in scene], "seed": seed},
                })
    finally:
        if segmenter is not None:
            segmenter.close()
        if world is not None:
            world.close()
    return np.stack(images), pairs


def _scene_objects(world: Any, objects: Sequence[Any], seg: np.ndarray, camera: str) -> list[SceneObject] | None:
    """Objects with their image position (centroid of their visible pixels) and camera distance;
    None when any object shows fewer than MIN_VISIBLE_PIXELS pixels."""
    import mujoco

    m, d = world.model, world.data
    geom_ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
    body_of_pixel = np.where(geom_ids >= 0, m.geom_bodyid[np.clip(geom_ids, 0, None)], -1)
    cam = m.camera(camera).id
    cam_pos = d.cam_xpos[cam]
    out = []
    for obj in objects:
        bodies = [m.body(obj.body_name()).id]
        if obj.shape == "button":
            bodies.append(m.body(f"{obj.body_name()}_cap").id)
        mask = np.isin(body_of_pixel, bodies)
        if int(mask.sum()) < MIN_VISIBLE_PIXELS:
            return None
        cols = np.nonzero(mask)[1]
        u = float(cols.mean() + 0.5) / seg.shape[1]
        depth = float(np.linalg.norm(world.data.xpos[bodies[0]] - cam_pos))
        out.append(SceneObject(obj.color, obj.shape, u, depth))
    return out


def _vl_job(args: tuple[str, str, tuple[int, int], int, int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    return render_vl_scenes(*args)


# ------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `uam collect` (no simulator import here: building the parser stays cheap)."""
    parser.add_argument("--robot", default="franka_panda", help="robot name or YAML path")
    parser.add_argument("--tasks", nargs="*", default=None, metavar="TASK",
                        help="tasks to record: reach push pick put_in stack press (default: all); "
                        "`--tasks` with none: VL pairs only")
    parser.add_argument("--episodes", type=int, default=10, help="episodes attempted per task (seeds S..S+N-1)")
    parser.add_argument("--split", choices=("train", "heldout"), default="train")
    parser.add_argument("--out", type=Path, required=True, help="dataset directory (created, or resumed)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (spawned)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode of each task")
    parser.add_argument("--camera", choices=("scene", "wrist"), default="scene",
                        help="camera recorded (the sim node's default camera is 'scene')")
    parser.add_argument("--image-size", type=int, default=0,
                        help="square frame size to record [px] (default: the robot's camera size)")
    parser.add_argument("--max-steps", type=int, default=None, help="override every task's step limit")
    parser.add_argument("--vl-pairs", type=int, default=0,
                        help=f"vision-language pairs to generate ({VL_PAIRS_PER_SCENE} per rendered scene)")
    parser.add_argument("--recovery-from", metavar="CHECKPOINT",
                        help="recovery episodes: this checkpoint's policy acts first, the expert takes over")
    parser.add_argument("--policy-steps", type=int, default=None, metavar="N",
                        help="with --recovery-from: targets the policy executes per chunk before replanning "
                        "(default: the robot config's chunk.n_action_steps; collect where the policy will be used)")
    parser.add_argument("--handoff", type=int, nargs=2, default=(4, 56), metavar=("MIN", "MAX"),
                        help="with --recovery-from: policy steps before the hand-off, seeded uniform in [MIN, MAX]")
    parser.add_argument("--all-targets", action="store_true",
                        help="reach and press only: record every layout once per object (press: per button), "
                        "each named in turn (episode id = seed + k * 10^7 for the k-th other one), so the "
                        "instruction is the only cue that tells the demonstrations apart")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_args(args: argparse.Namespace) -> None:
    from uam_ros.sim.tasks import RETARGET_TASKS, TASK_NAMES

    if args.tasks is None:
        args.tasks = list(TASK_NAMES)
    unknown = [t for t in args.tasks if t not in TASK_NAMES]
    if unknown:
        raise SystemExit(f"uam collect: unknown task(s) {unknown} (known: {list(TASK_NAMES)})")
    for name in ("episodes", "vl_pairs", "seed"):
        if getattr(args, name) < 0:
            raise SystemExit(f"uam collect: --{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.all_targets and set(args.tasks) - set(RETARGET_TASKS):
        raise SystemExit(f"uam collect: --all-targets records {' and '.join(RETARGET_TASKS)} only "
                         f"(got {sorted(args.tasks)})")
    if args.workers < 1:
        raise SystemExit(f"uam collect: --workers must be >= 1, got {args.workers}")
    if args.image_size < 0:
        raise SystemExit(f"uam collect: --image-size must be >= 0, got {args.image_size}")
    if args.max_steps is not None and args.max_steps < 1:
        raise SystemExit(f"uam collect: --max-steps must be >= 1, got {args.max_steps}")
    if args.policy_steps is not None and args.policy_steps < 1:
        raise SystemExit(f"uam collect: --policy-steps must be >= 1, got {args.policy_steps}")
    low, high = args.handoff
    if not 0 <= low <= high:
        raise SystemExit(f"uam collect: --handoff needs 0 <= MIN <= MAX, got {low} {high}")
    if args.recovery_from and not Path(args.recovery_from).exists():
        raise SystemExit(f"uam collect: --recovery-from {args.recovery_from}: no such checkpoint")


def _pool(workers: int):
    # spawn, not fork: MuJoCo/EGL contexts and torch threads must not be inherited half-initialised.
    return multiprocessing.get_context("spawn").Pool(workers)


def _map(func, jobs: list, workers: int, ordered: bool = False):
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield func(job)
        return
    with _pool(min(workers, len(jobs))) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(func, jobs)


def run(args: argparse.Namespace) -> int:
    """Collect; returns 0, or 1 when no episode of some task succeeded."""
    from uam_ros.control.robot_config import load_robot_config

    _check_args(args)
    robot = load_robot_config(args.robot)
    if robot.gripper is None:
        raise SystemExit(f"uam collect: robot {robot.name!r} has no gripper; the scripted experts need one")
    size = args.image_size or 0
    image_size = (size, size) if size else (robot.camera.height, robot.camera.width)
    meta = DatasetMeta(
        robot=robot.name,
        joint_names=list(robot.joints.names) + [robot.gripper.joint],
        arm_joints=list(robot.joints.names),
        gripper_joint=robot.gripper.joint,
        image_height=image_size[0],
        image_width=image_size[1],
        camera=args.camera,
        action_rate_hz=float(robot.chunk.action_rate_hz),
        split=args.split,
        tasks=sorted(args.tasks),
        created=created_info(seed=args.seed),
        notes=("scripted-expert episodes; only successful ones are kept (failures listed)" if not args.recovery_from
               else f"recovery episodes: {args.recovery_from}'s policy acts for {args.handoff[0]}-{args.handoff[1]} "
                    f"steps (not recorded; replanning every {args.policy_steps or 'n_action_steps'}), then the "
                    "scripted expert; only successful ones are kept"),
    )
    try:
        writer = DatasetWriter(args.out, meta)
    except DatasetError as error:
        print(f"uam collect: {error}", file=sys.stderr)
        return 2

    recovery = str(args.recovery_from) if args.recovery_from else None
    jobs = [
        EpisodeJob(str(args.robot), task, args.split, episode_id, args.camera, image_size, args.max_steps,
                   recovery, handoff_step(episode_id, *args.handoff) if recovery else 0, args.policy_steps)
        for task in args.tasks
        for i in range(args.episodes)
        for episode_id in (_named_variants(task, args.split, args.seed + i) if args.all_targets else [args.seed + i])
    ]
    todo = [j for j in jobs if not writer.has_episode(j.task, j.seed) and not writer.has_failure(j.task, j.seed)]
    skipped = len(jobs) - len(todo)
    if skipped:
        print(f"uam collect: resuming, {skipped} of {len(jobs)} episodes already done", file=sys.stderr)
    bar = Progress(len(jobs), "collect", initial=skipped, unit="ep", enabled=not args.quiet)
    kept = failed = solved = 0
    seconds = []
    start = time.monotonic()
    try:
        for outcome in _map(_collect_job, [(job, str(writer.root)) for job in todo], args.workers):
            seconds.append(outcome.seconds)
            if outcome.success:
                kept += 1
            else:
                solved += outcome.policy_succeeded
                failed += not outcome.policy_succeeded
                writer.record_failure(outcome.task, outcome.seed, outcome.steps,
                                      "policy solved it before the hand-off" if outcome.policy_succeeded else "")
                writer.finalize()  # failures are remembered even if the run is killed later
            bar.update(1, kept=kept, failed=failed, **({"policy_solved": solved} if recovery else {}))
    finally:
        bar.close()
        final = writer.finalize()
    wall = time.monotonic() - start
    if todo:
        policy_note = f", {solved} solved by the policy before the hand-off" if recovery else ""
        print(f"uam collect: {kept} kept, {failed} failed{policy_note} in {wall:.1f} s "
              f"({np.mean(seconds):.2f} s per episode per worker); {final.num_episodes} episodes in {args.out}",
              file=sys.stderr)

    if args.vl_pairs:
        _collect_vl(args, writer, image_size)

    per_task = {t: sum(1 for p in Path(args.out).glob(f"episode_{t}_*.npz")) for t in args.tasks}
    empty = [t for t, n in per_task.items() if n == 0 and args.episodes > 0]
    if empty and recovery and solved:
        print(f"uam collect: no recovery episode for {empty}: the policy solved them before the hand-off",
              file=sys.stderr)
    elif empty:
        print(f"uam collect: no successful episode for {empty}", file=sys.stderr)
        return 1
    return 0


def _collect_vl(args: argparse.Namespace, writer: DatasetWriter, image_size: tuple[int, int]) -> None:
    """All VL pairs in one go (cheap next to episodes); skipped when the dataset already has as many."""
    if writer.meta.num_vl_pairs >= args.vl_pairs:
        print(f"uam collect: {writer.meta.num_vl_pairs} VL pairs already present, skipping", file=sys.stderr)
        return
    scenes = math.ceil(args.vl_pairs / VL_PAIRS_PER_SCENE)
    jobs = []
    base = args.seed * 7919 + 1_000_003 * (1 + ("train", "heldout").index(args.split))
    for j, first in enumerate(range(0, scenes, VL_SCENES_PER_JOB)):
        jobs.append((str(args.robot), args.camera, image_size, base + j, min(VL_SCENES_PER_JOB, scenes - first)))
    bar = Progress(scenes, "vl scenes", unit="scene", enabled=not args.quiet)
    images, pairs = [], []
    start = time.monotonic()
    try:
        for job_images, job_pairs in _map(_vl_job, jobs, args.workers, ordered=True):  # ordered: deterministic
            offset = sum(len(i) for i in images)
            images.append(job_images)
            pairs.extend({**p, "image": p["image"] + offset} for p in job_pairs)
            bar.update(len(job_images))
    finally:
        bar.close()
    pairs = pairs[: args.vl_pairs]
    used = max(p["image"] for p in pairs) + 1
    writer.write_vl(np.concatenate(images)[:used], pairs)
    writer.finalize()
    print(f"uam collect: {len(pairs)} VL pairs on {used} scenes in {time.monotonic() - start:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uam collect", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
