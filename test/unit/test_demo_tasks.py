"""`uam demo` runs a trained model on the tasks it was trained on unless told otherwise."""

from __future__ import annotations

import json

from uam_ros.demo import EXPERT_DEMO_TASKS, _trained_tasks


def test_trained_tasks_come_from_the_checkpoint_meta(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"meta": {"tasks": ["press", "reach"]}}))
    assert _trained_tasks(str(tmp_path)) == ["press", "reach"]


def test_unknown_tasks_fall_back_to_nothing(tmp_path):
    assert _trained_tasks("") == []
    assert _trained_tasks("expert://reach?seed=0") == []
    assert _trained_tasks(str(tmp_path)) == []  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    assert _trained_tasks(str(tmp_path)) == []
    assert set(EXPERT_DEMO_TASKS) == {"reach", "pick", "press"}


def test_exit_code_separates_a_failed_task_from_a_broken_demo():
    from uam_ros.demo import EpisodeResult, demo_exit_code

    def episode(success: bool, commands: int) -> EpisodeResult:
        return EpisodeResult("franka_panda", "reach", "train", 0, "reach the red block", success, None, 10.0,
                             commands, "v.mp4")

    assert demo_exit_code([episode(True, 20), episode(False, 30)], require_success=False) == 0
    assert demo_exit_code([episode(True, 20), episode(False, 30)], require_success=True) == 1
    assert demo_exit_code([episode(True, 20), episode(False, 0)], require_success=False) == 1  # no command
    assert demo_exit_code([], require_success=False) == 1
    assert demo_exit_code([episode(True, 5)], require_success=True) == 0
