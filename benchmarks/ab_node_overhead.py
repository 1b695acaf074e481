"""A/B of node_overhead.py: the working tree against an older revision, runs alternated in pairs.

Why: on a shared machine one run's figures drift by as much as a code change moves them (torch
inference 13-20 ms between runs of one afternoon), so a change is judged by pairs run back to back,
the order flipped every pair, on the same machine: what benchmarks/README.md reports as "alternated
pairs". The base revision is checked out into a temporary git worktree and runs its own
benchmarks/node_overhead.py with this interpreter; arguments after `--` go to both runs (they must
exist in both versions of the script). Reports, per pair and as medians: the chunk tick (CPU p50),
the per-chunk path (ms, % of torch inference) and the same with the EventsExecutor, and how many
pairs the working tree won. Writes results/<name>.json + .png.

    python benchmarks/ab_node_overhead.py --base 6dc3bb4 --pairs 5 -- --rounds 3 --backends torch --no-compare-path
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, bench_parser, machine_info, save_figure, timestamp, write_result  # noqa: E402

FIGURES = ("chunk_tick_ms", "per_chunk_path_ms", "torch_pct", "torch_pct_events")


def figures(result: dict) -> dict[str, float]:
    """The figures compared, from one node_overhead.py result (thread CPU time)."""
    overhead = result["overhead_cpu_time"]
    events = result.get("overhead_if_events_executor", {}).get("cpu_time")
    return {
        "chunk_tick_ms": result["unit_costs_cpu"]["tick_chunk"]["p50_ms"],
        "per_chunk_path_ms": overhead["per_chunk_path_ms"],
        "torch_pct": overhead["backends"]["torch"]["per_chunk_path_pct"],
        "torch_pct_events": events["backends"]["torch"]["per_chunk_path_pct"] if events else float("nan"),
        "torch_inference_ms": overhead["backends"]["torch"]["inference_p50_ms"],
    }


def compare(pairs: list[dict[str, dict[str, float]]]) -> dict:
    """Medians of each side and how many pairs the new side had lower (smaller is better for all)."""
    summary = {}
    for key in FIGURES:
        base = np.array([p["base"][key] for p in pairs])
        new = np.array([p["new"][key] for p in pairs])
        valid = ~(np.isnan(base) | np.isnan(new))
        summary[key] = {"base_median": float(np.median(base[valid])) if valid.any() else float("nan"),
                        "new_median": float(np.median(new[valid])) if valid.any() else float("nan"),
                        "new_lower_in": int(np.sum(new[valid] < base[valid])), "pairs": int(valid.sum())}
    return summary


def run_overhead(tree: Path, name: str, out: Path, extra: list[str]) -> dict:
    command = [sys.executable, str(tree / "benchmarks" / "node_overhead.py"), *extra, "--name", name, "--out", str(out)]
    completed = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed ({completed.returncode}):\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    return json.loads((out / f"{name}.json").read_text())


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in FIGURES if not np.isnan(result["summary"][k]["base_median"])]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 4.2))
    for ax, key in zip(np.atleast_1d(axes), keys):
        for pair in result["pairs"]:
            ax.plot([0, 1], [pair["base"][key], pair["new"][key]], "o-", color="tab:blue", alpha=0.7)
        ax.set_xticks([0, 1], [result["base"], f"working tree\n{result['working_tree']}"], fontsize=8)
        ax.set_title(key, fontsize=9)
        if key.endswith("pct") or key.endswith("events"):
            ax.axhline(5.0, color="r", ls="--", lw=1)
    save_figure(fig, path, f"node_overhead.py, {len(result['pairs'])} alternated pairs: {result['base']} vs "
                f"{result['working_tree']} ({' '.join(result['node_overhead_args'])})")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = bench_parser(__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--name", default="ab_node_overhead")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base_rev = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    working_tree = head + ("+uncommitted changes" if dirty else "")
    env = machine_info()
    with tempfile.TemporaryDirectory(prefix="uam-ab-") as tmp:
        tmp = Path(tmp)
        base_tree = tmp / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), base_rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            pairs = []
            for i in range(args.pairs):
                order = ("base", "new") if i % 2 == 0 else ("new", "base")  # flipped every pair: drift hits both
                pair = {}
                for side in order:
                    tree = base_tree if side == "base" else ROOT
                    pair[side] = figures(run_overhead(tree, f"{side}_{i}", tmp, extra))
                pairs.append(pair)
                print(f"pair {i + 1}: " + "  ".join(f"{k} {pair['base'][k]:.3f} -> {pair['new'][k]:.3f}" for k in FIGURES),
                      flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, capture_output=True)
    result = {"created": timestamp(), "base": base_rev, "working_tree": working_tree, "node_overhead_args": extra,
              "environment": env,
              "pairs": pairs, "summary": compare(pairs)}
    for key, row in result["summary"].items():
        print(f"{key:18s} median {row['base_median']:.3f} -> {row['new_median']:.3f}; "
              f"working tree lower in {row['new_lower_in']} of {row['pairs']} pairs")
    write_result(result, args.out, args.name, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
