"""The embodiment-tax study's metrics (uam_ros.train.study_metrics) on constructed inputs, exact numbers."""

import math

import pytest

from uam_ros.train.study_metrics import (
    accuracy_groups,
    build_report,
    caption_f1,
    caption_items,
    embodiment_tax,
    format_mean_std,
    gap,
    markdown_table,
    mcnemar_exact,
    paired_success,
    per_kind_counts,
    pooled_success,
    retention,
    seed_summary,
    split_success,
    success_counts,
    success_rate,
    summarize_run,
    wilson_interval,
)

approx = pytest.approx


# ---------------------------------------------------------------- retention


def test_retention_is_after_over_before():
    assert retention(0.8, 0.6) == approx(0.75)
    assert retention(0.5, 0.5) == 1.0
    assert retention(0.4, 0.6) == approx(1.5)  # action training can also help
    assert embodiment_tax(0.8, 0.6) == approx(0.25)
    assert retention(4, 3) == approx(0.75)  # counts work too


def test_retention_with_nothing_before_is_undefined_not_infinite():
    assert math.isnan(retention(0.0, 0.0))
    assert math.isnan(retention(0, 0.3))
    assert math.isnan(embodiment_tax(0.0, 0.3))


@pytest.mark.parametrize("before,after", [(-0.1, 0.5), (0.5, -0.1), (float("nan"), 0.5), ("0.5", 0.5)])
def test_retention_rejects_bad_inputs(before, after):
    with pytest.raises(ValueError):
        retention(before, after)


def test_accuracy_groups_split_captions_from_vqa():
    groups = accuracy_groups({"caption": [3, 4], "color": [1, 2], "count": [0, 2]})
    assert groups == {"all": approx(0.5), "vqa": approx(0.25), "caption": approx(0.75)}
    only_vqa = accuracy_groups({"color": [1, 4]})
    assert only_vqa["vqa"] == 0.25 and math.isnan(only_vqa["caption"])
    with pytest.raises(ValueError):
        accuracy_groups({"color": [5, 4]})


def test_caption_f1_gives_partial_credit_for_the_objects_named():
    reference = "purple button, orange cross"
    assert caption_f1(reference, "purple button, orange cross") == 1.0
    assert caption_f1(reference, "orange cross, purple button") == 1.0  # order is not scored
    assert caption_f1(reference, "purple button") == approx(2 / 3)  # precision 1, recall 1/2
    assert caption_f1(reference, "purple button, red block, green hexagon") == approx(2 * 1 / 5)
    assert caption_f1(reference, "green block, purple hexagon, red block") == 0.0
    assert caption_f1(reference, "") == 0.0 and caption_f1("", "") == 1.0
    # multisets: a second mention of one object matches only a second one in the reference
    assert caption_f1("red block, red block", "red block") == approx(2 / 3)
    assert caption_f1("red block", "red block, red block") == approx(2 / 3)
    assert caption_items(" Purple  Button ,orange cross,") == ["purple button", "orange cross"]


def test_caption_f1_retention_in_a_run_and_the_report():
    runs = [dict(_run(kind, seed, {"caption": [0, 10], "color": [3, 10]}, {}, 1.0,
                      before={"caption": [0, 10], "color": [6, 10]}),
                 caption_f1={"before": 0.4, "after": after})
            for kind, seed, after in (("uam", 0, 0.38), ("uam", 1, 0.4), ("single_stream", 0, 0.2),
                                      ("single_stream", 1, 0.3))]
    s = summarize_run(runs[0])
    assert s["accuracy_before"]["caption_f1"] == 0.4 and s["retention"]["caption_f1"] == approx(0.95)
    assert math.isnan(s["retention"]["caption"])  # exact match: 0 before, undefined
    report = build_report(runs)
    assert report["per_model"]["uam"]["retention.caption_f1"]["mean"] == approx(0.975)
    assert report["gap"]["uam - single_stream"]["retention.caption_f1"]["mean"] == approx(0.975 - 0.625)
    row = {r["model"]: r for r in report["table"]}["single_stream"]
    assert row["retention caption F1"] == "0.625 ± 0.177" and row["caption F1 before"] == "0.400 ± 0.000"


def test_per_kind_counts_from_an_eval_result():
    result = {"accuracy": 0.5, "pairs": 8,
              "per_kind": {"caption": {"accuracy": 0.75, "pairs": 4}, "color": {"accuracy": 0.25, "pairs": 4}}}
    assert per_kind_counts(result) == {"caption": [3, 4], "color": [1, 4]}


# ---------------------------------------------------------------- success


