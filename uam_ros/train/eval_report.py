"""What `uam eval` shows a person: a table on the terminal and a plot, from the report's JSON dict.

The JSON (closed_loop_success / ros_closed_loop_success / vqa_accuracy, unchanged) stays the record;
this module only reads it, so a report written by an earlier run can be re-drawn the same way. The
table leads with the figure the default model is judged on (success averaged over tasks) and puts a
95 % Wilson interval next to every rate: 100 episodes leave about +-10 points, and a reader comparing
two checkpoints needs to see that. Failures are split into "wrong object" (the tool ended nearest a
distractor: a grounding error) and "near miss" (nearest the named object: a precision error), the
split that decided what to try next in docs/training_notes.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uam_ros.train.study_metrics import success_rate

SUCCESS_TARGET = 0.80  # issue #6: the default model's success on the train split, averaged over tasks


def task_rows(closed_loop: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per task: successes, episodes, rate, Wilson 95 % interval, failure kinds."""
    rows = []
    for task, result in closed_loop.get("tasks", {}).items():
        rate = success_rate(int(result["successes"]), int(result["episodes"]))
        failures = [e for e in result.get("episodes_detail", []) if not e.get("success")]
        wrong = [e for e in failures if e.get("final_tcp_nearest_is_target") is False]
        near = [e for e in failures if e.get("final_tcp_nearest_is_target") is True]
        known = len(wrong) + len(near) == len(failures)  # the ROS path does not record where failures ended
        rows.append({"task": task, "successes": rate["successes"], "episodes": rate["episodes"],
                     "rate": rate["rate"], "ci95": rate["ci95"],
                     "wrong_object": len(wrong) if known else None, "near_miss": len(near) if known else None})
    return rows


def mean_over_tasks(rows: list[dict[str, Any]]) -> float:
    """The issue's headline: the mean of the per-task rates (each task counts once, whatever its episodes)."""
    rates = [row["rate"] for row in rows if row["episodes"]]
    return sum(rates) / len(rates) if rates else float("nan")


def _percent(value: float) -> str:
    return "-" if value != value else f"{100 * value:.0f} %"  # NaN: no episodes


def format_table(report: Mapping[str, Any]) -> str:
    """The terminal table: closed-loop success per task (+ mean), VQA per question kind, latency."""
    lines: list[str] = []
    closed = report.get("closed_loop")
    if closed:
        rows = task_rows(closed)
        where = "ROS nodes, backend " + str(closed.get("backend")) if closed.get("path") == "ros" else "in-process"
        steps = closed.get("n_action_steps")
        lines.append(f"closed loop: {closed.get('checkpoint')} | split {closed.get('split')} | {where}"
                     + (f" | {steps} target(s) per chunk" if steps else "")
                     + f" | seeds {closed.get('seed')}+")
        header = f"  {'task':<12}{'success':>10}{'95 % CI':>14}{'episodes':>10}{'wrong object':>14}{'near miss':>11}"
        lines.append(header)
        lines.append("  " + "-" * (len(header) - 2))
        for row in rows:
            low, high = row["ci95"]
            interval = "-" if low != low else f"{100 * low:.0f}-{100 * high:.0f} %"
            wrong = "-" if row["wrong_object"] is None else str(row["wrong_object"])
            near = "-" if row["near_miss"] is None else str(row["near_miss"])
            lines.append(f"  {row['task']:<12}{_percent(row['rate']):>10}{interval:>14}{row['episodes']:>10}"
                         f"{wrong:>14}{near:>11}")
        mean = mean_over_tasks(rows)
        verdict = "" if mean != mean else (" (target >= 80 %: met)" if mean >= SUCCESS_TARGET
                                           else " (target >= 80 %: not met)")
        lines.append(f"  {'mean':<12}{_percent(mean):>10}  over {len(rows)} task(s){verdict}")
        extras = []
        if closed.get("inference_ms_median") is not None:
            extras.append(f"inference {closed['inference_ms_median']:.1f} ms per chunk (median)")
        if closed.get("wall_s") is not None:
            extras.append(f"wall {closed['wall_s']:.0f} s")
        if extras:
            lines.append("  " + ", ".join(extras))
    grounding = report.get("grounding")
    if grounding:
        if lines:
            lines.append("")
        lines.append(f"grounding probe: {grounding.get('checkpoint')} | {grounding.get('task')}, split "
                     f"{grounding.get('split')} | {grounding.get('layouts')} layouts, each object named in turn")
        lines.append(f"  heads for the named object   {_percent(grounding['accuracy']):>6}   (chance: 1 in the "
                     "number of objects)")
        lines.append(f"  ... for the layout's target  {_percent(grounding['target']):>6}")
        lines.append(f"  three different objects      {_percent(grounding['distinct']):>6}   (0 %: the instruction "
                     "does not change where it goes)")
    vqa = report.get("vqa")
    if vqa:
        if lines:
            lines.append("")
        lines.append(f"VQA / captions (ventral stream): {vqa.get('checkpoint')} | {vqa.get('pairs')} pairs")
        lines.append(f"  {'kind':<12}{'accuracy':>10}{'pairs':>8}")
        for kind, row in vqa.get("per_kind", {}).items():
            lines.append(f"  {kind:<12}{_percent(row['accuracy']):>10}{row['pairs']:>8}")
        lines.append(f"  {'all':<12}{_percent(vqa.get('accuracy', float('nan'))):>10}{vqa.get('pairs', 0):>8}")
        f1 = vqa.get("caption_f1") or {}
        if f1.get("pairs"):
            lines.append(f"  {'caption F1':<12}{_percent(f1['mean']):>10}{f1['pairs']:>8}   (objects named, "
                         "order ignored: partial credit)")
    return "\n".join(lines)


