"""uam demo's reading of an episode: success latched at its first report, within the task's budget."""

from __future__ import annotations

import pytest

from uam_ros.demo import EpisodeTimer


def test_success_is_latched_when_the_arm_drifts_out_of_the_goal_region():
    episode = EpisodeTimer()
    episode.on_command(10.0)
    episode.on_success(False, 10.5)
    episode.on_success(True, 12.0)
    episode.on_success(True, 12.5)
    episode.on_success(False, 12.6)  # the arm drifted out: the episode's last report is False
    assert episode.time_to_success_s(budget_s=8.0) == pytest.approx(2.0)


def test_success_after_the_budget_or_without_a_command_does_not_count():
    late = EpisodeTimer()
    late.on_command(0.0)
    late.on_success(True, 8.5)
    assert late.time_to_success_s(budget_s=8.0) is None
    assert late.time_to_success_s(budget_s=9.0) == pytest.approx(8.5)
    never_commanded = EpisodeTimer()
    never_commanded.on_success(True, 1.0)
    assert never_commanded.time_to_success_s(budget_s=8.0) is None


def test_commands_are_counted_from_the_first():
    episode = EpisodeTimer()
    for t in (3.0, 3.1, 3.2):
        episode.on_command(t)
    assert (episode.commands, episode.first_command_s) == (3, 3.0)
