"""The pure logic of benchmarks/ (matching commands to frames, RSS growth, deadline counting, command
checks, overhead arithmetic): numbers in, numbers out, no ROS."""

import importlib.util
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from uam_ros.ros.tick_stats import TickStats, missed_periods

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


latency = load("latency")
soak = load("soak")
node_overhead = load("node_overhead")


# ---- latency: which frame was each command computed from -------------------------------------------
def timing(command, observed, received=None, started=None, finished=None, published=None):
    received = observed + 0.005 if received is None else received
    started = received + 0.010 if started is None else started
    finished = started + 0.030 if finished is None else finished
    published = command + 0.001 if published is None else published
    return (command, observed, received, started, finished, published)


def test_match_pairs_by_stamp_skips_holds_and_keeps_the_first_command_per_frame():
    base = 1_790_000_000.0  # seconds since the epoch: float64 resolves ~0.24 us here
    timings = [timing(base + 0.10, base + 0.00), timing(base + 0.20, base + 0.10), timing(base + 0.30, base + 0.10)]
    trajectories = [
        {"stamp": base + 0.10 + 1e-7, "received": base + 0.102, "source": base + 0.1015},
        {"stamp": 0.0, "received": base + 0.15, "source": base + 0.149},  # a hold: stamp 0
        {"stamp": base + 0.30, "received": base + 0.302, "source": base + 0.3015},  # same frame as the next, later
        {"stamp": base + 0.20, "received": base + 0.202, "source": base + 0.2015},
        {"stamp": base + 0.25, "received": base + 0.252, "source": base + 0.2515},  # no chunk_timing
    ]
    records, counts = latency.match_chunks(trajectories, timings)
    assert counts == {"trajectories": 5, "holds": 1, "unmatched": 1, "matched": 3, "later_same_frame": 1}
    assert [round(r["observation_stamp"] - base, 6) for r in records] == [0.0, 0.1]
    assert records[1]["command_stamp"] == pytest.approx(base + 0.20)  # the earlier of the two commands of frame 0.1
    assert records[1]["received"] == pytest.approx(base + 0.202)


def test_components_add_up_to_end_to_end_and_unknown_parts_are_nan():
    base = 1_790_000_000.0
    record = {**dict(zip(latency.TIMING_FIELDS, timing(base + 0.100, base, received=base + 0.004,
                                                         started=base + 0.020, finished=base + 0.060))),
              "received": base + 0.1031, "source": base + 0.1025}
    parts = latency.components(record)
    assert parts["camera_to_node"] == pytest.approx(0.004, abs=1e-6)
    assert parts["queue_wait"] == pytest.approx(0.016, abs=1e-6)
    assert parts["inference"] == pytest.approx(0.040, abs=1e-6)
    assert parts["wait_for_tick"] == pytest.approx(0.040, abs=1e-6)
    assert parts["tick_publish"] == pytest.approx(0.0025, abs=1e-6)
    assert parts["transport"] == pytest.approx(0.0006, abs=1e-6)
    assert sum(parts[k] for k in latency.COMPONENTS) == pytest.approx(parts["end_to_end"], abs=1e-6)
    assert parts["end_to_end"] == pytest.approx(0.1031, abs=1e-6)
    assert np.isnan(parts["camera_publish"]) and np.isnan(parts["frame_to_node"])  # frame's DDS time unknown
    split = latency.components({**record, "frame_source": base + 0.003})
    assert split["camera_publish"] == pytest.approx(0.003, abs=1e-6)
    assert split["camera_publish"] + split["frame_to_node"] == pytest.approx(split["camera_to_node"], abs=1e-6)
    unknown = latency.components({**record, "image_received": 0.0})
    assert np.isnan(unknown["camera_to_node"]) and np.isnan(unknown["queue_wait"])
    assert unknown["inference"] == pytest.approx(0.040, abs=1e-6)


# ---- soak: invalid commands, RSS growth, messages counted from rates ---------------------------------
LIMITS = SimpleNamespace(position_min=np.array([-1.0, -2.0]), position_max=np.array([1.0, 2.0]),
                         velocity_max=np.array([0.5, 0.5]))
NAMES = ["a", "b"]


def test_a_valid_trajectory_has_no_problems():
    assert soak.trajectory_problems(NAMES, NAMES, [0.1, 0.2], [[0.0, 0.0], [0.9, -1.9]], [[0.1, 0.0], [0.0, 0.0]],
                                    LIMITS) == []
    assert soak.trajectory_problems(NAMES, NAMES, [0.1], [[0.0, 0.0]], [], LIMITS) == []  # positions only


