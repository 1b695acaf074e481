"""Language-conditioned tabletop tasks, their success predicates, and seeded episode sampling.

Six tasks: ``reach``, ``push``, ``pick``, ``put_in``, ``stack``, ``press``. Each episode puts a few
coloured objects (and, depending on the task, zones, bins or buttons) on the table and states the
goal in one sentence drawn from the task's paraphrase templates.

Two main splits, mirroring the out-of-distribution probes of the UAM paper (unseen objects, novel
object-target compositions, instruction variation):

- ``train``: the manipulated object is a *training* colour-shape combination (``is_train_combo``),
  it starts inside ``TRAIN_REGION``, and the sentence comes from the task's training paraphrases.
- ``heldout``: the manipulated object is an unseen colour-shape combination or the unseen shape
  ``cross`` (for ``press``: an unseen button colour), it starts in the band of the table outside
  ``TRAIN_REGION``, and the sentence comes from paraphrases never used in training.

Distractors and destinations are training combinations in both splits, so a held-out episode
composes familiar destinations with an unfamiliar object.

Four evaluation sub-splits each change exactly *one* of those factors relative to ``train`` (the
other two stay as in ``train``), so a success drop can be attributed to it (issue #9):

- ``heldout_combo``: the target is an unseen colour-shape combination of a training shape.
- ``heldout_shape``: the target is the unseen shape ``cross`` (in a training colour).
- ``heldout_paraphrase``: the sentence comes from the held-out paraphrases.
- ``heldout_position``: the target starts in the band of the table outside ``TRAIN_REGION``.

``press`` has no shapes: its buttons differ only in colour, so ``heldout_combo`` and ``heldout_shape``
both give it an unseen button colour (its only "unseen object" factor). ``SPLIT_FACTORS`` lists
what each split changes. The sub-splits are for evaluation only: ``uam collect`` records ``train``
or ``heldout``. ``sample_episode`` is a pure function of (task, split, seed); adding the sub-splits
left ``train`` and ``heldout`` episodes bit-identical (the split's index in ``SPLITS`` seeds the
generator, and the new names come after the old ones).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from uam_ros.sim.objects import (
    BIN_HEIGHT,
    BIN_INNER_HALF,
    BUTTON_PRESSED,
    COLORS,
    SHAPES,
    ZONE_HALF,
    ObjectSpec,
    object_top_z,
)

# Order matters: a split's index seeds its episodes. Append new splits; never reorder.
SPLITS = ("train", "heldout", "heldout_combo", "heldout_shape", "heldout_paraphrase", "heldout_position")
HELDOUT_SUBSPLITS = SPLITS[2:]
# The factors each split changes relative to "train": object (combo/shape), position, paraphrase.
SPLIT_FACTORS: dict[str, frozenset[str]] = {
    "train": frozenset(),
    "heldout": frozenset({"object", "position", "paraphrase"}),
    "heldout_combo": frozenset({"combo"}),
    "heldout_shape": frozenset({"shape"}),
    "heldout_paraphrase": frozenset({"paraphrase"}),
    "heldout_position": frozenset({"position"}),
}
COLOR_NAMES = tuple(COLORS)  # red, green, blue, yellow, purple, orange
TRAIN_SHAPES = ("block", "cylinder", "hexagon")
HELDOUT_SHAPES = ("cross",)
TRAIN_BUTTON_COLORS = ("red", "green", "blue", "yellow")
HELDOUT_BUTTON_COLORS = ("purple", "orange")
# (x_min, x_max, y_min, y_max) in the world frame; the robot base is at the origin, the table top is z = 0.
TRAIN_REGION = (0.42, 0.60, -0.17, 0.17)
TABLE_REGION = (0.34, 0.68, -0.27, 0.27)  # everything is placed in here
SPACING = 0.03  # minimum free gap between footprints [m]


def is_train_combo(color: str, shape: str) -> bool:
    """The colour-shape combinations seen in training: 12 of the 18 over TRAIN_SHAPES.

    Each colour appears in training with two shapes and each shape with four colours, so a held-out
    combination pairs a familiar colour with a familiar shape that it was never seen with."""
    if shape not in TRAIN_SHAPES:
        return False
    return (COLOR_NAMES.index(color) + TRAIN_SHAPES.index(shape)) % 3 != 0


TRAIN_COMBOS = tuple((c, s) for c in COLOR_NAMES for s in TRAIN_SHAPES if is_train_combo(c, s))
HELDOUT_COMBOS = tuple(
    [(c, s) for c in COLOR_NAMES for s in TRAIN_SHAPES if not is_train_combo(c, s)]
    + [(c, s) for c in COLOR_NAMES for s in HELDOUT_SHAPES]
)


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything needed to build and judge one episode (no randomness left)."""

    task: str
    split: str
    seed: int
    instruction: str
    objects: tuple[ObjectSpec, ...]
    target: str  # name of the object the instruction is about
    goal: str | None = None  # name of the destination (zone, bin, object), if any
    max_steps: int = 150  # expert/policy steps at the robot's action rate (10 Hz)

    def object(self, name: str) -> ObjectSpec:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"episode has no object '{name}' (has {[o.name for o in self.objects]})")

    @property
    def target_object(self) -> ObjectSpec:
        return self.object(self.target)

    @property
    def goal_object(self) -> ObjectSpec | None:
        return None if self.goal is None else self.object(self.goal)


