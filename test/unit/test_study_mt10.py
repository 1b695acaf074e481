"""The embodiment-tax study's Meta-World path end to end at toy size: a preset that borrows another
preset's VLM (vlm_from), Meta-World collection and evaluation as study stages, side-by-side `--kinds`
invocations, and the report. Skips, saying why, where Meta-World is not installed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from uam_ros.metaworld_suite.compat import MetaWorldUnavailable, import_metaworld
from uam_ros.model.checkpoint import load_checkpoint
from uam_ros.train.recipe import Phase

from test_study_presets import study

try:
    import_metaworld()
    MISSING = ""
except MetaWorldUnavailable as error:
    MISSING = str(error)
pytestmark = [pytest.mark.skipif(bool(MISSING), reason=f"Meta-World suite not testable: {MISSING}"),
              pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")]


def test_a_toy_mt10_study_runs_from_another_presets_vlm(tmp_path, monkeypatch):
    quick = study.PRESETS["quick"]
    vlm = replace(quick, name="toy_vlm", ventral=Phase("ventral", "ventral", 4, 1e-3, 1e-4, 1, 8, seed=0),
                  vl_pairs=24, vl_eval_pairs=12, max_vqa_pairs=12, seeds=(0,))
    mt10 = study.metaworld_mt10("toy_mt10", vlm)
    mt10 = replace(mt10, action=replace(mt10.action, tasks=("reach",), steps=2, batch_size=4, warmup_steps=1),
                   episodes=1, eval_episodes=1, reference_episodes=1, collect_workers=1, seeds=(0,))
    monkeypatch.setitem(study.PRESETS, "toy_vlm", vlm)
    root = tmp_path / "toy_mt10"

    assert study.run_study(mt10, root, kinds=("uam",)) is None  # a partial invocation: runs only, no report
    assert (root / "uam" / "seed0" / "run.json").is_file() and not (root / "single_stream").exists()
    results = study.run_study(mt10, root)

    # The VLM was pretrained in the borrowed preset's folder and both kinds started from it.
    ventral = tmp_path / "toy_vlm" / "ventral" / "ventral" / "checkpoint"
    assert (ventral / "config.json").is_file() and not (root / "ventral").exists()
    for kind in study.KINDS:
        action = load_checkpoint(root / kind / "seed0" / "action" / "checkpoint")
        assert action.kind == kind and action.meta["robot_name"] == "sawyer"
        assert action.meta["init_from"]["path"] == str(ventral)
        assert action.meta["tasks"] == ["reach"] and action.meta["camera"] == "corner"
    marker = json.loads((root / "data" / "mt10" / "study_stage.json").read_text())
    assert marker["summary"]["tasks"]["reach-v3"]["in_dataset"] == 1

    runs = {(r["kind"], r["seed"]) for r in results["runs"]}
    assert runs == {("uam", 0), ("single_stream", 0)}
    for run in results["runs"]:
        assert set(run["success"]) == {"mt10"}
        successes, episodes = run["success"]["mt10"]["reach-v3"]
        assert episodes == 1 and successes in (0, 1)
        assert 0.0 <= run["caption_f1"]["before"] <= 1.0 and 0.0 <= run["caption_f1"]["after"] <= 1.0
    assert results["reference_untrained_success"]["mt10"]["episodes"] == 1
    assert "retention.caption_f1" in results["report"]["per_model"]["uam"]
    invocations = json.loads((root / "invocations.json").read_text())
    assert [i["kinds"] for i in invocations] == [["uam"], ["uam", "single_stream"]]