def test_wilson_interval_known_values():
    assert wilson_interval(5, 10) == (approx(0.236593, abs=1e-6), approx(0.763407, abs=1e-6))
    assert wilson_interval(0, 10) == (0.0, approx(0.277533, abs=1e-6))
    assert wilson_interval(10, 10) == (approx(0.722467, abs=1e-6), 1.0)
    assert wilson_interval(8, 16) == (approx(0.279996, abs=1e-6), approx(0.720004, abs=1e-6))
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
    wide, narrow = wilson_interval(1, 4), wilson_interval(25, 100)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]  # more episodes, tighter interval


@pytest.mark.parametrize("k,n", [(3, 2), (-1, 4), (1.5, 4)])
def test_success_rate_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        success_rate(k, n)


def test_split_success_pools_tasks_by_episodes():
    row = split_success({"reach": [2, 4], "press": [1, 4]})
    assert row["rate"] == 0.375 and row["successes"] == 3 and row["episodes"] == 8
    assert row["tasks"]["reach"]["rate"] == 0.5 and row["tasks"]["press"]["rate"] == 0.25
    assert row["ci95"] == list(wilson_interval(3, 8))
    assert pooled_success([[0, 5], [5, 5]])["rate"] == 0.5


def test_success_counts_from_a_closed_loop_result():
    result = {"tasks": {"reach": {"success_rate": 0.5, "successes": 2, "episodes": 4, "episodes_detail": []}}}
    assert success_counts(result) == {"reach": [2, 4]}


# ---------------------------------------------------------------- across seeds, gaps


