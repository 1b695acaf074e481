"""The counterfactual grounding probe (uam_ros.train.grounding)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from uam_ros.train.grounding import grounding_probe, heading_object, summarize

os.environ.setdefault("MUJOCO_GL", "egl")

OBJECTS = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([-1.0, -1.0])}


def test_heading_is_the_object_in_the_direction_of_motion_not_the_nearest_end_point():
    start = np.zeros(2)
    assert heading_object(start, np.array([0.1, 0.01]), OBJECTS) == "a"  # short move, still towards a
    assert heading_object(start, np.array([0.02, 0.3]), OBJECTS) == "b"
    assert heading_object(start, np.array([-0.2, -0.25]), OBJECTS) == "c"
    assert heading_object(start, start.copy(), OBJECTS) == ""  # no motion: no heading


def test_summary_counts_named_target_and_distinct_headings():
    layouts = [
        {"target": "a", "headings": {"a": "a", "b": "b", "c": "c"}},  # follows every instruction
        {"target": "a", "headings": {"a": "a", "b": "a", "c": "a"}},  # ignores it, right by luck
        {"target": "b", "headings": {"a": "c", "b": "c", "c": "c"}},  # ignores it, wrong
    ]
    result = summarize(layouts)
    assert result["layouts"] == 3
    assert result["accuracy"] == pytest.approx((3 + 1 + 1) / 9)
    assert result["target"] == pytest.approx(2 / 3)
    assert result["distinct"] == pytest.approx(1 / 3)
    assert summarize([{"target": "a", "headings": {"a": "", "b": "", "c": ""}}])["distinct"] == 0.0


def test_probe_runs_on_a_checkpoint_and_names_every_object(tmp_path, panda):
    from uam_ros.model.checkpoint import init_checkpoint

    ckpt = init_checkpoint(tmp_path / "ckpt", state_dim=len(panda.action_home), action_dim=len(panda.action_home),
                           joint_names=panda.action_joint_names, robot_name=panda.name, seed=0,
                           instructions=["reach the red cube"], state_mean=panda.action_home,
                           state_std=[0.5] * len(panda.action_home), action_mean=panda.action_home,
                           action_std=[0.05] * len(panda.action_home))
    result = grounding_probe(ckpt, episodes=2, seed=100_000)
    assert result["layouts"] == 2 and result["skipped"] == 0
    for layout in result["layouts_detail"]:
        assert set(layout["headings"]) == {"target", "distractor0", "distractor1"}
        assert set(layout["headings"].values()) <= {"target", "distractor0", "distractor1", ""}
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["distinct"] <= 1.0
