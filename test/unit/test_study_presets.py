"""The embodiment-tax study's presets (benchmarks/embodiment_tax.py): the full study trains what `uam recipe`
ships, and both kinds get the same data, step budget and learning rates -- checked on the `uam train`
command lines the study would run, parsed by the trainer's own parser."""

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from uam_ros.train import trainer
from uam_ros.train.pipeline import train_argv
from uam_ros.train.recipe import PRESETS as RECIPES
from uam_ros.train.recipe import expert_data, phase_overrides

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_study():
    spec = importlib.util.spec_from_file_location("bench_embodiment_tax", BENCHMARKS / "embodiment_tax.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


study = load_study()


def action_config(preset, kind: str, seed: int, root: Path) -> trainer.TrainConfig:
    """The TrainConfig of one study action run, from the very argv the study hands `uam train`."""
    init = root / "ventral" / "ventral" / "checkpoint"
    argv = train_argv("action", root / kind / f"seed{seed}" / "action", preset, data=preset.data_dirs(root / "data"),
                      seed=seed, init_from=init, kind=kind, steps=preset.action.steps,
                      overrides=phase_overrides(preset.action, preset.val_fraction, init))
    parser = argparse.ArgumentParser()
    trainer.add_arguments(parser)
    return trainer.config_from_args(parser.parse_args(argv))


def test_full_study_is_the_shipped_recipe_at_three_seeds_including_the_shipped_one():
    full, recipe = study.PRESETS["full"], RECIPES["default"]
    ventral, action = recipe.phases
    assert full.ventral == ventral and full.action == replace(action, seed=None)
    assert full.model == recipe.model and full.val_fraction == recipe.val_fraction
    assert (full.vl_pairs, full.vl_eval_pairs, full.vl_eval_seed) == (
        recipe.vl_pairs, recipe.vl_eval_pairs, recipe.vl_eval_seed)
    assert all(recipe.episodes[task] == full.episodes for task in full.tasks)
    assert full.dorsal is None  # the recipe has no dorsal phase
    assert len(set(full.seeds)) >= 3 and recipe.seed in full.seeds
    # Laid out as the recipe lays out its data, so one collection can serve both.
    data = Path("work") / "data"
    assert full.data_dirs(data) == [expert_data(data, task, True) for task in recipe.all_targets]


def test_both_kinds_get_the_same_data_budget_and_learning_rates(tmp_path):
    for name in ("full", "quick"):
        preset = study.PRESETS[name]
        uam = action_config(preset, "uam", 1, tmp_path)
        baseline = action_config(preset, "single_stream", 1, tmp_path)
        assert (uam.kind, baseline.kind) == ("uam", "single_stream")
        assert uam.max_steps == baseline.max_steps == preset.action.steps > 0
        for field in ("batch_size", "lr", "min_lr", "warmup_steps", "lr_scale", "seed", "init_from"):
            assert getattr(uam, field) == getattr(baseline, field), field
        assert uam.data == baseline.data
        assert uam.data.train == [str(p) for p in preset.data_dirs(tmp_path / "data")]
        assert uam.data.first_steps == preset.action.first_steps == 1
        assert uam.data.val_fraction == preset.val_fraction
        assert uam.lr_scale == {"ventral": 0.003}  # slowed alike, pi0-style, in both


def test_recipes_the_study_cannot_mirror_are_refused():
    with pytest.raises(ValueError, match="one ventral phase then one action phase"):
        study.shipped_recipe("x", RECIPES["no_vl"])  # no ventral phase
    with pytest.raises(ValueError, match="one ventral phase then one action phase"):
        study.shipped_recipe("x", RECIPES["quick"])  # recovery phases
    uneven = replace(RECIPES["default"], episodes={"reach": 300, "press": 100})
    with pytest.raises(ValueError, match="same episode count"):
        study.shipped_recipe("x", uneven)


def test_mt10_study_starts_from_the_full_studys_vlm_with_its_action_phase_on_the_sawyer(tmp_path):
    from uam_ros.metaworld_suite.tasks import MT10, dataset_task

    mt10, full = study.PRESETS["mt10"], study.PRESETS["full"]
    assert study.vlm_source(mt10) is full  # the very same pretrained ventral, and the same VL eval set
    assert all(getattr(mt10, f) == getattr(full, f) for f in study.VLM_FIELDS)
    assert mt10.tasks == study.MT10_TASKS == tuple(dataset_task(t) for t in MT10)
    assert mt10.tasks[:3] == ("reach", "push", "pick_place") and len(mt10.tasks) == 10  # our dataset's spelling
    assert mt10.suite == "metaworld" and mt10.eval_splits == ("mt10",) and mt10.dorsal is None
    for kind in study.KINDS:
        cfg = action_config(mt10, kind, 0, tmp_path)
        assert cfg.robot == "sawyer" and cfg.kind == kind
        assert cfg.data.train == [str(tmp_path / "data" / "mt10")]
        assert (cfg.max_steps, cfg.lr, cfg.min_lr, cfg.batch_size, cfg.lr_scale) == (
            full.action.steps, full.action.lr, full.action.min_lr, full.action.batch_size, full.action.lr_scale)
        assert cfg.data.first_steps == 0  # an MT10 scene shows its task: no first-frame oversampling
        assert cfg.model["pointer_loss_weight"] == cfg.model["goal_pointer_weight"] == 0.0
    assert action_config(full, "uam", 0, tmp_path).robot == "franka_panda"


def test_a_preset_borrowing_another_vlm_must_agree_on_it():
    changed = replace(study.PRESETS["mt10"], vl_pairs=10)
    with pytest.raises(SystemExit, match="vl_pairs"):
        study.vlm_source(changed)


def test_resuming_refuses_other_settings_but_not_fields_added_since(tmp_path):
    import json

    full = study.PRESETS["full"]
    study.check_same_preset(full, tmp_path)
    saved = json.loads((tmp_path / "preset.json").read_text())
    for added in ("suite", "vlm_from"):  # a study folder written before these fields existed
        del saved[added]
    (tmp_path / "preset.json").write_text(json.dumps(saved))
    study.check_same_preset(replace(full, seeds=(7,)), tmp_path)  # seeds may differ: each is its own runs
    with pytest.raises(SystemExit, match="eval_episodes"):
        study.check_same_preset(replace(full, eval_episodes=3), tmp_path)
    with pytest.raises(SystemExit, match="suite"):
        study.check_same_preset(replace(full, suite="metaworld"), tmp_path)