def plot_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Success per task with its Wilson interval and the 80 % target; the grounding probe and VQA
    accuracy per kind beside it, where the report has them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closed, vqa, grounding = report.get("closed_loop"), report.get("vqa"), report.get("grounding")
    panels = [p for p in (closed, grounding, vqa) if p]
    if not panels:
        raise ValueError("nothing to plot: the report has no closed_loop, grounding or vqa")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    axes = list(axes[0])
    if closed:
        ax = axes.pop(0)
        rows = task_rows(closed)
        names = [row["task"] for row in rows]
        rates = [row["rate"] for row in rows]
        bars = list(ax.bar(names, rates, color="tab:blue", capsize=4,
                           yerr=[[r - row["ci95"][0] for r, row in zip(rates, rows)],
                                 [row["ci95"][1] - r for r, row in zip(rates, rows)]]))
        bars += list(ax.bar(["mean"], [mean_over_tasks(rows)], color="tab:gray"))
        for bar, row in zip(bars, rows + [None]):
            top = row["ci95"][1] if row else bar.get_height()  # above the interval's whisker
            label = f"{100 * bar.get_height():.0f} %" + (f" ({row['successes']}/{row['episodes']})" if row else "")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.axhline(SUCCESS_TARGET, color="r", ls="--", lw=1, label="target 80 %")
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("closed-loop success (95 % Wilson interval)")
        steps = closed.get("n_action_steps")
        ax.set_title(f"split {closed.get('split')}" + (f", {steps} target(s) per chunk" if steps else ""), fontsize=9)
        ax.legend(fontsize=8, loc="upper right")
    if grounding:
        ax = axes.pop(0)
        names = ["named object", "layout's target", "3 different"]
        values = [grounding["accuracy"], grounding["target"], grounding["distinct"]]
        ax.bar(names, values, color="tab:purple")
        for x, v in enumerate(values):
            ax.annotate(_percent(v), (x, v), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of (layout, named object) / layouts")
        ax.set_title(f"grounding probe, {grounding.get('layouts')} layouts: does the chunk follow the instruction?",
                     fontsize=9)
    if vqa:
        ax = axes.pop(0)
        kinds = list(vqa.get("per_kind", {}))
        values = [vqa["per_kind"][k]["accuracy"] for k in kinds] + [vqa.get("accuracy", float("nan"))]
        ax.bar(kinds + ["all"], values, color=["tab:green"] * len(kinds) + ["tab:gray"])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("exact-match accuracy")
        ax.set_title(f"VQA / captions, {vqa.get('pairs')} pairs", fontsize=9)
    checkpoint = (closed or grounding or vqa).get("checkpoint", "")
    fig.suptitle(f"uam eval: {checkpoint}", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
