"""`uam recipe`: the one command that reproduces the shipped default model, end to end.

    uam recipe                       # data -> training -> evaluation -> models/default/<robot> + MODEL_CARD.md
    uam recipe --preset quick        # the same pipeline on tiny data in a few minutes (CI smoke run)

Each phase is a plain `uam collect` / `uam train` / `uam eval` invocation (uam_ros.train.pipeline),
resumable: re-running skips finished phases and resumes an interrupted training phase.

Why ventral -> action without a dorsal phase (DESIGN §4): on this 2-core CPU a dorsal pretraining phase
does not fit the two-hour budget, and the action stage trains the dorsal's visual-dynamics objective
end to end anyway (every weight trained, action data only). The default preset pretrains the ventral
VLM on generated VL pairs, then trains reach + press from it with the ventral slowed (lr_scale; not
frozen) so that it keeps its VQA skill, each layout recorded once per named object, the dorsal's
goal pointer (UAMConfig.goal_pointer_weight), a layer-normed FiLM from a word table of the dorsal's
own, and each episode's first frame oversampled -- the frame where only the instruction says which
object. docs/training_notes.md (experiments 8-14) has the runs that led here.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from uam_ros.train import study_metrics
from uam_ros.train.pipeline import closed_loop, collect, log, train_stage, vqa, write_json

POINTER_MODEL = {"dorsal_stem": "conv", "position_init": "sincos", "pointer_points": 8, "pointer_loss_weight": 1.0}


@dataclass
class Phase:
    """One `uam train` run, initialised from the previous phase's checkpoint (the first from scratch).

    stage "ventral" trains on the preset's VL pairs; "action" on the episodes of `tasks`."""

    name: str
    stage: str
    steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    batch_size: int
    tasks: tuple[str, ...] = ()
    lr_scale: dict[str, float] = field(default_factory=dict)  # TrainConfig.lr_scale, e.g. {"ventral": 0.1}
    # DAgger-style: before this phase, collect this many recovery episodes per task with the previous
    # phase's policy (`uam collect --recovery-from`, seeds recovery_seed..); this phase and every later
    # action phase train on them beside the expert episodes.
    recovery_episodes: int = 0
    recovery_seed: int = 0
    handoff: tuple[int, int] = (4, 56)
    # Targets the previous policy executes per chunk while it acts (`uam collect --policy-steps`;
    # 0: the robot config's n_action_steps). Collect at the rate the policy will be used at.
    policy_steps: int = 0
    # Start from freshly initialised weights (the preset's model + `model` below) instead of the
    # previous phase's checkpoint; recovery episodes still come from the previous phase's policy.
    from_scratch: bool = False
    model: dict[str, Any] = field(default_factory=dict)  # UAMConfig overrides, only where weights start fresh
    # Train on the preset's all-targets episodes of `tasks` (RecipePreset.all_targets) instead of the
    # plain expert episodes: each layout once per object named, so only the words tell them apart.
    all_targets: bool = False
    # TrainConfig data.first_steps / first_steps_repeat: each episode's first frames K times per epoch.
    # Why: after one step the arm's motion gives the target away, so only frame 0 needs the
    # instruction (experiment 8 of docs/training_notes.md); 0 leaves the sampling uniform.
    first_steps: int = 0
    first_steps_repeat: int = 1
    # This phase's training seed instead of the preset's (`uam recipe --seed`): a VLM is pretrained
    # once, and seeds vary the action training on top of the same one.
    seed: int | None = None