@pytest.mark.parametrize("names, times, positions, velocities, problem", [
    (["a", "c"], [0.1], [[0.0, 0.0]], [[0.0, 0.0]], "joint names"),
    (NAMES, [0.1, 0.2], [[0.0, np.nan], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], "non-finite"),
    (NAMES, [0.1, 0.2], [[0.0, 0.0], [0.0, 0.0]], [[0.0, np.inf], [0.0, 0.0]], "non-finite"),
    (NAMES, [0.2, 0.2], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], "strictly increasing"),
    (NAMES, [0.1, 0.2], [[0.0, 0.0], [1.01, 0.0]], [[0.0, 0.0], [0.0, 0.0]], "outside joint limits"),
    (NAMES, [0.1], [[0.0, -2.5]], [[0.0, 0.0]], "outside joint limits"),
    (NAMES, [0.1], [[0.0, 0.0]], [[0.0, -0.6]], "velocity above"),
    (NAMES, [], [], [], "no points"),
])
def test_invalid_trajectories_are_named(names, times, positions, velocities, problem):
    problems = soak.trajectory_problems(names, NAMES, times, positions, velocities, LIMITS)
    assert any(problem in p for p in problems), problems


def test_rss_growth_uses_medians_of_the_first_and_last_window_after_warmup():
    t = np.arange(0.0, 600.0, 1.0)
    flat = np.full_like(t, 100_000.0)
    flat[:30] = 50_000.0  # start-up, before warm-up: ignored
    flat[300] = 400_000.0  # one spike: the medians ignore it
    g = soak.rss_growth(t, flat, start_s=30.0)
    assert g["growth_pct"] == pytest.approx(0.0)
    assert g["max_kb"] == 400_000.0
    growing = 100_000.0 + 20.0 * t  # +20 kB/s
    g = soak.rss_growth(t, growing, start_s=30.0, window_s=60.0)
    assert g["slope_kb_per_min"] == pytest.approx(1200.0)
    # medians at the window centres: t = 60 and t = 569 -> (111380 - 101200) / 101200
    assert g["growth_pct"] == pytest.approx(100.0 * (20.0 * 509.0) / 101_200.0, rel=1e-3)
    assert soak.rss_growth(t[:2], growing[:2], start_s=0.0) == {"n": 2}


def test_received_from_rates_integrates_each_window():
    # reports at 0, 1, 3 s: 10 Hz over (0, 1], 5 Hz over (1, 3]
    assert soak.received_from_rates([0.0, 1.0, 3.0], [0.0, 10.0, 5.0]) == pytest.approx(20.0)
    assert soak.received_from_rates([1.0], [3.0]) == 0.0


# ---- deadline counting (uam_ros.ros.tick_stats) ------------------------------------------------------
def test_missed_periods_rounds_to_whole_periods():
    assert missed_periods(0.010, 0.010) == 0
    assert missed_periods(0.0149, 0.010) == 0
    assert missed_periods(0.020, 0.010) == 1
    assert missed_periods(0.046, 0.010) == 4
    assert missed_periods(0.001, 0.010) == 0


def test_tick_stats_counts_late_and_missed_ticks_since_start(monkeypatch):
    ticks = [0.0, 0.010, 0.020, 0.036, 0.046, 0.076, 0.0765, 0.0865]
    clock = iter(ticks)
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stats = TickStats(period_s=0.010, window=4)
    for _ in ticks:
        stats.tick()
    summary = stats.summary()
    # periods: 10, 10, 16 (late; nearest whole: 2 periods -> 1 missed), 10, 30 (late, 2 missed),
    # 0.5 (late: early), 10
    assert summary["ticks"] == 8
    assert summary["ticks_late"] == 3
    assert summary["ticks_missed"] == 3
    assert stats.late == 3 and stats.missed == 3


# ---- node overhead arithmetic ------------------------------------------------------------------------
def test_overhead_summary_per_chunk_path_and_duty():
    unit = {op: {"p50_ms": 0.1, "mean_ms": 0.1} for op in node_overhead.OPS}
    unit["camera_frame"] = {"p50_ms": 1.0, "mean_ms": 1.0}
    unit["tick_chunk"] = {"p50_ms": 2.0, "mean_ms": 3.0}
    unit["joint_state"] = {"p50_ms": 0.5, "mean_ms": 0.5}
    inference = {"x": {"p50_ms": 40.0, "mean_ms": 50.0}}
    out = node_overhead.overhead_summary(unit, inference, {"camera_hz": 30.0, "joint_hz": 500.0, "control_hz": 100.0})
    # path: frame 1.0 + submit 0.1 + chunk 2.0 + 2 dispatches 0.2
    assert out["per_chunk_path_ms"] == pytest.approx(3.3)
    row = out["backends"]["x"]
    assert row["per_chunk_path_pct"] == pytest.approx(100 * 3.3 / 40.0)
    # T = 50 ms: 25 joint states * 0.5 + 1.5 frames * 1.0 + 5 ticks * 0.1 dispatch + submit 0.1 + chunk 3.0
    # + 3 waiting ticks * 0.1
    assert row["cpu_duty_ms_per_inference"] == pytest.approx(12.5 + 1.5 + 0.5 + 0.1 + 3.0 + 0.3)
    assert row["cpu_duty_pct"] == pytest.approx(100 * 17.9 / 50.0)


def test_policy_params_keep_their_types_and_reject_malformed_items():
    common = load("bench_common")
    assert common.policy_params(["inference_process:=true", "control_priority:=50", "backend:=torch"]) == {
        "inference_process": True, "control_priority": 50, "backend": "torch"}
    with pytest.raises(SystemExit, match="NAME:=VALUE"):
        common.policy_params(["inference_process=true"])


