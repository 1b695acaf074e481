"""The MT10 tasks: Meta-World env names, our dataset task names, instructions, and episode seeds.

Episode seeds: Meta-World's benchmarks sample 50 goal/object layouts per task from a benchmark seed.
Episode ``seed`` of a task is layout ``seed % 50`` of ``metaworld.MT1(task, seed=seed // 50)`` -- so
every seed is one of Meta-World's own task variations, collection (seeds 0...) and evaluation
(seeds from 100000, another benchmark seed) never share a layout, and any seed can be replayed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from uam_ros.metaworld_suite.compat import import_metaworld

# metaworld.MT10's train classes, in Meta-World's order (checked against the package in the tests).
MT10: tuple[str, ...] = (
    "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
    "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
)
# One sentence per task: what the scene shows, in the words a person would use.
INSTRUCTIONS: dict[str, str] = {
    "reach-v3": "reach the goal",
    "push-v3": "push the puck to the goal",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "door-open-v3": "open the door",
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "button-press-topdown-v3": "press the button from the top",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "window-open-v3": "open the window",
    "window-close-v3": "close the window",
}
LAYOUTS_PER_BENCHMARK_SEED = 50  # metaworld._N_GOALS


def env_name(task: str) -> str:
    """'reach-v3', 'reach', 'pick_place' or 'pick-place' -> the Meta-World env name ('pick-place-v3')."""
    name = task.strip().lower().replace("_", "-")
    if not re.search(r"-v\d+$", name):
        name += "-v3"
    return name


def dataset_task(name: str) -> str:
    """The env name as our dataset format spells a task (lowercase and underscores): 'pick_place'."""
    return re.sub(r"-v\d+$", "", env_name(name)).replace("-", "_")


def resolve_tasks(tasks: list[str] | None) -> list[str]:
    """Env names for a task list (None or empty: all of MT10); unknown names raise ValueError."""
    names = [env_name(t) for t in tasks] if tasks else list(MT10)
    unknown = [n for n in names if n not in INSTRUCTIONS]
    if unknown:
        raise ValueError(f"unknown MT10 task(s) {unknown} (known: {[dataset_task(t) for t in MT10]})")
    return names


def instruction(name: str) -> str:
    return INSTRUCTIONS[env_name(name)]


@lru_cache(maxsize=64)
def _benchmark(name: str, benchmark_seed: int) -> Any:
    return import_metaworld().MT1(name, seed=benchmark_seed)


def env_class(name: str) -> type:
    return import_metaworld().env_dict.ALL_V3_ENVIRONMENTS[env_name(name)]


def task_for(name: str, seed: int) -> Any:
    """The metaworld.Task (object and goal layout) of episode ``seed`` of a task."""
    if seed < 0:
        raise ValueError(f"episode seed must be >= 0, got {seed}")
    benchmark = _benchmark(env_name(name), seed // LAYOUTS_PER_BENCHMARK_SEED)
    return benchmark.train_tasks[seed % LAYOUTS_PER_BENCHMARK_SEED]