@dataclass
class RecipePreset:
    name: str
    robot: str = "franka_panda"
    episodes: dict[str, int] = field(default_factory=lambda: {"reach": 300})  # per task, seeds 0..n-1
    # Tasks whose layouts (the same seeds) are also collected once per object named
    # (`uam collect --all-targets`, data/<task>_all_targets) for phases with all_targets=True.
    all_targets: tuple[str, ...] = ()
    vl_pairs: int = 0  # ventral pretraining pairs (seed 0); 0: no VL data
    vl_eval_pairs: int = 0  # held-out VL pairs (seed vl_eval_seed) for VQA before/after action training
    vl_eval_seed: int = 90_000
    phases: tuple[Phase, ...] = ()
    model: dict[str, Any] = field(default_factory=lambda: dict(POINTER_MODEL))
    val_fraction: float = 0.05
    eval_splits: tuple[str, ...] = ("train", "heldout")
    eval_episodes: int = 30  # per task and split, seeds 100000+ (layouts never collected)
    # Extra closed-loop runs on the first eval split executing only this many targets per chunk before
    # replanning (the robot config's n_action_steps is the default run; the ROS node replans on every
    # inference, which is closer to 1-2 than to 8).
    replan_steps: tuple[int, ...] = ()
    collect_workers: int = 2
    threads: int = 1
    device: str = "cpu"
    batch_size: int | None = None  # per phase instead (pipeline.train_stage reads these two fields)
    warmup_steps: int | None = None
    max_vqa_pairs: int | None = None  # pipeline.vqa: at most this many held-out pairs (None: all)
    seed: int = 0  # every training phase's seed (collection seeds are the episodes' own, above)

    def check(self) -> None:
        """Refuse a phase list that cannot run, before anything is collected or trained."""
        previous = ""
        for index, phase in enumerate(self.phases):
            fresh = index == 0 or phase.from_scratch
            if phase.recovery_episodes and previous != "action":
                raise SystemExit(f"recipe {self.name!r} phase {phase.name!r}: recovery episodes need a previous "
                                 "action phase's policy")
            missing = sorted(set(phase.tasks) - set(self.all_targets)) if phase.all_targets else []
            if missing:
                raise SystemExit(f"recipe {self.name!r} phase {phase.name!r}: all_targets=True needs the preset to "
                                 f"collect all-targets episodes of {missing} (RecipePreset.all_targets)")
            if phase.first_steps < 0 or phase.first_steps_repeat < 1:
                raise SystemExit(f"recipe {self.name!r} phase {phase.name!r}: first_steps must be >= 0 and "
                                 f"first_steps_repeat >= 1, got {phase.first_steps} and {phase.first_steps_repeat}")
            if phase.model and not fresh:
                raise SystemExit(f"recipe {self.name!r} phase {phase.name!r}: model overrides need fresh weights "
                                 "(the first phase, or from_scratch=True); a phase that continues a checkpoint "
                                 "keeps its network")
            previous = phase.stage
        if not self.phases:
            raise SystemExit(f"recipe {self.name!r}: no phases")

    @property
    def plain_tasks(self) -> tuple[str, ...]:
        """Tasks whose plain expert episodes some action phase trains on: only those are collected
        (an all-targets-only preset would otherwise record every layout twice)."""
        used = {t for p in self.phases if p.stage == "action" and not p.all_targets for t in p.tasks}
        return tuple(t for t in self.episodes if t in used)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task the final policy is evaluated on (pipeline.closed_loop reads this)."""
        return tuple(self.episodes)


PRESETS = {
    # Experiment 14 (the shipped model, e14e): 13d's action phase ("no_vl" below) from a ventral
    # pretrained here on VL pairs (seed 0) and slowed to 0.003 of the learning rate (still trained:
    # every weight changes), with the FiLM on a word table of the dorsal's own. This CPU, 100 test
    # layouts per task at 8 steps per chunk: action seed 1 (shipped) reach 89 %, press 73 %, VQA
    # retention 104 %; seed 0 84 / 32 % (press near misses), retention 101 %. Seed 1 was chosen on
    # validation layouts (73 vs 59 %), hence the preset's seed.
    "default": RecipePreset(
        "default",
        episodes={"reach": 300, "press": 300},
        all_targets=("reach", "press"),
        vl_pairs=6000, vl_eval_pairs=600,
        # Fresh weights only in the first (ventral) phase, so the dorsal's settings come with it.
        model={**POINTER_MODEL, "goal_pointer_weight": 5.0, "language_film": True, "film_source": "dorsal_words",
               "instruction_norm": True},
        phases=(
            Phase("ventral", "ventral", 1700, 1e-3, 1e-4, 100, 64, seed=0),
            Phase("reach_press", "action", 1800, 1e-3, 1e-4, 100, 32, ("reach", "press"), all_targets=True,
                  first_steps=1, first_steps_repeat=100, lr_scale={"ventral": 0.003}),
        ),
        eval_episodes=100,  # 30 per split put E3 at 47 %, 100 at 29 %: +-17 points is too coarse to rank runs
        replan_steps=(2,),
        seed=1,
    ),
    # The previous default (13d, shipped 2026-11-27 until experiment 14): no VL data, every weight from
    # scratch at one learning rate; the better policy (88 % at 8 steps per chunk) without a VQA skill.
    "no_vl": RecipePreset(
        "no_vl",
        episodes={"reach": 300, "press": 300},
        all_targets=("reach", "press"),
        phases=(
            # Experiment 13 of docs/training_notes.md: one phase from fresh weights on reach and press,
            # each layout recorded once per object named (press: per button); the goal pointer at
            # weight 5, FiLM from the instruction's words, layer-normed (instruction_norm: without it the
            # zero-initialised FiLM starts on a plateau that some seeds never leave -- 28 % mean over
            # three seeds on this CPU, experiment 12), and every episode's first frame 100 times per
            # epoch (only frame 0 needs the words; the arm's motion gives the target away after it).
            # This CPU, 100 test layouts per task (reach / press): seed 0 (13d) 91 / 85 % at 8 steps per
            # chunk, 76 / 58 % at 2; seed 1 83 / 80 % and 72 / 54 %; an H100, six seeds at 2 steps: 55 %.
            # Before it: C12 (experiment 8, reach only, E3 -> recovery episodes -> fresh phase): 78 %
            # at 2 steps, seeds 40-78 %.
            Phase("reach_press", "action", 1800, 1e-3, 1e-4, 100, 32, ("reach", "press"), all_targets=True,
                  first_steps=1, first_steps_repeat=100,
                  model={"goal_pointer_weight": 5.0, "language_film": True, "film_source": "words",
                         "instruction_norm": True}),
        ),
        eval_episodes=100,  # 30 per split put E3 at 47 %, 100 at 29 %: +-17 points is too coarse to rank runs
        replan_steps=(2, 1),
    ),
    "quick": RecipePreset(
        "quick", episodes={"reach": 6, "press": 6}, vl_pairs=120, vl_eval_pairs=24, collect_workers=1, eval_episodes=2,
        phases=(Phase("ventral", "ventral", 20, 1e-3, 1e-4, 5, 16),
                Phase("reach", "action", 30, 1e-3, 1e-4, 5, 8, ("reach",)),
                Phase("reach_recovery", "action", 10, 5e-4, 5e-5, 2, 8, ("reach",),
                      recovery_episodes=3, recovery_seed=1000, handoff=(2, 8)),
                Phase("reach_press", "action", 20, 5e-4, 5e-5, 5, 8, ("reach", "press"))),
        model={**POINTER_MODEL, "image_size": 64, "patch_size": 8, "d_model": 64, "mlp_ratio": 2, "chunk_size": 8},
        val_fraction=0.2, replan_steps=(2,),
    ),
}


def expert_data(data: Path, task: str, all_targets: bool) -> Path:
    """Where a task's scripted-expert episodes live: plain, or each layout once per object named."""
    return data / (f"{task}_all_targets" if all_targets else task)


