"""`uam recipe --preset quick`: the default-model pipeline end to end on tiny data (the CI smoke run)."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from uam_ros.train.recipe import PRESETS, run_recipe

    root = tmp_path_factory.mktemp("recipe")
    report = run_recipe(PRESETS["quick"], root / "work", root / "installed")
    return root, report


def test_quick_recipe_trains_evaluates_and_installs_a_loadable_model(quick_run):
    from uam_ros.model.checkpoint import load_checkpoint

    root, report = quick_run
    preset = report["preset"]
    assert set(report["success"]) == set(preset["eval_splits"])
    for result in report["success"].values():
        assert set(result["per_task"]) == set(preset["tasks"])
        assert 0.0 <= result["mean"] <= 1.0
    loaded = load_checkpoint(root / "installed")
    assert loaded.config.pointer_points == 8 and loaded.config.pointer_loss_weight > 0
    assert loaded.meta["init_from"] is not None  # phase B started from phase A's weights
    card = (root / "installed" / "MODEL_CARD.md").read_text()
    for phase in preset["phases"]:
        assert f"| {phase['name']} |" in card
    assert "uam recipe --preset quick" in card
    vqa = report["vqa"]  # the ventral phase's VQA vs the final model's, on held-out pairs
    assert vqa["pairs"] == preset["vl_eval_pairs"] and 0.0 <= vqa["after"] <= 1.0
    assert vqa["retention"] is None or abs(vqa["retention"] - vqa["after"] / vqa["before"]) < 1e-12
    assert "retention" in card
    replanned = report["replanning"]["2"]  # the extra run that replans every 2 targets
    assert replanned["n_action_steps"] == 2 and 0.0 <= replanned["mean"] <= 1.0
    assert set(replanned["per_task"]) == set(preset["tasks"])
    assert "replanning every 2 step(s)" in card
    assert json.loads((root / "work" / "eval" / "closed_loop_train_n2.json").read_text())["n_action_steps"] == 2
    # The installed model records the horizon that did best, for the node's replan_steps default.
    from uam_ros.model.checkpoint import recommended_replan_steps
    from uam_ros.train.recipe import best_replan_steps

    assert recommended_replan_steps(root / "installed") == best_replan_steps(report)
    assert best_replan_steps(report) in {2, report["success"][preset["eval_splits"][0]]["n_action_steps"]}
    assert f"`meta.replan_steps: {best_replan_steps(report)}`" in card


def test_best_replan_steps_picks_the_most_successful_horizon_shorter_on_ties():
    from uam_ros.train.recipe import best_replan_steps

    def report(default_mean, replanning):
        return {"success": {"train": {"mean": default_mean, "n_action_steps": 8},
                            "heldout": {"mean": 0.9, "n_action_steps": 8}},  # only the first split counts
                "replanning": {str(n): {"mean": m} for n, m in replanning.items()}}

    assert best_replan_steps(report(0.52, {1: 0.54, 2: 0.78})) == 2
    assert best_replan_steps(report(0.60, {1: 0.30, 2: 0.40})) == 8
    assert best_replan_steps(report(0.50, {1: 0.50, 2: 0.50})) == 1
    assert best_replan_steps({"success": {}, "replanning": {}}) is None


def test_quick_recipe_recovery_phase_collects_from_the_previous_policy_and_aggregates(quick_run):
    """DAgger-style phase: recovery episodes start where the previous phase's policy left the arm,
    and every later phase trains on them beside the expert episodes."""
    import yaml

    from uam_ros.train.dataset_format import DatasetReader

    root, report = quick_run
    work = root / "work"
    recovery = work / "data" / "recovery_reach_recovery_reach"
    episodes = list(DatasetReader(recovery).episodes())
    assert episodes, "no recovery episode kept"
    for episode in episodes:
        assert 2 <= episode.info.handoff_step <= 8 and episode.info.expert == "scripted recovery"
        assert episode.info.handoff_policy == str(work / "reach" / "action" / "checkpoint")
        assert episode.time_s[0] > 0.1  # the clock ran through the policy's steps first
    for phase in ("reach_recovery", "reach_press"):
        trained_on = yaml.safe_load((work / phase / "action" / "train_config.yaml").read_text())["data"]["train"]
        assert str(recovery) in trained_on, (phase, trained_on)
    assert str(recovery) not in yaml.safe_load(
        (work / "reach" / "action" / "train_config.yaml").read_text())["data"]["train"]
    assert "Recovery episodes" in (root / "installed" / "MODEL_CARD.md").read_text()


def test_quick_recipe_resumes_without_redoing_finished_phases(quick_run):
    from uam_ros.train.recipe import PRESETS, run_recipe

    root, first = quick_run
    weights = root / "work" / "reach_press" / "action" / "checkpoint" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = run_recipe(PRESETS["quick"], root / "work", None)
    assert weights.stat().st_mtime_ns == before  # not retrained
    assert again["success"] == first["success"]  # evaluation JSONs reused
    assert json.loads((root / "work" / "recipe_report.json").read_text())["checkpoint"] == first["checkpoint"]


def test_phase_lists_that_cannot_run_are_refused_before_any_work():
    from uam_ros.train.recipe import Phase, RecipePreset

    reach = Phase("reach", "action", 10, 1e-3, 1e-4, 1, 8, ("reach",))
    ventral = Phase("ventral", "ventral", 10, 1e-3, 1e-4, 1, 8)
    with pytest.raises(SystemExit, match="recovery episodes need a previous action phase"):
        RecipePreset("x", phases=(Phase("r", "action", 10, 1e-3, 1e-4, 1, 8, ("reach",), recovery_episodes=2),)).check()
    with pytest.raises(SystemExit, match="recovery episodes need a previous action phase"):
        RecipePreset("x", phases=(ventral, Phase("r", "action", 10, 1e-3, 1e-4, 1, 8, ("reach",),
                                                 recovery_episodes=2))).check()
    with pytest.raises(SystemExit, match="model overrides need fresh weights"):
        RecipePreset("x", phases=(reach, Phase("g", "action", 10, 1e-3, 1e-4, 1, 8, ("reach",),
                                               model={"goal_pointer_weight": 1.0}))).check()
    with pytest.raises(SystemExit, match="no phases"):
        RecipePreset("x").check()
    RecipePreset("x", phases=(reach, Phase("g", "action", 10, 1e-3, 1e-4, 1, 8, ("reach",), recovery_episodes=2,
                                           from_scratch=True, model={"goal_pointer_weight": 1.0}))).check()
    from uam_ros.train.recipe import PRESETS

    for preset in PRESETS.values():
        preset.check()


def test_from_scratch_phase_gets_its_model_and_the_previous_policys_recovery_data(quick_run, tmp_path):
    """The default preset's shape on the quick run's data: phase 2 starts from fresh weights with its
    own model overrides, on the all-targets episodes plus recovery episodes collected with phase 1's
    policy, with its first frames oversampled."""
    import yaml

    from uam_ros.model.checkpoint import load_checkpoint
    from uam_ros.sim.tasks import RETARGET_STRIDE
    from uam_ros.train.dataset_format import DatasetReader
    from uam_ros.train.recipe import PRESETS, Phase, RecipePreset, run_recipe

    root, _ = quick_run
    quick = PRESETS["quick"]
    work = tmp_path / "work"
    for task in ("reach",):  # the same expert data (and its done-marker): collection is skipped
        (work / "data" / task).mkdir(parents=True)
        for path in (root / "work" / "data" / task).iterdir():
            os.link(path, work / "data" / task / path.name)
    preset = RecipePreset(
        "scratch_check", episodes={"reach": 2}, all_targets=("reach",), model=dict(quick.model),
        val_fraction=quick.val_fraction, collect_workers=1, eval_splits=("train",), eval_episodes=1,
        phases=(Phase("reach", "action", 6, 1e-3, 1e-4, 1, 8, ("reach",), seed=5),
                Phase("goal", "action", 6, 1e-3, 1e-4, 1, 8, ("reach",), recovery_episodes=2, recovery_seed=2000,
                      handoff=(2, 4), policy_steps=2, from_scratch=True, all_targets=True, first_steps=1,
                      first_steps_repeat=3, model={"goal_pointer_weight": 1.0})), seed=3)
    assert preset.plain_tasks == ("reach",)  # phase 1 trains on the plain episodes
    report = run_recipe(preset, work, None)
    final = load_checkpoint(report["checkpoint"])
    first = load_checkpoint(work / "reach" / "action" / "checkpoint")
    assert final.config.goal_pointer_weight == 1.0 and first.config.goal_pointer_weight == 0.0
    assert final.meta["init_from"] is None  # fresh weights, not phase 1's
    assert "--policy-steps 2" in report["timings"]["collect_recovery_goal_reach"]["command"]
    episodes = list(DatasetReader(work / "data" / "recovery_goal_reach").episodes())
    assert episodes and all(e.info.handoff_policy == str(work / "reach" / "action" / "checkpoint") for e in episodes)
    trained = yaml.safe_load((work / "goal" / "action" / "train_config.yaml").read_text())["data"]
    assert trained["train"] == [str(work / "data" / "reach_all_targets"), str(work / "data" / "recovery_goal_reach")]
    assert (trained["first_steps"], trained["first_steps_repeat"]) == (1, 3)
    for phase, seed in (("reach", 5), ("goal", 3)):  # the preset's seed, unless the phase names its own
        assert yaml.safe_load((work / phase / "action" / "train_config.yaml").read_text())["seed"] == seed
    first_phase = yaml.safe_load((work / "reach" / "action" / "train_config.yaml").read_text())["data"]
    assert first_phase["train"] == [str(work / "data" / "reach")] and first_phase["first_steps"] == 0
    named = {e.info.seed for e in DatasetReader(work / "data" / "reach_all_targets").episodes()}
    assert {s % RETARGET_STRIDE for s in named} <= {0, 1} and any(s >= RETARGET_STRIDE for s in named), named
    assert "--all-targets" in report["timings"]["collect_reach_all_targets"]["command"]
    from uam_ros.train.recipe import model_card

    card = model_card(report, work / "goal" / "action" / "checkpoint")
    assert "All-targets episodes (`uam collect --all-targets`) of reach" in card
    assert "| goal | action | reach all-targets + recovery; first 1 frame(s) x3 |" in card


def test_no_vl_preset_is_one_grounded_two_task_phase_without_plain_episodes():
    """The previous default recipe (experiment 13): reach and press from fresh weights on all-targets episodes
    only, with the normalised instruction FiLM; nothing collects plain episodes no phase trains on."""
    from uam_ros.model.config import UAMConfig
    from uam_ros.train.recipe import PRESETS

    no_vl = PRESETS["no_vl"]
    (phase,) = no_vl.phases
    assert set(phase.tasks) == set(no_vl.tasks) == {"reach", "press"} and phase.all_targets
    assert set(no_vl.all_targets) == {"reach", "press"} and no_vl.plain_tasks == ()
    config = UAMConfig(**{**no_vl.model, **phase.model})
    assert config.instruction_norm and config.language_film and config.film_source == "words"
    assert set(PRESETS["quick"].plain_tasks) == {"reach", "press"}


def test_default_preset_pretrains_the_ventral_then_slows_it_with_the_dorsal_reading_its_own_words():
    """The shipped recipe (experiment 14): VL pairs and held-out pairs (so the report has a retention figure), a
    ventral phase whose fresh weights carry the dorsal's FiLM settings, then reach + press from it with
    the ventral slowed, not frozen."""
    from uam_ros.model.config import UAMConfig
    from uam_ros.train.recipe import PRESETS

    default = PRESETS["default"]
    default.check()
    ventral, action = default.phases
    assert ventral.stage == "ventral" and action.stage == "action" and not action.from_scratch
    assert ventral.seed == 0 and action.seed is None and default.seed == 1  # --seed N: the action phase only
    assert default.vl_pairs > 0 and default.vl_eval_pairs > 0
    assert 0 < action.lr_scale["ventral"] < 1 and set(action.lr_scale) == {"ventral"}
    config = UAMConfig(**default.model)
    assert config.film_source == "dorsal_words" and config.instruction_norm and config.language_film
    assert action.all_targets and set(action.tasks) == set(default.all_targets) and default.plain_tasks == ()
