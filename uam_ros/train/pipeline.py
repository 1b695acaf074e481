"""The training pipeline's stages as resumable steps: collect, train a stage, VQA, closed loop.

Shared by the default-model recipe (uam_ros.train.recipe, `uam recipe`) and the embodiment-tax study
(benchmarks/embodiment_tax.py), so both run exactly the commands a user would type (`uam collect`,
`uam train`, `uam eval`) -- called in this process so torch and MuJoCo load once -- and both skip a
stage whose output already exists (an interrupted training stage resumes from its latest/ state).

`settings` is any object with the fields the stages read (the study's and the recipe's Preset):
robot, tasks, threads, device, batch_size, warmup_steps, model (UAMConfig overrides, applied at the
first stage that builds the network), collect_workers, eval_episodes, max_vqa_pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "train"
STAGE_DONE = "study_stage.json"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def clean_json(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), tuples -> lists, Paths -> str, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean_json(data), indent=1, allow_nan=False) + "\n")
    tmp.rename(path)


class Timer:
    """Wall and CPU seconds of this process over a with-block (the stages run in this process)."""

    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.monotonic(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall_s = time.monotonic() - self.wall0
        self.cpu_s = time.process_time() - self.cpu0


@contextlib.contextmanager
def logged(path: Path):
    """Send the stage's stdout/stderr (trainer lines, progress) to path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        print(f"==== {time.strftime('%Y-%m-%dT%H:%M:%S')}", flush=True)
        yield


def record_timing(run_dir: Path, stage: str, timer: Timer, **extra: Any) -> None:
    path = run_dir / "timing.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[stage] = {"wall_s": timer.wall_s, "cpu_s": timer.cpu_s, **extra}
    write_json(path, data)


def timing(run_dir: Path, stage: str) -> dict[str, Any]:
    path = run_dir / "timing.json"
    return (json.loads(path.read_text()) if path.is_file() else {}).get(stage, {})


# ------------------------------------------------------------------------------------------ stages


def collect(out: Path, settings: Any, *, tasks: list[str], episodes: int, vl_pairs: int, seed: int,
            timings: dict[str, Any], name: str, recovery_from: Path | None = None,
            handoff: tuple[int, int] | None = None, policy_steps: int = 0, all_targets: bool = False) -> None:
    """`uam collect` (resumable itself); skipped when a previous invocation finished. With
    ``recovery_from``: recovery episodes (that checkpoint's policy first, then the expert); with
    ``all_targets``: each layout once per object named (`uam collect --all-targets`)."""
    from uam_ros.train import collect as collect_mod

    marker = out / STAGE_DONE
    if marker.is_file():
        timings[name] = json.loads(marker.read_text())
        return
    argv = ["--robot", settings.robot, "--tasks", *tasks, "--episodes", str(episodes), "--split", "train",
            "--out", str(out), "--workers", str(settings.collect_workers), "--seed", str(seed),
            "--vl-pairs", str(vl_pairs)]
    if all_targets:
        argv += ["--all-targets"]
    if recovery_from is not None:
        argv += ["--recovery-from", str(recovery_from)]
        if handoff is not None:
            argv += ["--handoff", str(handoff[0]), str(handoff[1])]
        if policy_steps:
            argv += ["--policy-steps", str(policy_steps)]
    parser = argparse.ArgumentParser()
    collect_mod.add_arguments(parser)
    log(f"collect {name}: uam collect {shlex.join(argv)}")
    with Timer() as timer, logged(out.parent / f"{name}.log"):
        code = collect_mod.run(parser.parse_args(argv))
    if code != 0:
        raise SystemExit(f"collect {name} failed (exit {code}); see {out.parent / f'{name}.log'}")
    info = {"wall_s": timer.wall_s, "cpu_s": timer.cpu_s, "command": "uam collect " + shlex.join(argv)}
    write_json(marker, info)
    timings[name] = info
    log(f"collect {name}: {timer.wall_s:.0f} s")