def collect_expert_data(data: Path, settings: Any, task: str, episodes: int, all_targets: bool,
                        timings: dict[str, Any]) -> Path:
    """`uam collect` of one task's train-split expert episodes (seeds 0..episodes-1) into expert_data's
    folder; the recipe and the embodiment-tax study both collect through here, so one collection
    serves both."""
    out = expert_data(data, task, all_targets)
    collect(out, settings, tasks=[task], episodes=episodes, vl_pairs=0, seed=0, timings=timings,
            name=f"collect_{out.name}", all_targets=all_targets)
    return out


def phase_overrides(phase: Phase, val_fraction: float, init_from: Path | None) -> list[str]:
    """The `uam train --set` overrides that make one training run follow a phase (the recipe's, and the
    embodiment-tax study's runs of the same phases)."""
    return [f"lr={phase.lr}", f"min_lr={phase.min_lr}", f"warmup_steps={phase.warmup_steps}",
            f"batch_size={phase.batch_size}", f"data.val_fraction={val_fraction}",
            "init_from=" + (str(init_from) if init_from else "''"),
            *([f"lr_scale={json.dumps(phase.lr_scale)}"] if phase.lr_scale else []),
            *([f"data.first_steps={phase.first_steps}",
               f"data.first_steps_repeat={phase.first_steps_repeat}"] if phase.first_steps else []),
            *[f"model.{k}={v}" for k, v in phase.model.items()]]


