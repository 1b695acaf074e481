"""The numbers of the embodiment-tax study (issue #9), computed from plain per-run records.

Pure functions over numbers and dicts (numpy only, no torch, no simulator), so they are tested on
constructed inputs and can be re-run on a saved JSON without the models.

A *run record* is what ``benchmarks/embodiment_tax.py`` stores for one (model kind, seed)::

    {
      "kind": "uam",                      # or "single_stream"
      "seed": 0,
      "vqa": {                            # ventral VLM on the held-out vision-language set
        "before": {"caption": [correct, pairs], "count": [correct, pairs], ...},   # per question kind
        "after":  {...}                   # same pairs, after action training
      },
      "success": {                        # closed loop, per split and task: [successes, episodes]
        "train": {"reach": [3, 10], "press": [5, 10]},
        "heldout_combo": {...}, ...
      },
      "caption_f1": {"before": 0.41, "after": 0.40},   # optional: mean caption F1, same pairs
      "action_wall_s": 812.5,             # wall time of the action stage alone
      "curve": [[step, loss], ...]        # optional: the action stage's training loss
    }

Definitions (each has a function below):

- accuracy: exact-match share of the VL pairs; ``caption`` pairs are the caption accuracy, every
  other kind pooled is the VQA accuracy, all pairs pooled is the overall accuracy.
- caption F1 (group ``caption_f1``): partial credit for a caption, which lists a scene's objects --
  the F1 of the objects named against the reference's, as multisets, order ignored; its mean over
  the caption pairs. Exact match of a whole list is near 0 for small VLMs, which leaves caption
  retention undefined; F1 still says how much of the list a model gets right.
- retention = after / before (1.0: nothing lost). before == 0 leaves it undefined: NaN, never a
  division error or an infinity, and summaries report how many runs were undefined.
- embodiment tax = 1 - retention.
- success rate = successes / episodes, with a Wilson score interval (95 % by default) that stays
  inside [0, 1] and is meaningful at 0 or n successes, where the normal interval collapses.
- across seeds: mean and sample standard deviation (ddof = 1; NaN for one seed), non-finite values
  left out and counted.
- gap = UAM - baseline. When both have the same seeds the gap is per seed (paired: mean and std of
  the per-seed differences); otherwise mean(UAM) - mean(baseline) with std sqrt(s_u^2 + s_b^2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

CAPTION_KIND = "caption"
CAPTION_F1 = "caption_f1"  # the group of accuracy_before/after, retention and tax that holds caption F1
UAM, BASELINE = "uam", "single_stream"
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


# ------------------------------------------------------------------------------------ retention


def retention(before: float, after: float) -> float:
    """after / before; NaN when before == 0 (nothing to retain: undefined, not infinite)."""
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, (int, float, np.floating, np.integer)) or math.isnan(value) or value < 0:
            raise ValueError(f"retention: {name} must be a number >= 0, got {value!r}")
    if before == 0:
        return float("nan")
    return float(after) / float(before)


def embodiment_tax(before: float, after: float) -> float:
    """1 - retention: the share of the VLM's accuracy lost to action training (NaN when undefined)."""
    return 1.0 - retention(before, after)


def caption_items(caption: str) -> list[str]:
    """The objects a caption names: its comma-separated items, lowercased and space-normalised."""
    return [" ".join(item.lower().split()) for item in caption.split(",") if item.strip()]


def caption_f1(reference: str, predicted: str) -> float:
    """F1 of the objects named in predicted against reference (multisets: a repeated object counts per
    mention; order ignored). 1.0 when both name nothing."""
    ref, pred = caption_items(reference), caption_items(predicted)
    if not ref and not pred:
        return 1.0
    remaining = list(ref)
    matched = 0
    for item in pred:
        if item in remaining:
            remaining.remove(item)
            matched += 1
    return 2.0 * matched / (len(ref) + len(pred))