@dataclass
class WorldState:
    """What the success predicates look at (built by SimWorld, or by hand in tests).

    positions: object name -> body position (x, y, z) in the world; for fixtures the base position.
    button_depth: button name -> how far its cap is pushed down [m] (>= 0).
    ee_pos: tool centre point position. gripper_open: 0 = closed .. 1 = fully open.
    gripper_contacts: names of the objects the gripper touches (a released object is not in it).
    """

    positions: dict[str, np.ndarray]
    ee_pos: np.ndarray
    gripper_open: float
    button_depth: dict[str, float] = field(default_factory=dict)
    gripper_contacts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    train_templates: tuple[str, ...]
    heldout_templates: tuple[str, ...]
    max_steps: int
    layout: Callable[[np.random.Generator, str], tuple[list[ObjectSpec], str, str | None]]
    success: Callable[[EpisodeSpec, WorldState], bool]

    def templates(self, split: str) -> tuple[str, ...]:
        return self.heldout_templates if _unseen_paraphrase(split) else self.train_templates


def _unseen_paraphrase(split: str) -> bool:
    return split in ("heldout", "heldout_paraphrase")


def _unseen_position(split: str) -> bool:
    return split in ("heldout", "heldout_position")


def _unseen_object(split: str) -> bool:
    """The manipulated object (press: the button colour) is one never seen in training."""
    return split in ("heldout", "heldout_combo", "heldout_shape")


# ---------------------------------------------------------------------------------------- sampling


class _Crowded(RuntimeError):
    pass