def run_recipe(preset: RecipePreset, work: Path, install: Path | None) -> dict[str, Any]:
    import torch

    preset.check()
    torch.set_num_threads(preset.threads)
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "preset.json", asdict(preset))
    timings: dict[str, Any] = {}
    data = work / "data"
    for task in preset.plain_tasks:
        collect_expert_data(data, preset, task, preset.episodes[task], all_targets=False, timings=timings)
    for task in preset.all_targets:
        collect_expert_data(data, preset, task, preset.episodes[task], all_targets=True, timings=timings)
    if preset.vl_pairs:
        collect(data / "vl", preset, tasks=[], episodes=0, vl_pairs=preset.vl_pairs, seed=0,
                timings=timings, name="collect_vl")
    if preset.vl_eval_pairs:
        collect(data / "vl_eval", preset, tasks=[], episodes=0, vl_pairs=preset.vl_eval_pairs,
                seed=preset.vl_eval_seed, timings=timings, name="collect_vl_eval")
    init: Path | None = None
    last_ventral: Path | None = None
    recovery: dict[str, list[Path]] = {}  # task -> recovery datasets so far (aggregated, as DAgger does)
    for phase in preset.phases:
        run_dir = work / phase.name
        if phase.recovery_episodes:
            for task in phase.tasks:
                out = data / f"recovery_{phase.name}_{task}"
                collect(out, preset, tasks=[task], episodes=phase.recovery_episodes, vl_pairs=0,
                        seed=phase.recovery_seed, timings=timings, name=f"collect_recovery_{phase.name}_{task}",
                        recovery_from=init, handoff=phase.handoff, policy_steps=phase.policy_steps)
                recovery.setdefault(task, []).append(out)
        sources = [data / "vl"] if phase.stage == "ventral" else \
            [expert_data(data, t, phase.all_targets) for t in phase.tasks] + \
            [r for t in phase.tasks for r in recovery.get(t, [])]
        start = None if phase.from_scratch else init
        init = train_stage(
            phase.stage, run_dir / phase.stage, run_dir, preset, data=sources,
            seed=preset.seed if phase.seed is None else phase.seed, init_from=start,
            steps=phase.steps, overrides=phase_overrides(phase, preset.val_fraction, start))
        timings[phase.name] = json.loads((run_dir / "timing.json").read_text()).get(phase.stage, {})
        if phase.stage == "ventral":
            last_ventral = init
    assert init is not None, "a recipe needs at least one phase"
    retention = None
    if preset.vl_eval_pairs and last_ventral is not None and last_ventral != init:
        # The embodiment tax of this very model: its VLM's answers before and after action training.
        before = vqa(last_ventral, work / "eval" / "vqa_before_action.json", data / "vl_eval", preset)
        after = vqa(init, work / "eval" / "vqa_final.json", data / "vl_eval", preset)
        ratio = study_metrics.retention(before["accuracy"], after["accuracy"])  # NaN when before is 0
        retention = {"before": before["accuracy"], "after": after["accuracy"], "pairs": after["pairs"],
                     "retention": ratio if math.isfinite(ratio) else None}
    evaluation = {split: closed_loop(init, work / "eval" / f"closed_loop_{split}.json", split, preset)
                  for split in preset.eval_splits}
    first_split = preset.eval_splits[0]
    replanning = {n: closed_loop(init, work / "eval" / f"closed_loop_{first_split}_n{n}.json", first_split, preset, n)
                  for n in preset.replan_steps}
    report = {
        "preset": {**asdict(preset), "tasks": list(preset.tasks)},
        "checkpoint": str(init),
        "timings": timings,
        "training_wall_s": sum(t.get("wall_s", 0.0) for t in timings.values()),
        "success": {split: success_summary(r, preset.eval_episodes) for split, r in evaluation.items()},
        "replanning": {str(n): {"split": first_split, **success_summary(r, preset.eval_episodes)}
                       for n, r in replanning.items()},
        "inference_ms_median": evaluation[preset.eval_splits[0]].get("inference_ms_median"),
        "vqa": retention,
        "wall_s_this_invocation": time.monotonic() - started,
    }
    write_json(work / "recipe_report.json", report)
    if install is not None:
        install_model(init, install, report)
    return report


def success_summary(result: dict[str, Any], episodes_per_task: int) -> dict[str, Any]:
    """What the report and the MODEL_CARD keep of one closed_loop_success result."""
    return {"mean": result["success_rate"],
            "per_task": {t: v["success_rate"] for t, v in result["tasks"].items()},
            "episodes_per_task": episodes_per_task,
            "n_action_steps": result.get("n_action_steps"),
            "failures_nearest_a_distractor": sum(
                not e["success"] and not e.get("final_tcp_nearest_is_target", True)
                for v in result["tasks"].values() for e in v["episodes_detail"])}


