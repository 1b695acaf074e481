"""`uam collect`: real expert episodes from the sim, resumable, split-safe; VL questions that are right."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from uam_ros.train.collect import (
    EpisodeJob,
    SceneObject,
    add_arguments,
    handoff_step,
    pick_vl_pairs,
    record_expert_episode,
    run,
    vl_candidates,
)
from uam_ros.train.dataset_format import DatasetReader

os.environ.setdefault("MUJOCO_GL", "egl")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_vl_questions_are_answerable_and_correct():
    scene = [
        SceneObject("red", "block", u=0.2, depth=1.0),
        SceneObject("blue", "cross", u=0.7, depth=0.8),
        SceneObject("red", "zone", u=0.5, depth=0.9),
    ]
    candidates = vl_candidates(scene, np.random.default_rng(0))
    answers = {prompt: answer for _, prompt, answer in candidates}
    assert answers["list the objects from left to right:"] == "red block, red zone, blue cross"
    assert answers["what color is the cross?"] == "blue"
    assert "what is the red object?" not in answers  # two red objects: ambiguous, never asked
    assert answers["how many objects are there?"] == "three"
    for prompt, answer in answers.items():
        if prompt.startswith("is the red block left of the blue cross"):
            assert answer == "yes"
        if prompt.startswith("is the red block right of the blue cross"):
            assert answer == "no"
        if prompt.startswith("how many red objects"):
            assert answer == "two"
        if prompt.startswith("which is closer to the camera") and "red block" in prompt and "blue cross" in prompt:
            assert answer == "blue cross"
    chosen = pick_vl_pairs(candidates, np.random.default_rng(1), 6)
    assert chosen[0][0] == "caption" and len(chosen) == 6
    assert len({kind for kind, _, _ in chosen}) >= 4  # spread over the kinds


def test_collect_records_resumes_and_keeps_splits_apart(tmp_path, capsys):
    from uam_ros.sim.tasks import TASKS, is_train_combo

    out = tmp_path / "train"
    common = ("--tasks", "reach", "--episodes", "1", "--seed", "3", "--image-size", "48", "--quiet")
    assert run(_args(*common, "--out", str(out), "--split", "train", "--vl-pairs", "6")) == 0
    reader = DatasetReader(out)
    assert reader.meta.split == "train" and reader.meta.num_episodes == 1 and not reader.meta.failures
    episode = reader.load(0)
    assert episode.info.seed == 3 and episode.info.success and episode.frames.shape[1:] == (48, 48, 3)
    assert episode.length == episode.info.steps >= 5
    # The commanded targets lead the measured joints: the arm moves towards them.
    assert np.abs(episode.joint_positions[-1] - episode.actions[-2]).max() < np.abs(
        episode.joint_positions[0] - episode.actions[-2]).max()
    target = next(o for o in episode.info.objects if o["name"] == episode.info.target)
    assert is_train_combo(target["color"], target["shape"])
    templates = [t.format(obj=f"{target['color']} {target['shape']}") for t in TASKS["reach"].train_templates]
    assert episode.info.instruction in templates
    images, pairs = reader.load_vl()
    assert len(pairs) == 6 and images.shape[0] == 1 and images.shape[1:] == (48, 48, 3)
    assert images.std() > 5  # a rendered scene, not a blank frame

    mtime = reader.episode_files[0].stat().st_mtime_ns
    assert run(_args(*common, "--out", str(out), "--split", "train")) == 0  # resumed: nothing to redo
    assert "already done" in capsys.readouterr().err
    assert reader.episode_files[0].stat().st_mtime_ns == mtime

    assert run(_args(*common, "--out", str(out), "--split", "heldout")) == 2  # held-out into a train dataset
    assert "'split'" in capsys.readouterr().err
    assert len(DatasetReader(out)) == 1


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--workers"):
        run(_args("--out", str(tmp_path / "x"), "--workers", "0"))
    with pytest.raises(SystemExit, match="unknown task"):
        run(_args("--out", str(tmp_path / "x"), "--tasks", "juggle"))
    with pytest.raises(SystemExit, match="--handoff needs 0 <= MIN <= MAX"):
        run(_args("--out", str(tmp_path / "x"), "--handoff", "9", "3"))
    with pytest.raises(SystemExit, match="--policy-steps must be >= 1"):
        run(_args("--out", str(tmp_path / "x"), "--policy-steps", "0"))
    with pytest.raises(SystemExit, match="no such checkpoint"):
        run(_args("--out", str(tmp_path / "x"), "--recovery-from", str(tmp_path / "missing")))
    assert not (tmp_path / "x").exists()


def test_handoff_steps_are_seeded_by_the_episode_and_cover_the_range():
    steps = [handoff_step(seed, 4, 56) for seed in range(400)]
    assert steps == [handoff_step(seed, 4, 56) for seed in range(400)]  # a re-run hands off identically
    assert min(steps) == 4 and max(steps) == 56  # both ends reachable
    assert len(set(steps)) > 40  # spread, not a constant
    assert handoff_step(7, 9, 9) == 9


@pytest.mark.parametrize("policy_steps", [None, 2])
def test_recovery_episode_starts_where_the_policy_left_the_arm(policy_steps):
    """The expert takes over from the policy's state: the first recorded joint state is the one an
    independent run of the same policy, seed, step count and replanning rate ends in -- not the home pose."""
    import torch

    from uam_ros.resources import models_dir
    from uam_ros.sim.tasks import sample_episode
    from uam_ros.sim.world import SimWorld
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint = str(models_dir() / "default" / "franka_panda")
    seed, handoff = 302, 12
    job = EpisodeJob("franka_panda", "reach", "train", seed, "scene", (48, 48), None, checkpoint, handoff,
                     policy_steps)
    outcome = record_expert_episode(job)
    assert outcome.success and not outcome.policy_succeeded
    episode = outcome.episode
    assert episode.info.handoff_step == handoff and episode.info.expert == "scripted recovery"
    assert episode.info.handoff_policy == checkpoint
    assert episode.time_s[0] == pytest.approx(handoff * 0.1, abs=1e-6)  # 10 Hz: the clock ran on

    spec = sample_episode("reach", "train", seed)
    world = SimWorld("franka_panda", spec)
    home = world.joint_state()[1].copy()
    policy = SimPolicy(checkpoint, n_action_steps=policy_steps)
    assert policy.run(world, spec.instruction, torch.Generator().manual_seed(seed), handoff) == (handoff, False)
    np.testing.assert_allclose(episode.joint_positions[0], world.joint_state()[1], atol=1e-5)
    assert np.abs(episode.joint_positions[0] - home).max() > 0.05  # the policy moved the arm
    world.close()


def collect_all_targets(tmp_path, task: str, seed: int) -> list:
    """`uam collect --all-targets` of one layout: its three episodes, each a different object named."""
    from uam_ros.sim.tasks import split_retarget_id

    out = tmp_path / f"allt_{task}"
    assert run(_args("--tasks", task, "--episodes", "1", "--seed", str(seed), "--image-size", "48", "--quiet",
                     "--all-targets", "--out", str(out))) == 0
    episodes = [DatasetReader(out).load(i) for i in range(3)]
    assert sorted(split_retarget_id(e.info.seed) for e in episodes) == [(seed, 0), (seed, 1), (seed, 2)]
    return episodes


def test_all_targets_records_each_object_of_a_layout_named_in_turn(tmp_path):
    episodes = collect_all_targets(tmp_path, "reach", 5)
    assert len({e.info.target for e in episodes}) == 3 and len({e.info.instruction for e in episodes}) == 3
    assert all(e.info.success and e.info.objects == episodes[0].info.objects for e in episodes)
    # the same first frame, three different demonstrations: only the instruction tells them apart
    assert all(np.array_equal(e.frames[0], episodes[0].frames[0]) for e in episodes)
    ends = [e.ee_positions[-1][:2] for e in episodes]
    for e, end in zip(episodes, ends):
        named = next(o for o in e.info.objects if o["name"] == e.info.target)
        assert np.linalg.norm(end - np.array(named["pos"])) < 0.05
    with pytest.raises(SystemExit, match="reach and press only"):
        run(_args("--tasks", "reach", "pick", "--episodes", "1", "--all-targets", "--out", str(tmp_path / "x")))


def test_all_targets_press_records_each_button_named_in_turn_and_pressed(tmp_path):
    episodes = collect_all_targets(tmp_path, "press", 3)
    buttons = {o["name"] for o in episodes[0].info.objects if o["shape"] == "button"}
    assert {e.info.target for e in episodes} == buttons  # every button once, never the movable distractor
    assert len({e.info.instruction for e in episodes}) == 3 and all(e.info.success for e in episodes)
    assert all(np.array_equal(e.frames[0], episodes[0].frames[0]) for e in episodes)
