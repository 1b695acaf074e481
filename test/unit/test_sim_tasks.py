"""Task success predicates on constructed states, and seeded train / held-out episode sampling."""

import re
from dataclasses import replace

import numpy as np
import pytest

from uam_ros.sim.objects import BUTTON_PRESSED
from uam_ros.sim.tasks import (
    HELDOUT_BUTTON_COLORS,
    HELDOUT_COMBOS,
    HELDOUT_SHAPES,
    HELDOUT_SUBSPLITS,
    SPLIT_FACTORS,
    SPLITS,
    TASK_NAMES,
    TASKS,
    TRAIN_BUTTON_COLORS,
    TRAIN_COMBOS,
    TRAIN_REGION,
    WorldState,
    sample_episode,
    success,
)

SEEDS = range(40)


def resting_state(ep, ee=(0.3, 0.0, 0.5), **overrides):
    """Every object where the episode put it, resting on the table; gripper open and away."""
    positions = {o.name: np.array([o.pos[0], o.pos[1], o.info.half_height]) for o in ep.objects}
    positions.update({k: np.asarray(v, float) for k, v in overrides.items()})
    depth = {o.name: 0.0 for o in ep.objects if o.shape == "button"}
    return WorldState(positions=positions, ee_pos=np.asarray(ee, float), gripper_open=1.0, button_depth=depth)


def test_six_tasks():
    assert set(TASK_NAMES) == {"reach", "push", "pick", "put_in", "stack", "press"}


def test_nothing_is_solved_at_the_start():
    for task in TASK_NAMES:
        for split in ("train", "heldout"):
            for seed in range(5):
                ep = sample_episode(task, split, seed)
                assert not success(ep, resting_state(ep)), (task, split, seed)


def test_reach_predicate():
    ep = sample_episode("reach", "train", 3)
    t = ep.target_object
    above = np.array([t.pos[0], t.pos[1], 2 * t.info.half_height + 0.02])
    assert success(ep, resting_state(ep, ee=above))
    assert not success(ep, resting_state(ep, ee=above + [0.05, 0, 0]))  # beside it
    assert not success(ep, resting_state(ep, ee=above + [0, 0, 0.1]))  # too high
    d = ep.object("distractor0")
    assert not success(ep, resting_state(ep, ee=[d.pos[0], d.pos[1], above[2]]))  # the wrong object


def test_push_predicate():
    ep = sample_episode("push", "train", 4)
    h = ep.target_object.info.half_height
    zone, other = ep.object("zone"), ep.object("zone_other")
    assert success(ep, resting_state(ep, target=[zone.pos[0] + 0.03, zone.pos[1] - 0.03, h]))
    assert not success(ep, resting_state(ep, target=[zone.pos[0] + 0.07, zone.pos[1], h]))  # outside the zone
    assert not success(ep, resting_state(ep, target=[other.pos[0], other.pos[1], h]))  # the wrong zone
    assert not success(ep, resting_state(ep, target=[zone.pos[0], zone.pos[1], h + 0.1]))  # held above it


def test_pick_predicate():
    ep = sample_episode("pick", "heldout", 5)
    t = ep.target_object
    assert success(ep, resting_state(ep, target=[t.pos[0], t.pos[1], t.info.half_height + 0.1]))
    assert not success(ep, resting_state(ep, target=[t.pos[0], t.pos[1], t.info.half_height + 0.02]))
    d = ep.object("distractor0")
    assert not success(ep, resting_state(ep, distractor0=[d.pos[0], d.pos[1], 0.2]))


def test_put_in_predicate():
    ep = sample_episode("put_in", "train", 6)
    h = ep.target_object.info.half_height
    b, other = ep.object("bin"), ep.object("bin_other")
    inside = [b.pos[0] + 0.02, b.pos[1], 0.004 + h]
    assert success(ep, resting_state(ep, target=inside))
    held = resting_state(ep, target=inside)
    held.gripper_contacts = frozenset({"target"})
    assert not success(ep, held)  # not released
    assert not success(ep, resting_state(ep, target=[other.pos[0], other.pos[1], 0.004 + h]))
    assert not success(ep, resting_state(ep, target=[b.pos[0], b.pos[1], 0.2]))  # hovering over the bin


def test_stack_predicate():
    ep = sample_episode("stack", "heldout", 7)
    a, b = ep.target_object, ep.goal_object
    on_top = [b.pos[0] + 0.01, b.pos[1], 2 * b.info.half_height + a.info.half_height]
    assert success(ep, resting_state(ep, target=on_top))
    held = resting_state(ep, target=on_top)
    held.gripper_contacts = frozenset({"target"})
    assert not success(ep, held)
    assert not success(ep, resting_state(ep, target=[b.pos[0] + 0.06, b.pos[1], a.info.half_height]))  # beside
    assert not success(ep, resting_state(ep, target=[b.pos[0], b.pos[1], on_top[2] + 0.05]))  # above, in the air