def best_replan_steps(report: dict[str, Any]) -> int | None:
    """The execution horizon (action steps per chunk) with the highest measured success on the first
    evaluation split -- the default run at the robot config's n_action_steps and each replanning
    run; ties go to the shorter horizon. The installed checkpoint records it as meta.replan_steps,
    which the ROS node uses by default (the default model: 75 % through the node at 2 steps, 52 %
    replanning on every image; training notes, experiment 10). None when nothing was measured."""
    measured: dict[int, float] = {}
    first = next(iter(report.get("success", {}).values()), None)
    if first is not None and first.get("n_action_steps"):
        measured[int(first["n_action_steps"])] = first["mean"]
    for n, result in report.get("replanning", {}).items():
        measured[int(n)] = result["mean"]
    if not measured:
        return None
    return min(measured, key=lambda n: (-measured[n], n))


def install_model(checkpoint: Path, target: Path, report: dict[str, Any]) -> None:
    """Copy the checkpoint files (config, weights, processor) and write MODEL_CARD.md beside them."""
    from uam_ros.model.checkpoint import load_checkpoint

    load_checkpoint(checkpoint)  # refuse to install anything that does not load
    target.mkdir(parents=True, exist_ok=True)
    for path in checkpoint.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
    config_path = target / "config.json"
    document = json.loads(config_path.read_text())
    meta = document.setdefault("meta", {})
    if not meta.get("tasks"):
        # Checkpoints from before the trainer recorded its tasks: take them from the recipe's phases,
        # so `uam demo` runs the model on what it was trained for.
        phases = report["preset"]["phases"]
        meta["tasks"] = sorted({t for p in phases for t in p["tasks"]})
    horizon = best_replan_steps(report)
    if horizon is not None:
        meta["replan_steps"] = horizon  # config.json only: the weights and their sha256 are untouched
    config_path.write_text(json.dumps(document, indent=2) + "\n")
    (target / "MODEL_CARD.md").write_text(model_card(report, target))
    write_json(target / "recipe_report.json", report)
    log(f"installed {checkpoint} -> {target}")