def test_memory_and_cpu_of_a_node_include_its_children():
    import subprocess
    import sys

    common = load("bench_common")
    code = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', " \
           "'b = bytes([7]) * (64 << 20); import time; time.sleep(30)']); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and len(common.process_tree(parent.pid)) < 2:
            time.sleep(0.1)
        tree = common.process_tree(parent.pid)
        assert len(tree) == 2 and tree[0] == parent.pid
        time.sleep(1.0)  # let the child touch its 64 MiB
        own = common._own_rss_kb(parent.pid)
        assert common.rss_kb(parent.pid) >= own + 60 * 1024  # the child's 64 MiB counted
        assert common.cpu_seconds(parent.pid) >= common._own_cpu_seconds(parent.pid)
    finally:
        for pid in common.process_tree(parent.pid)[::-1]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.wait(10)
    assert common.rss_kb(parent.pid) is None


# ---- cold_calls: warm vs after-a-sleep summary, and the closures it times ----------------------------
cold_calls = load("cold_calls")


def test_cold_calls_summary_is_p50_and_ratio_to_the_warm_p50():
    samples = {"part": {"warm": [1e-6, 2e-6, 3e-6], "sleep 10 ms": [10e-6, 20e-6, 40e-6]}}
    table = cold_calls.summarize(samples)["part"]
    assert table["warm"]["p50_us"] == pytest.approx(2.0) and table["warm"]["x_warm"] == pytest.approx(1.0)
    assert table["sleep 10 ms"]["p50_us"] == pytest.approx(20.0) and table["sleep 10 ms"]["x_warm"] == pytest.approx(10.0)
    assert table["sleep 10 ms"]["p90_us"] == pytest.approx(36.0)


def test_cold_calls_times_every_part_in_every_condition():
    parts = cold_calls.tick_parts("franka_panda")  # raises if its two filter chunks do not (not) bind
    assert {"trajectory_cdr", "trajectory_to_msg + serialize_message", "ChunkScheduler.merge"} <= set(parts)
    samples = cold_calls.measure(parts, rounds=1, warm_repeats=2)
    conditions = {"warm", "10 ms, again"} | {f"sleep {ms:g} ms" for ms in cold_calls.SLEEPS_MS}
    for part, by_condition in samples.items():
        assert set(by_condition) == conditions, part
        assert all(len(v) == 1 and v[0] > 0 for v in by_condition.values()), part


def test_node_overhead_model_set_reads_yaml_values_and_rejects_malformed_settings():
    assert node_overhead.model_overrides(["d_model=512", "n_heads = 8", "dropout=0.1", "dorsal_stem=conv"]) == {
        "d_model": 512, "n_heads": 8, "dropout": 0.1, "dorsal_stem": "conv"}
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        node_overhead.model_overrides(["d_model"])


# ---- ab_node_overhead: figures from a node_overhead result, pairs compared -----------------------------
ab = load("ab_node_overhead")


def overhead_result(chunk_ms, path_ms, torch_pct, events_pct=None):
    result = {"unit_costs_cpu": {"tick_chunk": {"p50_ms": chunk_ms}},
              "overhead_cpu_time": {"per_chunk_path_ms": path_ms,
                                    "backends": {"torch": {"per_chunk_path_pct": torch_pct, "inference_p50_ms": 14.0}}}}
    if events_pct is not None:
        result["overhead_if_events_executor"] = {"cpu_time": {"backends": {"torch": {"per_chunk_path_pct": events_pct}}}}
    return result


def test_ab_compare_counts_the_pairs_the_working_tree_won_and_takes_medians():
    pairs = [{"base": ab.figures(overhead_result(1.0, 2.0, 14.0, 9.0)), "new": ab.figures(overhead_result(0.8, 1.8, 12.0, 8.0))},
             {"base": ab.figures(overhead_result(0.9, 1.9, 13.0, 8.5)), "new": ab.figures(overhead_result(0.95, 1.7, 12.5, 8.6))},
             {"base": ab.figures(overhead_result(1.1, 2.1, 15.0, 9.5)), "new": ab.figures(overhead_result(0.7, 1.6, 11.0, 7.0))}]
    summary = ab.compare(pairs)
    assert summary["chunk_tick_ms"] == {"base_median": 1.0, "new_median": 0.8, "new_lower_in": 2, "pairs": 3}
    assert summary["torch_pct_events"]["new_lower_in"] == 2 and summary["torch_pct_events"]["base_median"] == 9.0
    assert summary["per_chunk_path_ms"]["new_lower_in"] == 3


def test_ab_figures_without_the_events_comparison():
    figures = ab.figures(overhead_result(1.0, 2.0, 14.0))
    assert np.isnan(figures["torch_pct_events"])
    summary = ab.compare([{"base": figures, "new": figures}])
    assert summary["torch_pct_events"]["pairs"] == 0 and summary["chunk_tick_ms"]["new_lower_in"] == 0