def test_press_predicate():
    ep = sample_episode("press", "train", 8)
    state = resting_state(ep)
    state.button_depth["target"] = BUTTON_PRESSED + 0.001
    assert success(ep, state)
    state.button_depth["button0"] = BUTTON_PRESSED + 0.001
    assert not success(ep, state)  # a wrong button too
    state.button_depth["target"] = 0.0
    assert not success(ep, state)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_sampling_is_deterministic_per_seed(task):
    for split in ("train", "heldout"):
        assert sample_episode(task, split, 11) == sample_episode(task, split, 11)
        distinct = {sample_episode(task, split, s).objects for s in range(10)}
        assert len(distinct) == 10


def _template_regex(template):
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + "$")


def _matches(templates, text):
    return any(_template_regex(t).match(text) for t in templates)


def _inside_train_region(pos):
    x0, x1, y0, y1 = TRAIN_REGION
    return x0 <= pos[0] <= x1 and y0 <= pos[1] <= y1


@pytest.mark.parametrize("task", TASK_NAMES)
def test_train_split_uses_training_objects_paraphrases_and_area(task):
    spec = TASKS[task]
    for seed in SEEDS:
        ep = sample_episode(task, "train", seed)
        t = ep.target_object
        assert _matches(spec.train_templates, ep.instruction)
        assert not _matches(spec.heldout_templates, ep.instruction)
        assert _inside_train_region(t.pos)
        for obj in ep.objects:
            if obj.info.movable:
                assert (obj.color, obj.shape) in TRAIN_COMBOS, (seed, obj)
                assert obj.shape not in HELDOUT_SHAPES
        if task == "press":
            assert t.color in TRAIN_BUTTON_COLORS


@pytest.mark.parametrize("task", TASK_NAMES)
def test_heldout_split_has_unseen_objects_paraphrases_and_positions(task):
    spec = TASKS[task]
    shapes = set()
    for seed in SEEDS:
        ep = sample_episode(task, "heldout", seed)
        t = ep.target_object
        assert _matches(spec.heldout_templates, ep.instruction)
        assert not _matches(spec.train_templates, ep.instruction), ep.instruction
        assert not _inside_train_region(t.pos), (seed, t.pos)
        if task == "press":
            assert t.color in HELDOUT_BUTTON_COLORS
        else:
            assert (t.color, t.shape) in HELDOUT_COMBOS and (t.color, t.shape) not in TRAIN_COMBOS
            shapes.add(t.shape)
    if task != "press":
        assert "cross" in shapes and len(shapes) >= 2  # both the unseen shape and unseen combinations


def test_splits_are_disjoint_by_construction():
    assert not set(TRAIN_COMBOS) & set(HELDOUT_COMBOS)
    assert not set(TRAIN_BUTTON_COLORS) & set(HELDOUT_BUTTON_COLORS)
    for spec in TASKS.values():
        assert not set(spec.train_templates) & set(spec.heldout_templates)
    ep = sample_episode("pick", "train", 0)
    with pytest.raises(ValueError):
        sample_episode("pick", "validation", 0)
    with pytest.raises(KeyError):
        sample_episode("juggle", "train", 0)
    assert replace(ep, seed=1) != ep


# ---------------------------------------------------------------- held-out sub-splits (issue #9)


def _factors(task, ep):
    """Which of the factors (combo, shape, position, paraphrase) an episode changes relative to train."""
    spec, t = TASKS[task], ep.target_object
    found = set()
    if task == "press":
        if t.color in HELDOUT_BUTTON_COLORS:
            found.add("button")
    elif t.shape in HELDOUT_SHAPES:
        found.add("shape")
    elif (t.color, t.shape) not in TRAIN_COMBOS:
        found.add("combo")
    if not _inside_train_region(t.pos):
        found.add("position")
    if _matches(spec.heldout_templates, ep.instruction):
        assert not _matches(spec.train_templates, ep.instruction), ep.instruction
        found.add("paraphrase")
    else:
        assert _matches(spec.train_templates, ep.instruction), ep.instruction
    for obj in ep.objects:  # distractors and destinations are training objects in every split
        if obj.info.movable and obj.name != "target":
            assert (obj.color, obj.shape) in TRAIN_COMBOS, (ep.split, ep.seed, obj)
    return found


EXPECTED_FACTORS = {
    "heldout_combo": {"combo"},
    "heldout_shape": {"shape"},
    "heldout_paraphrase": {"paraphrase"},
    "heldout_position": {"position"},
}


def test_subsplits_are_listed_after_the_original_two():
    from uam_ros.train import evaluate

    assert SPLITS[:2] == ("train", "heldout")  # their indices seed the episodes: never reorder
    assert evaluate.SPLITS == SPLITS  # `uam eval --split` offers every split
    from uam_ros.ros import bringup

    assert bringup.SPLITS == SPLITS  # and so do launch / `uam run` / `uam demo` / uam_sim
    assert set(HELDOUT_SUBSPLITS) == set(EXPECTED_FACTORS)
    assert set(SPLIT_FACTORS) == set(SPLITS)
    for split, factors in EXPECTED_FACTORS.items():
        assert SPLIT_FACTORS[split] == factors