def test_seed_summary_mean_and_sample_std():
    s = seed_summary([1.0, 2.0, 3.0])
    assert (s["mean"], s["std"], s["n"], s["dropped"], s["min"], s["max"]) == (2.0, 1.0, 3, 0, 1.0, 3.0)
    one = seed_summary([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["std"])
    with_nan = seed_summary([1.0, float("nan"), 3.0])
    assert with_nan["mean"] == 2.0 and with_nan["n"] == 2 and with_nan["dropped"] == 1
    assert with_nan["std"] == approx(math.sqrt(2))
    assert math.isnan(seed_summary([])["mean"])


def test_gap_is_paired_by_seed_when_the_seeds_match():
    g = gap({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.5, 1: 0.6, 2: 0.4})
    assert g["paired"] and g["n"] == 3
    assert g["mean"] == approx(0.3) and g["std"] == approx(0.1)
    assert g["per_seed"] == {0: approx(0.4), 1: approx(0.2), 2: approx(0.3)}


def test_gap_unpaired_when_the_seeds_differ():
    g = gap({0: 1.0, 1: 3.0}, {5: 0.0, 6: 2.0, 7: 4.0})
    assert not g["paired"] and g["mean"] == approx(0.0)
    assert g["std"] == approx(math.sqrt(2.0 + 4.0))  # sqrt(std_u^2 + std_b^2)


# ---------------------------------------------------------------- the report


def _run(kind, seed, after, success, wall, before=None):
    before = before or {"caption": [8, 10], "color": [6, 10]}
    return {"kind": kind, "seed": seed, "vqa": {"before": before, "after": after}, "success": success,
            "action_wall_s": wall}


RUNS = [
    _run("uam", 0, {"caption": [8, 10], "color": [3, 10]},
         {"train": {"reach": [2, 4], "press": [1, 4]}, "heldout_combo": {"reach": [0, 4], "press": [0, 4]}}, 100.0),
    _run("uam", 1, {"caption": [6, 10], "color": [6, 10]},
         {"train": {"reach": [4, 4], "press": [1, 4]}, "heldout_combo": {"reach": [1, 4], "press": [0, 4]}}, 120.0),
    _run("single_stream", 0, {"caption": [4, 10], "color": [3, 10]},
         {"train": {"reach": [1, 4], "press": [1, 4]}, "heldout_combo": {"reach": [0, 4], "press": [0, 4]}}, 80.0),
    _run("single_stream", 1, {"caption": [8, 10], "color": [0, 10]},
         {"train": {"reach": [0, 4], "press": [0, 4]}, "heldout_combo": {"reach": [0, 4], "press": [0, 4]}}, 90.0),
]


def test_summarize_run():
    s = summarize_run(RUNS[0])
    for field in ("accuracy_before", "accuracy_after", "retention", "tax"):  # no caption F1 recorded
        assert math.isnan(s[field].pop("caption_f1")), field
    assert s["accuracy_before"] == {"all": approx(0.7), "vqa": approx(0.6), "caption": approx(0.8)}
    assert s["accuracy_after"] == {"all": approx(0.55), "vqa": approx(0.3), "caption": approx(0.8)}
    assert s["retention"] == {"all": approx(0.55 / 0.7), "vqa": approx(0.5), "caption": approx(1.0)}
    assert s["tax"]["vqa"] == approx(0.5)
    assert s["success"]["train"]["rate"] == 0.375
    assert s["action_wall_s"] == 100.0


def test_build_report_numbers():
    report = build_report(RUNS)
    assert report["kinds"] == ["uam", "single_stream"] and report["splits"] == ["train", "heldout_combo"]
    uam, base = report["per_model"]["uam"], report["per_model"]["single_stream"]
    assert uam["seeds"] == [0, 1]
    # retention (all): seed 0 0.55/0.7, seed 1 0.6/0.7
    assert uam["retention.all"]["mean"] == approx((0.55 + 0.6) / 1.4)
    assert uam["retention.all"]["std"] == approx(0.05 / 0.7 / math.sqrt(2))
    assert base["retention.all"]["mean"] == approx((0.35 + 0.4) / 1.4)
    assert base["retention.vqa"]["mean"] == approx(0.25) and base["retention.vqa"]["std"] == approx(0.5 / math.sqrt(2))
    assert uam["success.train"]["mean"] == approx(0.5) and uam["success.train"]["std"] == approx(0.125 * math.sqrt(2))
    assert uam["success.heldout_combo"]["mean"] == approx(0.0625)
    assert uam["pooled_success"]["train"]["successes"] == 8 and uam["pooled_success"]["train"]["episodes"] == 16
    assert uam["pooled_success"]["train"]["ci95"] == [approx(0.279996, abs=1e-6), approx(0.720004, abs=1e-6)]
    assert uam["action_wall_s"]["mean"] == 110.0
    g = report["gap"]["uam - single_stream"]
    assert g["retention.all"]["paired"]
    assert g["retention.all"]["mean"] == approx(0.2 / 0.7) and g["retention.all"]["std"] == approx(0.0, abs=1e-12)
    assert g["success.train"]["mean"] == approx(0.375)  # (0.375 - 0.25) and (0.625 - 0)
    assert g["action_wall_s"]["mean"] == 25.0


def test_report_table_text():
    report = build_report(RUNS)
    rows = {r["model"]: r for r in report["table"]}
    assert set(rows) == {"uam", "single_stream", "gap uam - single_stream"}
    assert rows["uam"]["seeds"] == "2"
    assert rows["uam"]["retention (all)"] == "0.821 ± 0.051"
    assert rows["uam"]["success train"] == "0.500 ± 0.177"
    assert rows["uam"]["action wall [s]"] == "110 ± 14"
    assert rows["gap uam - single_stream"]["retention (all)"] == "+0.286 ± 0.000"
    assert rows["gap uam - single_stream"]["seeds"] == "2 paired"
    text = markdown_table(report["table"])
    assert text.splitlines()[0].startswith("| model | seeds | VQA before |")
    assert len(text.splitlines()) == 2 + 3


def test_report_counts_undefined_retentions():
    zero_before = {"caption": [0, 10], "color": [6, 10]}
    runs = [_run("uam", s, {"caption": [1, 10], "color": [3, 10]}, {}, 1.0, before=zero_before) for s in (0, 1)]
    report = build_report(runs)
    caption = report["per_model"]["uam"]["retention.caption"]
    assert caption["n"] == 0 and caption["dropped"] == 2 and math.isnan(caption["mean"])
    assert report["per_model"]["uam"]["retention.vqa"]["mean"] == approx(0.5)
    assert format_mean_std(caption) == "n/a (2 undefined)"
    assert report["gap"] == {}  # no baseline runs


def test_report_refuses_duplicate_seeds():
    with pytest.raises(ValueError, match="duplicate"):
        build_report([RUNS[0], RUNS[0]])


# ---------------------------------------------------------------- paired comparison (McNemar)


def test_mcnemar_exact_matches_the_binomial_test_by_hand():
    assert mcnemar_exact(0, 6) == approx(2 / 64)  # all 6 discordant pairs one way: 2 * 0.5^6
    assert mcnemar_exact(6, 0) == mcnemar_exact(0, 6)  # two-sided: symmetric
    assert mcnemar_exact(1, 5) == approx(2 * (1 + 6) / 64)  # 2 * P(X <= 1), X ~ Bin(6, 1/2)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0  # capped at 1; no discordance
    assert mcnemar_exact(12, 42) == approx(5.2094e-5, rel=1e-4)  # experiment 11b (reach); scipy binomtest agrees
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_paired_success_counts_the_two_by_two_table():
    a = {0: True, 1: True, 2: False, 3: False, 4: True}
    b = {0: True, 1: False, 2: True, 3: False, 4: False}
    r = paired_success(a, b)
    assert (r["a"], r["b"], r["both"], r["only_a"], r["only_b"], r["neither"]) == (3, 2, 1, 2, 1, 1)
    assert r["episodes"] == 5 and r["p_mcnemar"] == approx(mcnemar_exact(2, 1))
    with pytest.raises(ValueError, match="different episodes"):
        paired_success(a, {**b, 5: True})