class _Placer:
    """Rejection-samples non-overlapping footprints."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.placed: list[tuple[np.ndarray, float]] = []
        self.keepout: list[tuple[np.ndarray, np.ndarray, float]] = []  # segments other objects must avoid

    def free(self, pos: np.ndarray, radius: float) -> bool:
        for other, other_r in self.placed:
            if np.linalg.norm(pos - other) < radius + other_r + SPACING:
                return False
        for a, b, width in self.keepout:
            if _segment_distance(pos, a, b) < radius + width:
                return False
        return True

    def sample(self, radius: float, region: str | tuple = "train", inside: tuple | None = None) -> np.ndarray:
        """region: 'train' (inside TRAIN_REGION), 'heldout' (TABLE_REGION outside TRAIN_REGION), 'table'."""
        for _ in range(300):
            box = TABLE_REGION if region in ("heldout", "table") else TRAIN_REGION
            if inside is not None:
                box = inside
            x0, x1, y0, y1 = box
            pos = np.array([self.rng.uniform(x0 + radius, x1 - radius), self.rng.uniform(y0 + radius, y1 - radius)])
            if region == "heldout" and _in_box(pos, TRAIN_REGION):
                continue
            if self.free(pos, radius):
                self.placed.append((pos, radius))
                return pos
        raise _Crowded("could not place an object: the layout is too crowded")

    def add(self, pos: np.ndarray, radius: float) -> None:
        self.placed.append((np.asarray(pos, float), radius))


def _in_box(pos: np.ndarray, box: tuple) -> bool:
    return box[0] <= pos[0] <= box[1] and box[2] <= pos[1] <= box[3]


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _target_combo(rng: np.random.Generator, split: str, shapes: Sequence[str] | None = None) -> tuple[str, str]:
    combos = HELDOUT_COMBOS if _unseen_object(split) else TRAIN_COMBOS
    if split == "heldout_combo":
        combos = tuple(c for c in combos if c[1] not in HELDOUT_SHAPES)
    elif split == "heldout_shape":
        combos = tuple(c for c in combos if c[1] in HELDOUT_SHAPES)
    if shapes is not None:
        combos = tuple(c for c in combos if c[1] in shapes)
    if split == "heldout" and shapes is None:
        # Half the held-out targets are the unseen shape, half unseen colour-shape combinations.
        pool = [c for c in combos if c[1] in HELDOUT_SHAPES] if rng.random() < 0.5 else [
            c for c in combos if c[1] not in HELDOUT_SHAPES
        ]
        combos = tuple(pool)
    return combos[int(rng.integers(len(combos)))]


def _distractor_combo(
    rng: np.random.Generator, avoid: Sequence[tuple[str, str]], shapes: Sequence[str] | None = None
) -> tuple[str, str]:
    combos = [c for c in TRAIN_COMBOS if c not in avoid and (shapes is None or c[1] in shapes)]
    return combos[int(rng.integers(len(combos)))]


def _yaw(rng: np.random.Generator) -> float:
    return float(rng.uniform(-math.pi, math.pi))


def _movable(rng, placer, name, combo, region) -> ObjectSpec:
    color, shape = combo
    pos = placer.sample(SHAPES[shape].radius, region)
    return ObjectSpec(name, shape, color, (float(pos[0]), float(pos[1])), _yaw(rng))


def _target_region(split: str) -> str:
    return "heldout" if _unseen_position(split) else "train"


def _layout_reach(rng: np.random.Generator, split: str):
    placer = _Placer(rng)
    target = _target_combo(rng, split)
    objects = [_movable(rng, placer, "target", target, _target_region(split))]
    used = [target]
    for i in range(2):
        combo = _distractor_combo(rng, used)
        used.append(combo)
        objects.append(_movable(rng, placer, f"distractor{i}", combo, "table"))
    return objects, "target", None


_layout_pick = _layout_reach


def _layout_push(rng: np.random.Generator, split: str):
    placer = _Placer(rng)
    target = _target_combo(rng, split)
    radius = SHAPES[target[1]].radius
    zone_colors = rng.choice(len(COLOR_NAMES), size=2, replace=False)
    for _ in range(500):
        trial = _Placer(rng)
        obj_pos = trial.sample(radius, _target_region(split))
        angle = rng.uniform(-math.pi, math.pi)
        dist = rng.uniform(0.13, 0.2)
        zone_pos = obj_pos + dist * np.array([math.cos(angle), math.sin(angle)])
        direction = (zone_pos - obj_pos) / dist
        start = obj_pos - direction * (radius + 0.06)  # where the pusher comes down
        if not (_in_box(zone_pos, TABLE_REGION) and _in_box(start, TABLE_REGION)):
            continue
        if not trial.free(zone_pos, SHAPES["zone"].radius * 1.2):
            continue
        trial.add(zone_pos, SHAPES["zone"].radius * 1.2)
        trial.keepout.append((start, zone_pos, 0.05))
        placer = trial
        break
    else:  # pragma: no cover - the table is large enough
        raise _Crowded("could not lay out the push task")
    objects = [
        ObjectSpec("target", target[1], target[0], (float(obj_pos[0]), float(obj_pos[1])), _yaw(rng)),
        ObjectSpec("zone", "zone", COLOR_NAMES[zone_colors[0]], (float(zone_pos[0]), float(zone_pos[1]))),
    ]
    other_zone = placer.sample(SHAPES["zone"].radius, "table")
    objects.append(ObjectSpec("zone_other", "zone", COLOR_NAMES[zone_colors[1]], (float(other_zone[0]),
                                                                                   float(other_zone[1]))))
    objects.append(_movable(rng, placer, "distractor0", _distractor_combo(rng, [target]), "table"))
    return objects, "target", "zone"


def _layout_put_in(rng: np.random.Generator, split: str):
    placer = _Placer(rng)
    target = _target_combo(rng, split)
    objects = [_movable(rng, placer, "target", target, _target_region(split))]
    bin_colors = rng.choice(len(COLOR_NAMES), size=2, replace=False)
    for i, name in enumerate(("bin", "bin_other")):
        pos = placer.sample(SHAPES["bin"].radius, "table")
        objects.append(ObjectSpec(name, "bin", COLOR_NAMES[bin_colors[i]], (float(pos[0]), float(pos[1]))))
    objects.append(_movable(rng, placer, "distractor0", _distractor_combo(rng, [target]), "table"))
    return objects, "target", "bin"


def _layout_stack(rng: np.random.Generator, split: str):
    placer = _Placer(rng)
    target = _target_combo(rng, split)
    objects = [_movable(rng, placer, "target", target, _target_region(split))]
    base = _distractor_combo(rng, [target], shapes=("block", "cylinder", "hexagon"))
    objects.append(_movable(rng, placer, "base", base, "table"))
    objects.append(_movable(rng, placer, "distractor0", _distractor_combo(rng, [target, base]), "table"))
    return objects, "target", "base"


def _layout_press(rng: np.random.Generator, split: str):
    placer = _Placer(rng)
    colors = HELDOUT_BUTTON_COLORS if _unseen_object(split) else TRAIN_BUTTON_COLORS
    target_color = colors[int(rng.integers(len(colors)))]
    others = [c for c in TRAIN_BUTTON_COLORS if c != target_color]
    picked = rng.choice(len(others), size=2, replace=False)
    pos = placer.sample(SHAPES["button"].radius, _target_region(split))
    objects = [ObjectSpec("target", "button", target_color, (float(pos[0]), float(pos[1])))]
    for i, k in enumerate(picked):
        pos = placer.sample(SHAPES["button"].radius, "table")
        objects.append(ObjectSpec(f"button{i}", "button", others[k], (float(pos[0]), float(pos[1]))))
    objects.append(_movable(rng, placer, "distractor0", _distractor_combo(rng, []), "table"))
    return objects, "target", None


# ---------------------------------------------------------------------------------------- success


def _pos(state: WorldState, name: str) -> np.ndarray:
    return np.asarray(state.positions[name], dtype=float)


def success_reach(ep: EpisodeSpec, state: WorldState) -> bool:
    obj = ep.target_object
    p = _pos(state, obj.name)
    top = p[2] + obj.info.half_height
    ee = np.asarray(state.ee_pos, float)
    return bool(np.linalg.norm(ee[:2] - p[:2]) < 0.03 and -0.03 < ee[2] - top < 0.06)


def success_push(ep: EpisodeSpec, state: WorldState) -> bool:
    p, zone = _pos(state, ep.target), _pos(state, ep.goal)
    on_table = p[2] < ep.target_object.info.half_height + 0.01
    return bool(on_table and np.all(np.abs(p[:2] - zone[:2]) < ZONE_HALF - 0.01))


def success_pick(ep: EpisodeSpec, state: WorldState) -> bool:
    return bool(_pos(state, ep.target)[2] - ep.target_object.info.half_height > 0.06)


def success_put_in(ep: EpisodeSpec, state: WorldState) -> bool:
    p, b = _pos(state, ep.target), _pos(state, ep.goal)
    inside = np.all(np.abs(p[:2] - b[:2]) < BIN_INNER_HALF - 0.005)
    resting = p[2] < BIN_HEIGHT + ep.target_object.info.half_height
    return bool(inside and resting and ep.target not in state.gripper_contacts)


def success_stack(ep: EpisodeSpec, state: WorldState) -> bool:
    a, b = _pos(state, ep.target), _pos(state, ep.goal)
    expected = ep.target_object.info.half_height + object_top_z(ep.goal_object) - ep.goal_object.info.half_height
    dz = a[2] - b[2]
    return bool(
        np.linalg.norm(a[:2] - b[:2]) < 0.03 and abs(dz - expected) < 0.012 and ep.target not in state.gripper_contacts
    )


def success_press(ep: EpisodeSpec, state: WorldState) -> bool:
    pressed = {name for name, depth in state.button_depth.items() if depth >= BUTTON_PRESSED}
    return pressed == {ep.target}


# ---------------------------------------------------------------------------------------- the tasks

TASKS: dict[str, TaskSpec] = {
    task.name: task
    for task in (
        TaskSpec(
            "reach",
            "move the gripper just above the named object",
            ("reach the {obj}", "move the gripper to the {obj}", "touch the {obj}", "go to the {obj}"),
            ("bring your hand over to the {obj}", "position the end effector right above the {obj}"),
            80,
            _layout_reach,
            success_reach,
        ),
        TaskSpec(
            "push",
            "push the named object into the zone of the named colour",
            (
                "push the {obj} into the {goal} zone",
                "slide the {obj} onto the {goal} square",
                "shove the {obj} to the {goal} area",
            ),
            ("nudge the {obj} until it sits in the {goal} zone", "move the {obj} into the {goal} region by pushing it"),
            160,
            _layout_push,
            success_push,
        ),
        TaskSpec(
            "pick",
            "grasp the named object and lift it off the table",
            ("pick up the {obj}", "lift the {obj}", "grab the {obj} and raise it", "raise the {obj} off the table"),
            ("take the {obj} up into the air", "hoist the {obj} above the table"),
            120,
            _layout_pick,
            success_pick,
        ),
        TaskSpec(
            "put_in",
            "put the named object into the bin of the named colour",
            (
                "put the {obj} in the {goal} bin",
                "place the {obj} into the {goal} box",
                "drop the {obj} in the {goal} container",
            ),
            (
                "the {obj} belongs in the {goal} bin, put it there",
                "move the {obj} so it ends up inside the {goal} tray",
            ),
            180,
            _layout_put_in,
            success_put_in,
        ),
        TaskSpec(
            "stack",
            "stack the named object on the other named object",
            ("stack the {obj} on the {goal}", "put the {obj} on top of the {goal}", "place the {obj} onto the {goal}"),
            ("set the {obj} down on the {goal}", "build a tower with the {obj} resting on the {goal}"),
            180,
            _layout_stack,
            success_stack,
        ),
        TaskSpec(
            "press",
            "press the button of the named colour",
            ("press the {color} button", "push the {color} button", "hit the {color} button"),
            ("push down on the {color} button", "activate the {color} button"),
            100,
            _layout_press,
            success_press,
        ),
    )
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}' (known: {list(TASKS)})")
    return TASKS[name]


def describe_object(obj: ObjectSpec) -> str:
    if obj.shape in ("zone", "bin", "button"):
        return obj.color
    return f"{obj.color} {obj.shape}"


def sample_episode(task: str, split: str, seed: int) -> EpisodeSpec:
    """A deterministic episode for (task, split, seed)."""
    spec = get_task(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (known: {list(SPLITS)})")
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(task.encode()), SPLITS.index(split)])
    rng = np.random.default_rng(seq)
    for _ in range(50):
        try:
            objects, target, goal = spec.layout(rng, split)
            break
        except _Crowded:
            continue  # the same generator continues, so the retry is deterministic too
    else:  # pragma: no cover
        raise RuntimeError(f"could not lay out task '{task}' split '{split}' seed {seed}")
    by_name = {o.name: o for o in objects}
    templates = spec.templates(split)
    template = templates[int(rng.integers(len(templates)))]
    words = {"obj": describe_object(by_name[target]), "color": by_name[target].color}
    if goal is not None:
        words["goal"] = describe_object(by_name[goal])
    return EpisodeSpec(
        task=task,
        split=split,
        seed=int(seed),
        instruction=template.format(**words),
        objects=tuple(objects),
        target=target,
        goal=goal,
        max_steps=spec.max_steps,
    )


# Counterfactual episodes (`uam collect --all-targets`): the layout of seed s with its k-th other object
# named instead of the target is recorded as episode id s + k * RETARGET_STRIDE, so that datasets keep
# one file per (task, id) and the layout stays recoverable from the id.
RETARGET_STRIDE = 10_000_000
# Tasks whose expert can take another object of the layout as its target -> the shape that object must
# have (press names a button; reach any object: None).
RETARGET_TASKS: dict[str, str | None] = {"reach": None, "press": "button"}


def retarget_id(seed: int, k: int) -> int:
    if not 0 <= seed < RETARGET_STRIDE:
        raise ValueError(f"layout seed {seed} outside [0, {RETARGET_STRIDE}) cannot be retargeted")
    return seed + k * RETARGET_STRIDE


def split_retarget_id(episode_id: int) -> tuple[int, int]:
    """(layout seed, k) of an episode id from retarget_id (k = 0: the layout's own target)."""
    return episode_id % RETARGET_STRIDE, episode_id // RETARGET_STRIDE


def retarget(spec: EpisodeSpec, k: int) -> EpisodeSpec:
    """The same layout with its k-th other object named instead of the target (k = 0: unchanged).

    Why: in a layout the instruction is the only thing that says which object to go to, but the
    sampler puts targets in the training region and distractors anywhere, so a policy can score by
    going to the most central object without reading the instruction -- and the trained ones did
    (docs/training_notes.md, experiments 6-7). Recording the same layout once per named object leaves
    the instruction as the only cue that tells the demonstrations apart.
    """
    if k == 0:
        return spec
    if spec.task not in RETARGET_TASKS or spec.goal is not None:
        raise ValueError(f"task '{spec.task}' cannot be retargeted (only {list(RETARGET_TASKS)}: a single object "
                         "to go to or press, another of the layout's will do)")
    shape = RETARGET_TASKS[spec.task]
    others = [o for o in spec.objects if o.name != spec.target and shape in (None, o.shape)]
    if not 1 <= k <= len(others):
        raise ValueError(f"layout seed {spec.seed} has {len(others)} other objects, asked for number {k}")
    named = others[k - 1]
    old_words, new_words = describe_object(spec.target_object), describe_object(named)
    if [describe_object(o) for o in spec.objects].count(new_words) != 1:
        raise ValueError(f"layout seed {spec.seed}: another object is also a {new_words} (ambiguous)")
    if spec.instruction.count(old_words) != 1:
        raise ValueError(f"instruction {spec.instruction!r} does not name '{old_words}' exactly once")
    return replace(spec, target=named.name, instruction=spec.instruction.replace(old_words, new_words))


def success(ep: EpisodeSpec, state: WorldState) -> bool:
    return get_task(ep.task).success(ep, state)