def train_argv(stage: str, out_dir: Path, settings: Any, *, data: Path | list[Path], seed: int,
               init_from: Path | None = None, kind: str = "uam", steps: int = 0,
               overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The `uam train` command line of one stage run (train_stage's; tests parse it with the trainer's own
    parser to check what a run is given)."""
    argv = ["--stage", stage, "--config", str(CONFIG_DIR / f"{stage}.yaml"), "--kind", kind,
            "--out-dir", str(out_dir), "--seed", str(seed),
            "--set", f"data.train=[{','.join(map(str, data if isinstance(data, list) else [data]))}]",
            "--set", f"robot={settings.robot}", "--set", f"threads={settings.threads}", "--device", settings.device]
    if settings.batch_size:
        argv += ["--batch-size", str(settings.batch_size)]
    if settings.warmup_steps is not None:
        argv += ["--set", f"warmup_steps={settings.warmup_steps}"]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    if steps:
        argv += ["--max-steps", str(steps)]
    if init_from is None:
        argv += [f"--set=model.{k}={v}" for k, v in settings.model.items()]
    for override in overrides:
        argv += ["--set", override]
    return argv


def train_stage(stage: str, out_dir: Path, run_dir: Path, settings: Any, *, data: Path | list[Path], seed: int,
                init_from: Path | None = None, kind: str = "uam", steps: int = 0,
                overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """`uam train --stage STAGE` with the settings' overrides (+ `--set` overrides); skipped when
    out_dir/checkpoint exists. Model overrides go to the first stage (no init_from): later stages
    inherit the network from their init checkpoint."""
    from uam_ros.train import trainer

    checkpoint = out_dir / trainer.FINAL
    if (checkpoint / "config.json").is_file():
        return checkpoint
    argv = train_argv(stage, out_dir, settings, data=data, seed=seed, init_from=init_from, kind=kind, steps=steps,
                      overrides=overrides)
    parser = argparse.ArgumentParser()
    trainer.add_arguments(parser)
    cfg = trainer.config_from_args(parser.parse_args(argv))
    resumed = trainer.find_training_state(out_dir) is not None
    log(f"train {stage} {kind} seed {seed}{' (resuming)' if resumed else ''}: uam train {shlex.join(argv)}")
    with Timer() as timer, logged(out_dir.parent / f"{stage}.log"):
        result = trainer.train(cfg)
    if result.checkpoint is None:
        raise SystemExit(f"train {stage} stopped at step {result.step}/{result.total_steps}")
    record_timing(run_dir, stage, timer, steps=result.total_steps, resumed=resumed,
                  samples_per_s=result.samples_per_s, command="uam train " + shlex.join(argv))
    log(f"train {stage} {kind} seed {seed}: {result.total_steps} steps in {timer.wall_s:.0f} s "
        f"({result.samples_per_s:.1f} samples/s)")
    return checkpoint


def vqa(checkpoint: Path, out: Path, vl_eval: Path, settings: Any) -> dict[str, Any]:
    from uam_ros.train.evaluate import vqa_accuracy

    if out.is_file():
        cached = json.loads(out.read_text())
        if "caption_f1" in cached:
            return cached
        log(f"vqa {out}: written before caption F1 was measured; measuring again")  # a few seconds
    with Timer() as timer:
        result = vqa_accuracy(checkpoint, vl_eval, max_pairs=settings.max_vqa_pairs)
    result["wall_s"] = timer.wall_s
    limit = f" --max-pairs {settings.max_vqa_pairs}" if settings.max_vqa_pairs else ""
    result["command"] = f"uam eval --checkpoint {checkpoint} --vl {vl_eval}{limit}"
    write_json(out, result)
    log(f"vqa {checkpoint.parent.name}: accuracy {result['accuracy']:.3f} on {result['pairs']} pairs "
        f"({timer.wall_s:.0f} s)")
    return result


def closed_loop(checkpoint: Path, out: Path, split: str, settings: Any,
                n_action_steps: int | None = None, episodes: int | None = None) -> dict[str, Any]:
    """`uam eval` success on one split, episodes per task (default settings.eval_episodes)."""
    from uam_ros.train.evaluate import closed_loop_success

    if out.is_file():
        return json.loads(out.read_text())
    episodes = episodes or settings.eval_episodes
    result = closed_loop_success(checkpoint, settings.robot, list(settings.tasks), split, episodes,
                                 n_action_steps=n_action_steps, threads=settings.threads, progress=False)
    result["command"] = (f"uam eval --checkpoint {checkpoint} --tasks {' '.join(settings.tasks)} --split {split} "
                         f"--episodes {episodes}"
                         + (f" --n-action-steps {n_action_steps}" if n_action_steps else ""))
    write_json(out, result)
    log(f"closed loop {split}: {result['success_rate']:.2f} over {episodes} x {len(settings.tasks)} "
        f"episodes ({result['wall_s']:.0f} s)")
    return result


# ------------------------------------------------------------------------------------------ Meta-World


def metaworld_collect(out: Path, settings: Any, *, episodes: int, timings: dict[str, Any],
                      name: str = "collect_mt10") -> None:
    """`python -m uam_ros.metaworld_suite collect` of settings.tasks (seeds 0..episodes-1; resumable
    itself); skipped when a previous invocation finished. A task with no successful episode stops it."""
    from uam_ros.metaworld_suite.collect import collect as collect_metaworld

    marker = out / STAGE_DONE
    if marker.is_file():
        timings[name] = json.loads(marker.read_text())
        return
    command = (f"python -m uam_ros.metaworld_suite collect --tasks {' '.join(settings.tasks)} --episodes {episodes} "
               f"--robot {settings.robot} --out {out} --workers {settings.collect_workers}")
    log(f"collect {name}: {command}")
    with Timer() as timer, logged(out.parent / f"{name}.log"):
        summary = collect_metaworld(list(settings.tasks), episodes, out, seed=0, robot=settings.robot,
                                    workers=settings.collect_workers, progress=False)
    empty = sorted(task for task, counts in summary["tasks"].items() if not counts["in_dataset"])
    if empty:
        raise SystemExit(f"collect {name}: no successful scripted episode of {empty}; see {out.parent / f'{name}.log'}")
    info = {"wall_s": timer.wall_s, "cpu_s": timer.cpu_s, "command": command, "summary": summary}
    write_json(marker, info)
    timings[name] = info
    log(f"collect {name}: {summary['episodes_in_dataset']} episodes, {timer.wall_s:.0f} s")


def metaworld_closed_loop(checkpoint: Path, out: Path, settings: Any, episodes: int | None = None) -> dict[str, Any]:
    """Meta-World success (its info["success"]) of a checkpoint on settings.tasks, episodes per task at
    the evaluation seeds (100000+: layouts collection never sees)."""
    from uam_ros.metaworld_suite.evaluate import evaluate

    if out.is_file():
        return json.loads(out.read_text())
    episodes = episodes or settings.eval_episodes
    result = evaluate(str(checkpoint), list(settings.tasks), episodes, robot=settings.robot, progress=False)
    result["command"] = (f"python -m uam_ros.metaworld_suite eval --model {checkpoint} --tasks "
                         f"{' '.join(settings.tasks)} --episodes {episodes} --robot {settings.robot}")
    write_json(out, result)
    log(f"metaworld closed loop: {result['success_rate']:.2f} over {episodes} x {len(settings.tasks)} episodes "
        f"({result['wall_s']:.0f} s)")
    return result
