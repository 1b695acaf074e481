"""`uam eval`'s table and plot (uam_ros.train.eval_report) on constructed reports."""

from __future__ import annotations

import pytest

from uam_ros.train.eval_report import format_table, mean_over_tasks, plot_report, task_rows
from uam_ros.train.study_metrics import wilson_interval


def episode(success: bool, nearest_is_target: bool | None = None) -> dict:
    row = {"seed": 0, "success": success}
    if nearest_is_target is not None:
        row["final_tcp_nearest_is_target"] = nearest_is_target
    return row


def closed_loop(**tasks: list[dict]) -> dict:
    return {"checkpoint": "ckpt", "split": "train", "n_action_steps": 2, "seed": 100000,
            "inference_ms_median": 12.5, "wall_s": 30.0,
            "tasks": {name: {"successes": sum(e["success"] for e in eps), "episodes": len(eps),
                             "episodes_detail": eps} for name, eps in tasks.items()}}


def test_rows_count_failures_by_kind_and_carry_the_wilson_interval():
    reach = [episode(True, True)] * 7 + [episode(False, False)] * 2 + [episode(False, True)]
    rows = task_rows(closed_loop(reach=reach))
    assert rows == [{"task": "reach", "successes": 7, "episodes": 10, "rate": 0.7,
                     "ci95": list(wilson_interval(7, 10)), "wrong_object": 2, "near_miss": 1}]


def test_the_mean_weights_every_task_once_not_every_episode():
    report = closed_loop(reach=[episode(True, True)] * 8 + [episode(False, True)] * 2,
                         pick=[episode(True, True), episode(False, False)])
    assert mean_over_tasks(task_rows(report)) == pytest.approx((0.8 + 0.5) / 2)  # pooled would be 9/12


def test_ros_episodes_without_the_nearest_object_show_no_failure_split():
    rows = task_rows(closed_loop(reach=[episode(True), episode(False)]))
    assert rows[0]["wrong_object"] is None and rows[0]["near_miss"] is None
    table = format_table({"closed_loop": closed_loop(reach=[episode(True), episode(False)])})
    reach_row = table.splitlines()[3].split()
    assert reach_row[0] == "reach" and reach_row[-2:] == ["-", "-"]


def test_table_says_whether_the_80_percent_target_is_met():
    low = format_table({"closed_loop": closed_loop(reach=[episode(True, True)] * 3 + [episode(False, False)])})
    high = format_table({"closed_loop": closed_loop(reach=[episode(True, True)] * 9 + [episode(False, False)])})
    assert "75 %" in low and "not met" in low
    assert "90 %" in high and "target >= 80 %: met" in high
    assert "12.5 ms" in high


def test_table_lists_vqa_per_kind_and_overall():
    vqa = {"checkpoint": "ckpt", "pairs": 30, "accuracy": 0.5,
           "per_kind": {"color": {"accuracy": 0.25, "pairs": 20}, "shape": {"accuracy": 1.0, "pairs": 10}}}
    lines = format_table({"vqa": vqa}).splitlines()
    assert any(line.split() == ["color", "25", "%", "20"] for line in lines)
    assert any(line.split() == ["shape", "100", "%", "10"] for line in lines)
    assert any(line.split() == ["all", "50", "%", "30"] for line in lines)
    assert not any("caption F1" in line for line in lines)  # not measured: no line
    lines = format_table({"vqa": {**vqa, "caption_f1": {"mean": 0.125, "pairs": 8}}}).splitlines()
    assert any(line.split()[:5] == ["caption", "F1", "12", "%", "8"] for line in lines), lines


def test_plot_writes_a_png_and_refuses_an_empty_report(tmp_path):
    report = {"closed_loop": closed_loop(reach=[episode(True, True), episode(False, False)]),
              "vqa": {"checkpoint": "ckpt", "pairs": 2, "accuracy": 0.5, "per_kind": {"color": {"accuracy": 0.5,
                                                                                                  "pairs": 2}}}}
    path = plot_report(report, tmp_path / "deep" / "eval.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_report({}, tmp_path / "empty.png")
