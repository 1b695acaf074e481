"""`uam compare A.json B.json`: two `uam eval --json` results on the same layouts, paired.

Evaluations of two checkpoints on the same seeds are paired data: the layouts both solve, or both
fail, say nothing about which is better. Per task this prints the 2x2 counts and the exact McNemar
p-value (uam_ros.train.study_metrics.paired_success), the comparison docs/training_notes.md uses,
so that a 5-point difference on 100 layouts is not read as progress when p = 0.4.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from uam_ros.train.study_metrics import paired_success


def episode_outcomes(result: dict[str, Any]) -> dict[str, dict[int, bool]]:
    """{task: {episode seed: success}} of a `uam eval --json` file's closed-loop part."""
    closed_loop = result.get("closed_loop", result)
    if "tasks" not in closed_loop:
        raise ValueError("not a `uam eval --json` result with closed-loop episodes (no 'tasks')")
    return {task: {int(e["seed"]): bool(e["success"]) for e in r.get("episodes_detail", [])}
            for task, r in closed_loop["tasks"].items()}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task present in both results: paired_success of their episodes."""
    outcomes_a, outcomes_b = episode_outcomes(a), episode_outcomes(b)
    common = [task for task in outcomes_a if task in outcomes_b]
    if not common:
        raise ValueError(f"no task in both results (A: {sorted(outcomes_a)}, B: {sorted(outcomes_b)})")
    return {task: paired_success(outcomes_a[task], outcomes_b[task]) for task in common}


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [f"  {'task':<10}{'episodes':>9}{'A':>6}{'B':>6}{'both':>6}{'only A':>8}{'only B':>8}{'neither':>9}"
             f"{'McNemar p':>11}"]
    for task, r in rows.items():
        lines.append(f"  {task:<10}{r['episodes']:>9}{r['a']:>6}{r['b']:>6}{r['both']:>6}{r['only_a']:>8}"
                     f"{r['only_b']:>8}{r['neither']:>9}{r['p_mcnemar']:>11.2g}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="`uam eval --json` result A")
    parser.add_argument("b", type=Path, help="`uam eval --json` result B (same tasks and episode seeds)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")


def run(args: argparse.Namespace) -> int:
    try:
        rows = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    except (OSError, ValueError, KeyError) as error:
        print(f"uam compare: {error}", file=sys.stderr)
        return 2
    print(f"A: {args.a}\nB: {args.b}\n{format_table(rows)}")
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "tasks": rows}, indent=2))
    return 0
