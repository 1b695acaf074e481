"""The embodiment-tax study (issue #9): how much of the ventral VLM's vision-language skill survives
end-to-end action training, UAM vs the single-stream baseline, and what each buys in closed loop.

    nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py --quick     # smoke run, < 30 min on 2 CPU cores
    nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py             # the full study (hours; see docs)
    nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py --preset mt10   # the same on Meta-World MT10

One command runs every stage through the package's own pipeline (the functions behind `uam collect`,
`uam train` and `uam eval`, called in this process so torch and MuJoCo load once):

The full preset is `uam recipe`'s default preset (the shipped model's recipe): its data, its ventral
phase and its action phase, for both kinds, at seeds 0, 1, 2 -- so its UAM runs are what the recipe
ships (at seed 1, exactly the recipe's action run), and the baseline gets the same phases.

1. data (runs/study/<preset>/data/, laid out as `uam recipe` lays it out): train-split expert
   episodes per task (`uam collect --split train`, each layout once per object named where the
   recipe does so), vision-language pairs for ventral pretraining, and a separate *held-out* VL set
   (other scenes: another seed) on which VQA/caption accuracy is measured.
2. one ventral VLM (`uam train --stage ventral`, the recipe's ventral phase), shared by every model
   and seed: "the same pretrained ventral VLM". Its VQA/caption accuracy on the held-out VL set is
   "before".
3. per seed N (runs/study/<preset>/<kind>/seed<N>/):
   uam:           [dorsal pretraining (quick preset only: the recipe has none)] -> action phase
   single_stream: the action phase with --kind single_stream (init from the ventral)
   Both action stages see the same data, batch size, number of steps and learning rates (the
   ventral slowed alike, pi0-style: lr_scale).
4. per run: VQA/caption accuracy of the action checkpoint's ventral stream ("after"), retention =
   after / before, and closed-loop success per task on the train split and on each held-out
   sub-split (uam_ros.sim.tasks: heldout_combo, heldout_shape, heldout_paraphrase,
   heldout_position), at evaluation seeds 100000+ (layouts never collected).

Resumable: a finished stage leaves its output (checkpoint/, an eval JSON, a stage marker) and is
skipped on the next invocation; an interrupted training stage resumes from its latest/ state (the
trainer's exact resumption). Each run directory keeps train_config.yaml, the checkpoint, curves,
eval JSONs, a log and timing.json (wall and CPU seconds per stage). Results:
benchmarks/results/embodiment_tax[_quick].json (every number; uam_ros.train.study_metrics computes
the summaries) and .png (retention bars with seed spread, success per split, learning curves).

The mt10 preset (metaworld_mt10) runs the same comparison on Meta-World MT10 with the Sawyer: the full
preset's pretrained VLM (taken from RUNS_DIR/full/, trained there if missing), its action phase on
MT10's scripted demonstrations (`python -m uam_ros.metaworld_suite collect`), VQA/caption retention on
the same held-out VL set, and success by Meta-World's own criterion (`... eval`), per task.

Runs of one study can be split over side-by-side invocations (`--seeds N --kinds uam`, ...); a plain
invocation then finds them done and writes the report.

The frozen-VLM baseline (c) is not run: the trainer refuses to freeze anything in the action stage
(build_stage raises "action stage must train every weight end to end"), and adding it needs a
trainer option, which is not this script's to add.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from uam_ros.metaworld_suite.tasks import MT10, dataset_task  # noqa: E402
from uam_ros.train import study_metrics  # noqa: E402
from uam_ros.train.pipeline import (  # noqa: E402
    clean_json,
    closed_loop,
    collect,
    log,
    metaworld_closed_loop,
    metaworld_collect,
    timing,
    train_stage,
    vqa,
    write_json,
)
from uam_ros.train.recipe import PRESETS as RECIPES  # noqa: E402
from uam_ros.train.recipe import (  # noqa: E402
    Phase,
    RecipePreset,
    collect_expert_data,
    expert_data,
    phase_overrides,
)

KINDS = ("uam", "single_stream")
EVAL_SPLITS = ("train", "heldout_combo", "heldout_shape", "heldout_paraphrase", "heldout_position")
# Meta-World MT10 in our dataset's task names (metaworld itself is imported only when a run needs it).
MT10_TASKS = tuple(dataset_task(name) for name in MT10)
# What makes a VLM: a preset that reuses another's (vlm_from) must agree on all of it.
VLM_FIELDS = ("ventral", "vl_pairs", "vl_eval_pairs", "vl_eval_seed", "model", "val_fraction", "max_vqa_pairs")


@dataclass
class Preset:
    """Everything that sets the study's size. Training follows recipe Phases (uam_ros.train.recipe), so
    the full study trains exactly what `uam recipe` ships; model sizes are fixed at the ventral phase."""

    name: str
    ventral: Phase  # trained once (its own seed), shared by every model and seed
    action: Phase  # the step budget, the same for both kinds; its tasks are the study's
    dorsal: Phase | None = None  # UAM only: dorsal pretraining before the action phase (None: none)
    robot: str = "franka_panda"
    seeds: tuple[int, ...] = (0, 1, 2)
    episodes: int = 300  # expert episodes per task (train split, seeds 0..n-1)
    vl_pairs: int = 6000  # ventral pretraining pairs
    vl_eval_pairs: int = 600  # held-out VL set
    vl_eval_seed: int = 90_000  # collect seed of the held-out VL scenes (training VL uses 0)
    model: dict[str, Any] = field(default_factory=dict)  # UAMConfig overrides at the ventral phase
    val_fraction: float = 0.05
    eval_splits: tuple[str, ...] = EVAL_SPLITS
    eval_episodes: int = 20  # per task and split
    # The untrained checkpoint's floor, per task and split (None: eval_episodes). Its episodes mostly
    # run to the time limit, so a floor at the full count costs as much as a trained run's evaluation.
    reference_episodes: int | None = None
    max_vqa_pairs: int = 600
    collect_workers: int = 1
    threads: int = 1  # torch CPU threads (training and evaluation)
    device: str = "cpu"  # training device; closed-loop evaluation runs on the CPU
    batch_size: int | None = None  # per phase instead (pipeline.train_stage reads these two fields)
    warmup_steps: int | None = None
    # "sim": our MuJoCo tasks and held-out splits (uam collect / uam eval); "metaworld": MT10 through
    # uam_ros.metaworld_suite (scripted demonstrations, Meta-World's own success), one split "mt10".
    suite: str = "sim"
    # Another preset whose runs folder (RUNS_DIR/<vlm_from>/) holds the VL data and the pretrained
    # ventral VLM: both studies then start from the very same VLM, and measure retention on the same set.
    vlm_from: str | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.action.tasks

    def data_dirs(self, data: Path) -> list[Path]:
        """The action data, laid out as `uam recipe` lays it out (so one collection serves both)."""
        if self.suite == "metaworld":
            return [data / "mt10"]
        return [expert_data(data, task, self.action.all_targets) for task in self.tasks]


def shipped_recipe(name: str, recipe: RecipePreset) -> Preset:
    """The study on a `uam recipe` preset's data, ventral phase and action phase: what that recipe
    ships is the UAM arm of the comparison (at the study's seeds), and the baseline gets the very same
    phases. Refuses a recipe the study cannot mirror, rather than running something else."""
    stages = [phase.stage for phase in recipe.phases]
    if stages != ["ventral", "action"] or any(p.recovery_episodes or p.from_scratch for p in recipe.phases):
        raise ValueError(f"recipe {recipe.name!r}: the study mirrors one ventral phase then one action phase "
                         f"(no recovery data, nothing from scratch), got {stages}")
    ventral, action = recipe.phases
    episodes = {recipe.episodes[task] for task in action.tasks}
    if len(episodes) != 1 or (action.all_targets and set(action.tasks) - set(recipe.all_targets)):
        raise ValueError(f"recipe {recipe.name!r}: the study needs the same episode count for every task "
                         "and the action phase's data collected as it trains on it")
    return Preset(
        name, ventral=ventral, action=replace(action, seed=None), robot=recipe.robot, episodes=episodes.pop(),
        vl_pairs=recipe.vl_pairs, vl_eval_pairs=recipe.vl_eval_pairs,
        vl_eval_seed=recipe.vl_eval_seed, model=dict(recipe.model), val_fraction=recipe.val_fraction,
        collect_workers=recipe.collect_workers, threads=recipe.threads, device=recipe.device,
        eval_episodes=50, reference_episodes=10)


def metaworld_mt10(name: str, base: Preset) -> Preset:
    """The same comparison on Meta-World MT10 (the Sawyer, config/robots/sawyer.yaml), from `base`'s
    pretrained ventral VLM (its runs folder) with base's action phase on the ten tasks' scripted
    demonstrations. What differs from base, and why:
    - no all-targets data and no first-frame oversampling: an MT10 scene shows one task, so frame 0
      needs no instruction to say which object (those exist for our reach/press scenes);
    - the dorsal's pointer losses off: their targets project the tool through our sim's calibrated
      scene camera (datasets.tool_image_points), which Meta-World's corner camera is not;
    - 50 demonstrations per task (Meta-World's 50 layouts of one benchmark seed), 20 evaluation
      episodes per task at seeds 100000+ (layouts of another benchmark seed), Meta-World's success."""
    action = replace(base.action, name="mt10", tasks=MT10_TASKS, all_targets=False, first_steps=0,
                     first_steps_repeat=1, model={"pointer_loss_weight": 0.0, "goal_pointer_weight": 0.0})
    return replace(base, name=name, action=action, dorsal=None, robot="sawyer", suite="metaworld", vlm_from=base.name,
                   episodes=50, eval_splits=("mt10",), eval_episodes=20, reference_episodes=5, collect_workers=2)


PRESETS = {
    # `uam recipe`'s default preset (the shipped model's recipe, experiment 14): its data, its ventral
    # phase, its action phase for both kinds at seeds 0, 1, 2 (the shipped model is action seed 1) and
    # no dorsal pretraining, as the recipe has none (its action phase trains the dorsal's dynamics
    # objective end to end). 50 episodes per task on each of the five splits.
    "full": shipped_recipe("full", RECIPES["default"]),
    # A smoke run of the whole pipeline: tiny data, a small model, a few steps, three seeds, so that
    # every number and plot is produced end to end -- the dorsal pretraining stage included, and the
    # full study's all-targets data, slowed ventral and first-frame oversampling. Its success rates are
    # ~0 by construction.
    "quick": Preset(
        "quick",
        ventral=Phase("ventral", "ventral", 300, 1e-3, 1e-4, 20, 16, seed=0),
        dorsal=Phase("dorsal", "dorsal", 40, 1e-3, 1e-4, 20, 16),
        action=Phase("action", "action", 120, 1e-3, 1e-4, 20, 16, ("reach", "press"), all_targets=True,
                     first_steps=1, first_steps_repeat=4, lr_scale={"ventral": 0.003}),
        episodes=4, vl_pairs=960, vl_eval_pairs=192,
        model={"image_size": 64, "patch_size": 8, "d_model": 64, "n_heads": 4, "mlp_ratio": 2,
               "chunk_size": 8, "language_film": True, "film_source": "dorsal_words", "instruction_norm": True},
        val_fraction=0.2, eval_episodes=2, max_vqa_pairs=192,
    ),
}
PRESETS["mt10"] = metaworld_mt10("mt10", PRESETS["full"])


def action_curve(run_dir: Path) -> dict[str, list]:
    path = run_dir / "action" / "curves.json"
    if not path.is_file():
        return {"train": [], "val": []}
    history = json.loads(path.read_text())
    return {
        "train": [[r["step"], r.get("action_loss", r.get("loss"))] for r in history.get("train", [])],
        "val": [[r["step"], r.get("action_loss", r.get("loss"))] for r in history.get("val", [])],
    }


# ------------------------------------------------------------------------------------------ the study


def check_same_preset(preset: Preset, root: Path) -> None:
    """Resuming reuses every finished output, so the settings must be those of the first invocation
    (seeds may be added: each seed is its own runs)."""
    path = root / "preset.json"
    current = clean_json({k: v for k, v in asdict(preset).items() if k != "seeds"})
    if path.is_file():
        saved = {k: v for k, v in json.loads(path.read_text()).items() if k != "seeds"}
        # A field added since that invocation counts as its default (what the code did before it existed).
        defaults = clean_json({f.name: f.default for f in fields(Preset) if f.default is not MISSING and f.name != "seeds"})
        saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise SystemExit(f"{root} was run with other settings ({', '.join(changed)}); "
                             f"use another --runs-dir or delete it")
    write_json(path, asdict(preset))


def record_invocation(root: Path, started: float, seeds: tuple[int, ...], kinds: tuple[str, ...]) -> list[dict]:
    """Append this invocation (when it ended, its wall time, what it ran) to root/invocations.json: a study
    run as several invocations, side by side or resumed, keeps the wall clock of each."""
    from bench_common import timestamp

    path = root / "invocations.json"
    invocations = json.loads(path.read_text()) if path.is_file() else []
    invocations.append({"finished": timestamp(), "wall_s": time.monotonic() - started, "seeds": list(seeds),
                        "kinds": list(kinds), "loadavg": [round(x, 2) for x in os.getloadavg()]})
    write_json(path, invocations)
    return invocations


def vlm_source(preset: Preset) -> Preset:
    """The preset that pretrains this one's VLM: itself, or vlm_from's, which must agree on VLM_FIELDS."""
    if preset.vlm_from is None:
        return preset
    source = PRESETS[preset.vlm_from]
    differ = [f for f in VLM_FIELDS if getattr(source, f) != getattr(preset, f)]
    if differ:
        raise SystemExit(f"preset {preset.name} takes its VLM from {source.name} but differs in {differ}")
    return source


def evaluate_split(checkpoint: Path, out: Path, split: str, preset: Preset, episodes: int | None = None) -> dict:
    """Closed-loop success of one checkpoint on one split, through the preset's suite."""
    if preset.suite == "metaworld":
        return metaworld_closed_loop(checkpoint, out, preset, episodes)
    return closed_loop(checkpoint, out, split, preset, episodes=episodes)


def run_study(preset: Preset, root: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, Any] | None:
    """Every stage of the preset's runs of `kinds` (skipping what is done); the report (with the untrained
    floor) only when kinds is every kind -- so side-by-side invocations can split one study's runs."""
    import torch

    torch.set_num_threads(preset.threads)
    started = time.monotonic()
    check_same_preset(preset, root)
    vlm = vlm_source(preset)
    vlm_root = root.parent / vlm.name
    if vlm is not preset:
        check_same_preset(vlm, vlm_root)
    data = root / "data"
    timings: dict[str, Any] = {}
    if preset.suite == "metaworld":
        metaworld_collect(data / "mt10", preset, episodes=preset.episodes, timings=timings)
    else:
        for task in preset.tasks:
            collect_expert_data(data, preset, task, preset.episodes, preset.action.all_targets, timings)
    vl_data = vlm_root / "data"
    collect(vl_data / "vl", vlm, tasks=[], episodes=0, vl_pairs=vlm.vl_pairs, seed=0,
            timings=timings, name="collect_vl")
    collect(vl_data / "vl_eval", vlm, tasks=[], episodes=0, vl_pairs=vlm.vl_eval_pairs,
            seed=vlm.vl_eval_seed, timings=timings, name="collect_vl_eval")

    # The same folders as `uam recipe` (<work>/ventral/ventral/checkpoint), for the same reason as the data.
    ventral_dir = vlm_root / vlm.ventral.name
    ventral = train_stage("ventral", ventral_dir / "ventral", ventral_dir, vlm, data=vl_data / "vl",
                          seed=vlm.ventral.seed or 0, steps=vlm.ventral.steps,
                          overrides=phase_overrides(vlm.ventral, vlm.val_fraction, None))
    timings["ventral"] = timing(ventral_dir, "ventral")
    before = vqa(ventral, ventral_dir / "eval" / "vqa.json", vl_data / "vl_eval", vlm)

    runs = []
    for seed in preset.seeds:
        for kind in kinds:
            run_dir = root / kind / f"seed{seed}"
            init = ventral
            if kind == "uam" and preset.dorsal is not None:
                init = train_stage("dorsal", run_dir / "dorsal", run_dir, preset, data=preset.data_dirs(data),
                                   seed=seed, init_from=ventral, steps=preset.dorsal.steps,
                                   overrides=phase_overrides(preset.dorsal, preset.val_fraction, ventral))
            action = train_stage("action", run_dir / "action", run_dir, preset, data=preset.data_dirs(data),
                                 seed=seed, init_from=init, kind=kind, steps=preset.action.steps,
                                 overrides=phase_overrides(preset.action, preset.val_fraction, init))
            after = vqa(action, run_dir / "eval" / "vqa.json", vl_data / "vl_eval", preset)
            success = {}
            eval_wall = after.get("wall_s", 0.0)
            for split in preset.eval_splits:
                result = evaluate_split(action, run_dir / "eval" / f"closed_loop_{split}.json", split, preset)
                success[split] = study_metrics.success_counts(result)
                eval_wall += result.get("wall_s", 0.0)
            run_timing = json.loads((run_dir / "timing.json").read_text())
            record = {
                "kind": kind, "seed": seed,
                "vqa": {"before": study_metrics.per_kind_counts(before),
                        "after": study_metrics.per_kind_counts(after)},
                "caption_f1": {"before": before["caption_f1"]["mean"], "after": after["caption_f1"]["mean"]},
                "success": success,
                "action_wall_s": run_timing["action"]["wall_s"],
                "action_cpu_s": run_timing["action"]["cpu_s"],
                "dorsal_wall_s": run_timing.get("dorsal", {}).get("wall_s"),
                "eval_wall_s": eval_wall,  # VQA after + closed loop on every split
                "run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
                "curve": action_curve(run_dir),
                "timing": run_timing,
            }
            write_json(run_dir / "run.json", record)
            runs.append(record)
    if tuple(kinds) != KINDS:
        record_invocation(root, started, preset.seeds, kinds)
        log(f"runs of {', '.join(kinds)} done; the report needs an invocation with every kind")
        return None

    # The floor: a seeded, untrained checkpoint (`uam init-model`) on the same evaluation episodes (the
    # first reference_episodes of them).
    # Success it gets (e.g. a button pressed on the way down) is luck of the layout, not skill.
    reference_dir = root / "reference_untrained"
    if not (reference_dir / "checkpoint" / "config.json").is_file():
        from bench_common import make_checkpoint

        make_checkpoint(preset.robot, reference_dir / "checkpoint")
    reference = {split: study_metrics.split_success(study_metrics.success_counts(evaluate_split(
        reference_dir / "checkpoint", reference_dir / "eval" / f"closed_loop_{split}.json", split, preset,
        episodes=preset.reference_episodes)))
        for split in preset.eval_splits}

    report = study_metrics.build_report(runs, splits=list(preset.eval_splits), kinds=list(KINDS))
    # Every stage's wall time as recorded when it ran (so a resumed or re-run invocation still reports
    # what the whole pipeline cost; imports and small overheads are not in it).
    stage_wall = {
        "collect": sum(timings[k].get("wall_s", 0.0) for k in timings if k.startswith("collect")),
        "ventral_train": timings["ventral"].get("wall_s", 0.0),
        "vqa_before": before.get("wall_s", 0.0),
        "dorsal_train": sum(r["dorsal_wall_s"] or 0.0 for r in runs),
        "action_train": sum(r["action_wall_s"] for r in runs),
        "eval": sum(r["eval_wall_s"] for r in runs),
    }
    from bench_common import machine_info, timestamp

    invocations = record_invocation(root, started, preset.seeds, kinds)
    return {
        "study": "embodiment tax (issue #9)",
        "preset": {**asdict(preset), "tasks": list(preset.tasks)},
        "command": "nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py" + (
            " --quick" if preset.name == "quick" else f" --preset {preset.name}"),
        "finished": timestamp(),
        "machine": machine_info(),
        "total_wall_s_this_invocation": time.monotonic() - started,
        "pipeline_wall_s": {**stage_wall, "total": sum(stage_wall.values())},
        "stage_timings": timings,
        "invocations": invocations,
        "vqa_before": {k: before[k] for k in ("accuracy", "pairs", "per_kind", "caption_f1", "checkpoint")},
        "reference_untrained_success": reference,
        "runs": runs,
        "report": report,
        "table_markdown": study_metrics.markdown_table(report["table"]),
        "not_run": {"frozen_vlm_baseline": "the trainer's action stage refuses frozen weights (build_stage: "
                    "'action stage must train every weight end to end'); needs a trainer option"},
    }


# ------------------------------------------------------------------------------------------ plots


def _num(value: Any, missing: float = float("nan")) -> float:
    return missing if value is None else float(value)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    report, runs = results["report"], results["runs"]
    kinds = [k for k in report["kinds"] if k in report["per_model"]]
    colors = {"uam": "#1f77b4", "single_stream": "#d62728"}
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))

    ax = axes[0]  # retention bars
    groups = ["all", "vqa", "caption", "caption_f1"]
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        xs = np.arange(len(groups)) + (i - (len(kinds) - 1) / 2) * width
        summaries = [report["per_model"][kind][f"retention.{g}"] for g in groups]
        means = [_num(s["mean"]) for s in summaries]
        stds = [_num(s["std"], 0.0) for s in summaries]
        ax.bar(xs, means, width, yerr=stds, capsize=4, color=colors.get(kind), alpha=0.7, label=kind)
        for x, g in zip(xs, groups):
            values = [_num(r["retention"][g]) for r in report["runs"] if r["kind"] == kind]
            ax.scatter([x] * len(values), values, color="k", s=12, zorder=3)
        for x, summary in zip(xs, summaries):
            if summary["mean"] is None:  # every seed undefined: nothing to retain
                ax.text(x, 0.02, "undefined:\nbefore = 0", ha="center", va="bottom", fontsize=7, rotation=90)
    before = {g: _num(report["per_model"][kinds[0]][f"accuracy_before.{g}"]["mean"]) for g in groups} if kinds else {}
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(groups)), ["all pairs", "VQA", "caption\n(exact)", "caption\n(object F1)"])
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel("retention = accuracy after / before")
    ax.set_title("ventral VL retention (bars: mean ± std over seeds, dots: seeds)\naccuracy before: " +
                 ", ".join(f"{g} {v:.2f}" for g, v in before.items()), fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[1]  # success per split; a single split (MT10) per task
    splits = report["splits"]
    floor = results.get("reference_untrained_success") or {}
    if len(splits) == 1:
        split = splits[0]
        tasks = sorted({t for r in report["runs"] for t in r["success"].get(split, {}).get("tasks", {})})
        labels = [t.replace("-v3", "") for t in tasks] + [f"all ({split})"]

        def rates(row: dict | None) -> list[float]:
            return [_num(row["tasks"][t]["rate"]) if t in row["tasks"] else np.nan for t in tasks] + \
                [_num(row["rate"])] if row else [np.nan] * (len(tasks) + 1)

        run_rates = [rates(r["success"].get(split)) for r in report["runs"]]
        floor_rates = rates(floor.get(split))
        unit = "task"
    else:
        labels = [s.replace("heldout_", "ho_") for s in splits]
        run_rates = [[_num(r["success"][s]["rate"]) if s in r["success"] else np.nan for s in splits]
                     for r in report["runs"]]
        floor_rates = [_num(floor[s]["rate"]) if s in floor else np.nan for s in splits]
        unit = "split"
    for i, kind in enumerate(kinds):
        xs = np.arange(len(labels)) + (i - (len(kinds) - 1) / 2) * width
        per_seed = np.array([rr for rr, r in zip(run_rates, report["runs"]) if r["kind"] == kind], dtype=float)
        summaries = [study_metrics.seed_summary(column) for column in per_seed.T]
        means = [_num(s["mean"]) for s in summaries]
        stds = [_num(s["std"], 0.0) for s in summaries]
        ax.bar(xs, means, width, yerr=np.nan_to_num(stds), capsize=3, color=colors.get(kind), alpha=0.7, label=kind)
        for x, column in zip(xs, per_seed.T):
            ax.scatter([x] * len(column), column, color="k", s=10, zorder=3)
    for x, rate in enumerate(floor_rates):
        if np.isfinite(rate):
            ax.hlines(rate, x - 0.45, x + 0.45, color="k", lw=1.5, ls="--",
                      label="untrained checkpoint" if x == 0 else None)
    ax.set_xticks(range(len(labels)), labels, fontsize=7 if unit == "task" else 8,
                  rotation=35 if unit == "task" else 0, ha="right" if unit == "task" else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("closed-loop success rate")
    episodes = results["preset"]["eval_episodes"] * (1 if unit == "task" else len(results["preset"]["tasks"]))
    ax.set_title(f"success per {unit} ({episodes} episodes per seed and {unit})", fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[2]  # learning curves
    for run in runs:
        train = np.array(run["curve"]["train"], dtype=float).reshape(-1, 2)
        if len(train):
            ax.plot(train[:, 0], train[:, 1], color=colors.get(run["kind"]), alpha=0.6, lw=1,
                    label=f"{run['kind']}" if run["seed"] == runs[0]["seed"] else None)
        val = np.array(run["curve"]["val"], dtype=float).reshape(-1, 2)
        if len(val):
            ax.scatter(val[:, 0], val[:, 1], color=colors.get(run["kind"]), s=14, marker="o")
    ax.set_yscale("log")
    ax.set_xlabel("action-stage step")
    ax.set_ylabel("action flow loss")
    ax.set_title("action-stage learning curves (lines: train per seed, dots: val)", fontsize=9)
    ax.legend(fontsize=8)

    machine = results["machine"]
    fig.suptitle(f"Embodiment tax, preset '{results['preset']['name']}': {len(results['preset']['seeds'])} seeds, "
                 f"{machine['cpu_count']} CPU cores ({machine['cpu_model']}), one torch thread", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick preset (same as --preset quick)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--seeds", type=int, nargs="*", help="override the preset's seeds")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="train and evaluate only these kinds' runs (no report: for side-by-side invocations)")
    parser.add_argument("--eval-episodes", type=int, help="override episodes per task and split")
    parser.add_argument("--action-steps", type=int, help="override the action-stage step budget")
    parser.add_argument("--collect-workers", type=int, help="processes for `uam collect` (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="training device (default cpu)")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "study",
                        help="study runs go to RUNS_DIR/<preset>/ (default: runs/study)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where embodiment_tax[_<preset>].json/.png are written")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else args.preset]
    if args.seeds:
        preset = replace(preset, seeds=tuple(args.seeds))
    if args.eval_episodes:
        preset = replace(preset, eval_episodes=args.eval_episodes)
    if args.action_steps:
        preset = replace(preset, action=replace(preset.action, steps=args.action_steps))
    if args.collect_workers:
        preset = replace(preset, collect_workers=args.collect_workers)
    if args.device:
        preset = replace(preset, device=args.device)
    root = args.runs_dir / preset.name
    log(f"embodiment-tax study, preset {preset.name}: runs in {root}")
    results = run_study(preset, root, tuple(k for k in KINDS if k in args.kinds))
    if results is None:
        return 0
    stem = "embodiment_tax" + ("" if preset.name == "full" else f"_{preset.name}")
    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / f"{stem}.json", results)
    plot(clean_json(results), args.results / f"{stem}.png")
    print(results["table_markdown"])
    log(f"wrote {args.results / (stem + '.json')} and .png; this invocation took "
        f"{results['total_wall_s_this_invocation'] / 60:.1f} min, the stages "
        f"{results['pipeline_wall_s']['total'] / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