@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("split", sorted(EXPECTED_FACTORS))
def test_each_subsplit_changes_exactly_its_factor(task, split):
    expected = EXPECTED_FACTORS[split]
    if task == "press" and split in ("heldout_combo", "heldout_shape"):
        expected = {"button"}  # buttons have no shape: the unseen object is an unseen button colour
    for seed in SEEDS:
        ep = sample_episode(task, split, seed)
        assert ep.split == split
        assert _factors(task, ep) == expected, (task, split, seed, ep.instruction, ep.target_object)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_train_changes_no_factor_and_heldout_changes_all(task):
    for seed in range(15):
        assert _factors(task, sample_episode(task, "train", seed)) == set()
        found = _factors(task, sample_episode(task, "heldout", seed))
        assert {"position", "paraphrase"} <= found and len(found) == 3, (task, seed, found)


def test_subsplits_are_deterministic_distinct_and_unsolved_at_the_start():
    for split in HELDOUT_SUBSPLITS:
        for task in TASK_NAMES:
            assert sample_episode(task, split, 3) == sample_episode(task, split, 3)
            assert len({sample_episode(task, split, s).objects for s in range(8)}) == 8
            for seed in range(3):
                ep = sample_episode(task, split, seed)
                assert not success(ep, resting_state(ep)), (task, split, seed)
        # a sub-split is its own stream of layouts, not a relabelled train episode
        assert sample_episode("reach", split, 0).objects != sample_episode("reach", "train", 0).objects


def test_subsplits_cover_every_unseen_object_they_promise():
    combos = {sample_episode(t, "heldout_combo", s).target_object.label
              for t in ("reach", "pick", "push") for s in range(60)}
    assert len(combos) >= 4 and not any("cross" in c for c in combos)
    colors = {sample_episode(t, "heldout_shape", s).target_object.color for t in ("reach", "pick") for s in range(60)}
    assert len(colors) >= 4


def _digest(split, seeds=range(25)):
    import hashlib

    h = hashlib.sha256()
    for task in TASK_NAMES:
        for seed in seeds:
            ep = sample_episode(task, split, seed)
            h.update(ep.instruction.encode())
            for o in ep.objects:
                h.update(f"{o.name}|{o.shape}|{o.color}|{o.pos[0]:.9f}|{o.pos[1]:.9f}|{o.yaw:.9f};".encode())
    return h.hexdigest()[:16]


def test_train_and_heldout_episodes_are_unchanged_by_the_subsplits():
    """Pinned before the sub-splits were added: datasets collected earlier stay reproducible."""
    assert _digest("train") == "fac363fd54300654"
    assert _digest("heldout") == "d5fd470003f61458"


@pytest.mark.parametrize("seed", range(20))
def test_retarget_names_another_object_of_the_same_layout(seed):
    from uam_ros.sim.tasks import describe_object, retarget, retarget_id, split_retarget_id

    spec = sample_episode("reach", "train", seed)
    assert retarget(spec, 0) is spec
    named = set()
    for k in (1, 2):
        other = retarget(spec, k)
        assert other.objects == spec.objects and other.seed == spec.seed  # the very same layout
        assert other.target != spec.target and other.target not in named
        named.add(other.target)
        words = describe_object(other.target_object)
        assert words in other.instruction and describe_object(spec.target_object) not in other.instruction
        # the same wording otherwise: only the object's description changed
        assert other.instruction.replace(words, "X") == spec.instruction.replace(describe_object(spec.target_object), "X")
        assert split_retarget_id(retarget_id(seed, k)) == (seed, k)
    assert not success(retarget(spec, 1), resting_state(spec, ee=spec.target_object.pos + (0.02,)))


@pytest.mark.parametrize("seed", range(20))
def test_retarget_press_names_another_button_only(seed):
    from uam_ros.sim.tasks import describe_object, retarget

    spec = sample_episode("press", "train", seed)
    buttons = [o for o in spec.objects if o.shape == "button"]
    assert len(buttons) == 3 and len(spec.objects) > 3  # a movable distractor too, never named
    named = {retarget(spec, k).target for k in (1, 2)}
    assert named == {o.name for o in buttons} - {spec.target}
    for k in (1, 2):
        other = retarget(spec, k)
        assert describe_object(other.target_object) in other.instruction
        assert not success(other, replace(resting_state(spec), button_depth={spec.target: 1.0}))
        assert success(other, replace(resting_state(spec), button_depth={other.target: 1.0}))
    with pytest.raises(ValueError, match="other objects"):
        retarget(spec, 3)


def test_retarget_refuses_what_it_cannot_name():
    from uam_ros.sim.tasks import retarget, retarget_id

    spec = sample_episode("reach", "train", 0)
    with pytest.raises(ValueError, match="other objects"):
        retarget(spec, len(spec.objects))
    with pytest.raises(ValueError, match="cannot be retargeted"):
        retarget(sample_episode("put_in", "train", 0), 1)
    twin = replace(spec.objects[2], color=spec.objects[1].color, shape=spec.objects[1].shape)
    with pytest.raises(ValueError, match="ambiguous"):
        retarget(replace(spec, objects=(spec.objects[0], spec.objects[1], twin)), 1)
    with pytest.raises(ValueError, match="outside"):
        retarget_id(10_000_000, 1)