def model_card(report: dict[str, Any], target: Path) -> str:
    preset = report["preset"]
    size_mb = sum(p.stat().st_size for p in target.iterdir() if p.is_file()) / 1e6
    lines = [
        f"# UAM default model: {preset['robot']}",
        "",
        f"Trained with the settings of `uam recipe --preset {preset['name']}` (uam_ros/train/recipe.py) on the "
        "2-core CPU dev VM; the numbers below were measured on this checkpoint.",
        "",
        "## Data",
        "Scripted-expert episodes from the simulator, train split, seeds 0..n-1: "
        + ", ".join(f"{task} {n}" for task, n in preset["episodes"].items())
        + (f"; {preset['vl_pairs']} vision-language pairs for the ventral phase." if preset["vl_pairs"] else
           "; action data only (no VL data)."),
    ]
    if preset.get("all_targets"):
        lines += ["", "All-targets episodes (`uam collect --all-targets`) of " + ", ".join(preset["all_targets"])
                  + ": the same layouts recorded once per object named, so that only the instruction tells a "
                  "layout's demonstrations apart."]
    recovery_phases = [p for p in preset["phases"] if p.get("recovery_episodes")]
    if recovery_phases:
        lines += ["", "Recovery episodes (DAgger-style, `uam collect --recovery-from`): the previous phase's policy "
                  "acts for a seeded random number of steps, then the scripted expert takes over from that state "
                  "and is recorded. " + "; ".join(
                      f"before phase {p['name']}: {p['recovery_episodes']} per task, seeds {p['recovery_seed']}+, "
                      f"hand-off after {p['handoff'][0]}-{p['handoff'][1]} steps"
                      + (f", the policy replanning every {p['policy_steps']} step(s)" if p.get("policy_steps") else "")
                      for p in recovery_phases)
                  + ". Later phases train on all recovery data collected so far."]
    lines += [
        "",
        "## Training (action phases end to end: every weight trained, no freezing, no stop-gradient)",
        "",
        "| phase | stage | data | steps | batch | lr | wall | samples/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    recovered: set[str] = set()
    for phase in preset["phases"]:
        t = report["timings"].get(phase["name"], {})
        if phase.get("recovery_episodes"):
            recovered |= set(phase["tasks"])
        source = "VL pairs" if phase["stage"] == "ventral" else ", ".join(
            task + (" all-targets" if phase.get("all_targets") else "") + (" + recovery" if task in recovered else "")
            for task in phase["tasks"])
        if phase.get("first_steps"):
            source += f"; first {phase['first_steps']} frame(s) x{phase['first_steps_repeat']}"
        lines.append(f"| {phase['name']} | {phase['stage']} | {source} | {phase['steps']} | {phase['batch_size']} | "
                     f"{phase['lr']:g} -> {phase['min_lr']:g}"
                     + "".join(f"; {part} x{scale:g}" for part, scale in (phase.get("lr_scale") or {}).items())
                     + f" | {t.get('wall_s', float('nan')) / 60:.1f} min | "
                     f"{t.get('samples_per_s', float('nan')):.1f} |")
    lines += [
        "",
        f"Model overrides: `{json.dumps(preset['model'])}`"
        + "".join(f"; phase {p['name']} (from scratch): `{json.dumps(p['model'])}`" for p in preset["phases"]
                  if p.get("model")) + ".",
        "",
        "## Closed-loop success (in-process sim, `uam eval`, seeds 100000+)",
        "",
        "| split | " + " | ".join(preset["tasks"]) + " | mean |",
        "|---|" + "---|" * (len(preset["tasks"]) + 1),
    ]
    for split, result in report["success"].items():
        cells = [f"{result['per_task'].get(t, float('nan')):.0%}" for t in preset["tasks"]]
        lines.append(f"| {split} | " + " | ".join(cells) + f" | {result['mean']:.0%} |")
    default_steps = next(iter(report["success"].values()), {}).get("n_action_steps")
    for n, result in report.get("replanning", {}).items():
        cells = [f"{result['per_task'].get(t, float('nan')):.0%}" for t in preset["tasks"]]
        lines.append(f"| {result['split']}, replanning every {n} step(s) | " + " | ".join(cells)
                     + f" | {result['mean']:.0%} |")
    if report.get("replanning"):
        lines += ["", "Rows without a replanning note execute the robot config's `chunk.n_action_steps` targets of "
                  "each chunk before the next inference" + (f" ({default_steps})" if default_steps else "")
                  + "."]
    horizon = best_replan_steps(report)
    if horizon is not None:
        lines += ["", f"`config.json` records `meta.replan_steps: {horizon}`, the horizon that did best above: the "
                  "ROS node (parameter `replan_steps`, default -1 = the model's) runs that many action steps of "
                  "each chunk before the next inference."]
    lines += ["", "Failed episodes that ended nearest a distractor (wrong object) rather than the target: "
              + ", ".join(f"{split} {r['failures_nearest_a_distractor']}" for split, r in report["success"].items())
              + "."]
    vqa_result = report.get("vqa")
    if vqa_result:
        ratio = vqa_result["retention"]
        lines += ["", "## Ventral VQA before and after action training (the embodiment tax)", "",
                  f"Exact-match accuracy on {vqa_result['pairs']} held-out vision-language pairs (seed "
                  f"{preset['vl_eval_seed']}): {vqa_result['before']:.3f} after the ventral phases, "
                  f"{vqa_result['after']:.3f} after action training: retention "
                  + (f"**{ratio:.0%}**" if ratio is not None else "undefined (0 before)") + " (target >= 95 %)."]
    if report.get("provenance"):
        lines += ["", f"Provenance: {report['provenance']}."]
    lines += [
        "",
        f"{preset['eval_episodes']} episodes per task and split. Median inference "
        f"{report.get('inference_ms_median') or float('nan'):.1f} ms per chunk (torch eager, 1 thread, under load).",
        "",
        f"Files: {size_mb:.1f} MB. Reproduce: `uam recipe --preset {preset['name']}`.",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--work", type=Path, default=None, help="run directory (default: runs/recipe-<preset>)")
    parser.add_argument("--install", type=Path, default=None,
                        help="copy the model here with its MODEL_CARD.md (default preset: models/default/<robot>; "
                        "quick: nowhere)")
    parser.add_argument("--seed", type=int, default=None, help="training seed of every phase (default: the preset's)")


def run(args: argparse.Namespace) -> int:
    from uam_ros.resources import models_dir

    preset = PRESETS[args.preset]
    if args.seed is not None:
        preset = replace(preset, seed=args.seed)
    # Another seed gets its own folder: the recipe resumes finished phases from whatever is there.
    work = args.work or Path("runs") / (f"recipe-{preset.name}" + ("" if args.seed is None else f"-seed{args.seed}"))
    install = args.install
    if install is None and preset.name == "default":
        install = models_dir() / "default" / preset.robot
    report = run_recipe(preset, work, install)
    print(json.dumps(report["success"], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uam recipe", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