def _counts(pair: Sequence[float]) -> tuple[int, int]:
    if len(pair) != 2:
        raise ValueError(f"expected [correct, total], got {pair!r}")
    k, n = int(pair[0]), int(pair[1])
    if n < 0 or k < 0 or k > n or k != pair[0] or n != pair[1]:
        raise ValueError(f"expected integer counts 0 <= correct <= total, got {pair!r}")
    return k, n


def accuracy_groups(per_kind: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """{kind: [correct, pairs]} -> {"all", "vqa", "caption"} accuracies, pooled over pairs (NaN when
    a group has no pairs)."""
    totals = {"all": [0, 0], "vqa": [0, 0], "caption": [0, 0]}
    for kind, pair in per_kind.items():
        k, n = _counts(pair)
        group = "caption" if kind == CAPTION_KIND else "vqa"
        for name in ("all", group):
            totals[name][0] += k
            totals[name][1] += n
    return {name: (k / n if n else float("nan")) for name, (k, n) in totals.items()}


def per_kind_counts(vqa_result: Mapping[str, Any]) -> dict[str, list[int]]:
    """uam_ros.train.evaluate.vqa_accuracy(...)'s per_kind ({kind: {accuracy, pairs}}) -> counts."""
    out = {}
    for kind, row in vqa_result.get("per_kind", {}).items():
        pairs = int(row["pairs"])
        out[kind] = [int(round(float(row["accuracy"]) * pairs)), pairs]
    return out


# ------------------------------------------------------------------------------------ success


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (NaN, NaN) when n == 0."""
    k, n = _counts((successes, n))
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        low = 0.0  # exact at the boundary (floating point leaves ~1e-17)
    if k == n:
        high = 1.0
    return low, high


def success_rate(successes: int, n: int, z: float = Z95) -> dict[str, Any]:
    k, n = _counts((successes, n))
    low, high = wilson_interval(k, n, z)
    return {"successes": k, "episodes": n, "rate": k / n if n else float("nan"), "ci95": [low, high]}


def pooled_success(counts: Iterable[Sequence[int]]) -> dict[str, Any]:
    """Sum [successes, episodes] pairs (tasks of a split, or seeds of a model) into one rate + interval."""
    k = n = 0
    for pair in counts:
        a, b = _counts(pair)
        k, n = k + a, n + b
    return success_rate(k, n)


def split_success(per_task: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """{task: [successes, episodes]} -> per-task rates and the split's pooled rate (tasks weighted by
    their episodes; equal episodes per task make it the mean over tasks)."""
    return {"tasks": {task: success_rate(*pair) for task, pair in sorted(per_task.items())},
            **pooled_success(per_task.values())}


def success_counts(closed_loop: Mapping[str, Any]) -> dict[str, list[int]]:
    """uam_ros.train.evaluate.closed_loop_success(...) -> {task: [successes, episodes]}."""
    return {task: [int(r["successes"]), int(r["episodes"])] for task, r in closed_loop["tasks"].items()}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of the discordant pairs against 1/2. Two
    models run on the same layouts are compared on the layouts only one of them solves; the layouts
    both (or neither) solve say nothing about which is better."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a}, {only_b}")
    k, n = min(only_a, only_b), only_a + only_b
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n)


def paired_success(a: Mapping[Any, bool], b: Mapping[Any, bool]) -> dict[str, Any]:
    """Two models' per-episode outcomes on the same episode keys (layout seeds): the 2x2 counts and
    the exact McNemar p-value. Refuses outcomes on different episodes: an unpaired comparison needs
    other statistics."""
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b), key=str)[:5]
        raise ValueError(f"paired_success: the two runs cover different episodes (e.g. {missing})")
    both = sum(bool(a[k]) and bool(b[k]) for k in a)
    only_a = sum(bool(a[k]) and not b[k] for k in a)
    only_b = sum(bool(b[k]) and not a[k] for k in a)
    return {"episodes": len(a), "a": both + only_a, "b": both + only_b, "both": both, "only_a": only_a,
            "only_b": only_b, "neither": len(a) - both - only_a - only_b, "p_mcnemar": mcnemar_exact(only_a, only_b)}


# ------------------------------------------------------------------------------------ across seeds


def seed_summary(values: Iterable[float]) -> dict[str, Any]:
    """Mean and sample std (ddof=1) of the finite values; NaN std for a single value, NaN mean for
    none. ``dropped`` counts the non-finite values left out (e.g. undefined retentions)."""
    raw = [float(v) for v in values]
    finite = [v for v in raw if math.isfinite(v)]
    n = len(finite)
    return {
        "mean": float(np.mean(finite)) if n else float("nan"),
        "std": float(np.std(finite, ddof=1)) if n > 1 else float("nan"),
        "n": n,
        "dropped": len(raw) - n,
        "min": float(min(finite)) if n else float("nan"),
        "max": float(max(finite)) if n else float("nan"),
    }


def gap(uam: Mapping[Any, float], baseline: Mapping[Any, float]) -> dict[str, Any]:
    """UAM - baseline for one metric, given {seed: value} for each model.

    Same seeds on both sides (after dropping non-finite values): paired, per-seed differences.
    Otherwise unpaired: difference of the means, std = sqrt(std_u^2 + std_b^2)."""
    u = {s: float(v) for s, v in uam.items() if math.isfinite(float(v))}
    b = {s: float(v) for s, v in baseline.items() if math.isfinite(float(v))}
    if u and set(u) == set(b):
        diffs = {s: u[s] - b[s] for s in sorted(u)}
        summary = seed_summary(diffs.values())
        return {"mean": summary["mean"], "std": summary["std"], "n": summary["n"], "paired": True,
                "per_seed": diffs}
    su, sb = seed_summary(u.values()), seed_summary(b.values())
    std = math.sqrt(su["std"] ** 2 + sb["std"] ** 2) if su["n"] > 1 and sb["n"] > 1 else float("nan")
    return {"mean": su["mean"] - sb["mean"], "std": std, "n": min(su["n"], sb["n"]), "paired": False,
            "per_seed": {}}


# ------------------------------------------------------------------------------------ one run


def summarize_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """Derived numbers of one run record: accuracies, retention and tax per group, success per split."""
    before = accuracy_groups(run["vqa"]["before"])
    after = accuracy_groups(run["vqa"]["after"])
    f1 = run.get("caption_f1") or {}
    before[CAPTION_F1] = float("nan") if f1.get("before") is None else float(f1["before"])
    after[CAPTION_F1] = float("nan") if f1.get("after") is None else float(f1["after"])
    out: dict[str, Any] = {
        "kind": run["kind"],
        "seed": run["seed"],
        "accuracy_before": before,
        "accuracy_after": after,
        "retention": {g: _retention_or_nan(before[g], after[g]) for g in before},
        "success": {split: split_success(per_task) for split, per_task in run.get("success", {}).items()},
        "action_wall_s": float(run.get("action_wall_s", float("nan"))),
    }
    out["tax"] = {g: 1.0 - r for g, r in out["retention"].items()}
    return out


def _retention_or_nan(before: float, after: float) -> float:
    if math.isnan(before) or math.isnan(after):
        return float("nan")  # the group has no pairs
    return retention(before, after)


# ------------------------------------------------------------------------------------ the report


def build_report(runs: Sequence[Mapping[str, Any]], splits: Sequence[str] | None = None,
                 kinds: Sequence[str] | None = None, baseline: str = BASELINE) -> dict[str, Any]:
    """Per-run summaries, per-model seed summaries, UAM - baseline gaps, and the table rows.

    Metrics (keys of per_model[kind] and of gap): accuracy_before.<group>, accuracy_after.<group>,
    retention.<group>, tax.<group> for group in all/vqa/caption; success.<split>; action_wall_s."""
    summaries = [summarize_run(r) for r in runs]
    kinds = list(kinds or dict.fromkeys(s["kind"] for s in summaries))
    seen = {k: [s for s in summaries if s["kind"] == k] for k in kinds}
    for kind, rows in seen.items():
        seeds = [s["seed"] for s in rows]
        if len(seeds) != len(set(seeds)):
            raise ValueError(f"build_report: kind {kind!r} has duplicate seeds {seeds}")
    if splits is None:
        splits = list(dict.fromkeys(sp for s in summaries for sp in s["success"]))

    def metrics(summary: Mapping[str, Any]) -> dict[str, float]:
        m: dict[str, float] = {}
        for field in ("accuracy_before", "accuracy_after", "retention", "tax"):
            for group, value in summary[field].items():
                m[f"{field}.{group}"] = value
        for split in splits:
            row = summary["success"].get(split)
            m[f"success.{split}"] = row["rate"] if row else float("nan")
        m["action_wall_s"] = summary["action_wall_s"]
        return m

    per_seed = {k: {s["seed"]: metrics(s) for s in rows} for k, rows in seen.items()}
    names = list(metrics(summaries[0])) if summaries else []
    per_model: dict[str, Any] = {}
    for kind, by_seed in per_seed.items():
        per_model[kind] = {name: seed_summary(m[name] for m in by_seed.values()) for name in names}
        per_model[kind]["seeds"] = sorted(by_seed)
        per_model[kind]["pooled_success"] = {
            split: pooled_success(
                [row["tasks"][t]["successes"], row["tasks"][t]["episodes"]]
                for s in seen[kind] if (row := s["success"].get(split)) for t in row["tasks"])
            for split in splits
        }
    gaps: dict[str, Any] = {}
    for kind in kinds:
        if kind == baseline or baseline not in per_seed:
            continue
        gaps[f"{kind} - {baseline}"] = {
            name: gap({s: m[name] for s, m in per_seed[kind].items()},
                      {s: m[name] for s, m in per_seed[baseline].items()})
            for name in names
        }
    return {"runs": summaries, "splits": list(splits), "kinds": kinds, "baseline": baseline,
            "per_model": per_model, "gap": gaps, "table": table_rows(per_model, gaps, splits)}


TABLE_COLUMNS = (
    ("VQA before", "accuracy_before.vqa"),
    ("VQA after", "accuracy_after.vqa"),
    ("caption before", "accuracy_before.caption"),
    ("caption after", "accuracy_after.caption"),
    ("retention (all)", "retention.all"),
    ("retention VQA", "retention.vqa"),
    ("retention caption", "retention.caption"),
    ("caption F1 before", "accuracy_before.caption_f1"),
    ("caption F1 after", "accuracy_after.caption_f1"),
    ("retention caption F1", "retention.caption_f1"),
)


def table_rows(per_model: Mapping[str, Any], gaps: Mapping[str, Any], splits: Sequence[str]) -> list[dict[str, str]]:
    """One row per model and one per gap: every cell 'mean ± std (n)' as text, ready for Markdown."""
    columns = list(TABLE_COLUMNS) + [(f"success {s}", f"success.{s}") for s in splits] + \
        [("action wall [s]", "action_wall_s")]
    rows = []
    for kind, metrics in per_model.items():
        row = {"model": kind, "seeds": str(len(metrics["seeds"]))}
        for title, key in columns:
            row[title] = format_mean_std(metrics[key], digits=0 if key == "action_wall_s" else 3)
        rows.append(row)
    for name, metrics in gaps.items():
        some = next(iter(metrics.values()))
        row = {"model": f"gap {name}", "seeds": f"{some['n']}{' paired' if some['paired'] else ''}"}
        for title, key in columns:
            row[title] = format_mean_std(metrics[key], digits=0 if key == "action_wall_s" else 3, signed=True)
        rows.append(row)
    return rows


def format_mean_std(summary: Mapping[str, Any], digits: int = 3, signed: bool = False) -> str:
    mean, std = summary["mean"], summary["std"]
    if not math.isfinite(mean):
        text = "n/a"
    else:
        text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
        if math.isfinite(std):
            text += f" ± {std:.{digits}f}"
    dropped = summary.get("dropped", 0)
    return text + (f" ({dropped} undefined)" if dropped else "")


def markdown_table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
