import numpy as np
import pytest

from uam_ros.control.chunk_scheduler import ChunkScheduler, Plan


def ramp(n, start=0.0, step=1.0, dim=2):
    return np.tile((start + step * np.arange(n))[:, None], (1, dim))


def test_points_due_during_inference_are_dropped():
    scheduler = ChunkScheduler("none", 0, min_lead_s=0.01)
    # observation at t=10, points at 10.1 .. 10.8; inference finished at t=10.25
    result = scheduler.merge(ramp(8), 0.1, 10.0, now_s=10.25)
    assert result.dropped_late == 2
    np.testing.assert_allclose(result.plan.times_s, 10.0 + 0.1 * np.arange(3, 9))
    np.testing.assert_allclose(result.plan.positions[0], [2.0, 2.0])


def test_minimum_lead_is_respected():
    scheduler = ChunkScheduler("none", 0, min_lead_s=0.05)
    result = scheduler.merge(ramp(4), 0.1, 0.0, now_s=0.26)
    assert result.plan.times_s[0] >= 0.26 + 0.05
    assert result.dropped_late == 3


def test_chunk_entirely_late_gives_no_plan():
    scheduler = ChunkScheduler("linear", 2)
    result = scheduler.merge(ramp(4), 0.1, 0.0, now_s=5.0)
    assert result.plan is None and result.dropped_late == 4


def test_replace_mode_takes_new_chunk_verbatim():
    scheduler = ChunkScheduler("none", 4)
    scheduler.merge(ramp(8, start=0.0), 0.1, 0.0, now_s=0.0)
    result = scheduler.merge(ramp(8, start=100.0), 0.1, 0.2, now_s=0.2)
    assert result.blended == 0
    np.testing.assert_allclose(result.plan.positions[:, 0], 100.0 + np.arange(8))


def test_linear_blend_fades_from_old_tail_to_new_chunk():
    scheduler = ChunkScheduler("linear", 3)
    scheduler.merge(np.zeros((8, 1)), 0.1, 0.0, now_s=0.0)
    result = scheduler.merge(np.ones((8, 1)), 0.1, 0.2, now_s=0.2)
    assert result.blended == 3
    np.testing.assert_allclose(result.plan.positions[:4, 0], [0.25, 0.5, 0.75, 1.0])
    assert np.all(np.diff(result.plan.positions[:, 0]) >= 0)


def test_blend_only_where_old_plan_exists():
    scheduler = ChunkScheduler("linear", 4)
    scheduler.merge(np.zeros((2, 1)), 0.1, 0.0, now_s=0.0)  # old plan ends at t=0.2
    result = scheduler.merge(np.ones((8, 1)), 0.1, 0.05, now_s=0.05)  # new points at 0.15, 0.25...
    assert result.blended == 1
    assert result.plan.positions[1, 0] == 1.0


def test_plan_sampling_interpolates_and_holds_ends():
    plan = Plan(np.array([1.0, 2.0]), np.array([[0.0], [10.0]]))
    assert plan.sample(1.5)[0] == pytest.approx(5.0)
    assert plan.sample(0.0)[0] == 0.0 and plan.sample(3.0)[0] == 10.0


def test_rejects_unknown_blend_mode():
    with pytest.raises(ValueError, match="blend"):
        ChunkScheduler("cubic")


def merge_point_by_point(old: Plan | None, positions, dt, stamp, now, lead, steps):
    """The merge's definition, one point at a time (what ChunkScheduler.merge computes with whole arrays)."""
    times = stamp + dt * np.arange(1, positions.shape[0] + 1)
    keep = times >= now + lead
    times, new = times[keep], positions[keep].astype(float)
    blended = 0
    if old is not None:
        after = old.times_s >= now
        old = Plan(old.times_s[after], old.positions[after])
    if old is not None and len(old):
        n = min(steps, len(times))
        for k in range(n):
            if times[k] > old.times_s[-1]:
                break
            w = (k + 1) / (n + 1)
            new[k] = (1 - w) * old.sample(times[k]) + w * new[k]
            blended += 1
    return times, new, int(np.count_nonzero(~keep)), blended


def test_merge_equals_its_point_by_point_definition():
    rng = np.random.default_rng(7)
    for _ in range(300):
        steps, lead = int(rng.integers(1, 6)), float(rng.uniform(0.0, 0.05))
        scheduler = ChunkScheduler("linear", steps, min_lead_s=lead)
        old_len = int(rng.integers(1, 10))
        old = Plan(np.cumsum(rng.uniform(0.02, 0.2, old_len)), rng.normal(0, 1, (old_len, 3)))
        scheduler.plan = old
        positions, dt = rng.normal(0, 1, (int(rng.integers(1, 17)), 3)), float(rng.uniform(0.02, 0.15))
        stamp, now = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.8))
        result = scheduler.merge(positions, dt, stamp, now)
        times, new, dropped, blended = merge_point_by_point(old, positions, dt, stamp, now, lead, steps)
        assert result.dropped_late == dropped and result.blended == blended
        if len(times) == 0:
            assert result.plan is None
            continue
        np.testing.assert_allclose(result.plan.times_s, times, rtol=0, atol=1e-15)
        np.testing.assert_allclose(result.plan.positions, new, rtol=0, atol=1e-12)


def test_sample_many_equals_sample_inside_and_outside_the_plan():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5):
        plan = Plan(np.cumsum(rng.uniform(0.05, 0.2, n)), rng.normal(0, 1, (n, 4)))
        t = np.sort(rng.uniform(plan.times_s[0] - 0.3, plan.times_s[-1] + 0.3, 20))
        t = np.concatenate([t, plan.times_s])
        np.testing.assert_allclose(plan.sample_many(t), np.array([plan.sample(x) for x in t]), rtol=0, atol=1e-12)


def test_a_point_exactly_at_the_old_plans_end_is_blended():
    scheduler = ChunkScheduler("linear", 4, min_lead_s=0.0)
    scheduler.merge(np.zeros((2, 1)), 0.1, 0.0, now_s=0.0)  # old plan at 0.1, 0.2
    result = scheduler.merge(np.ones((4, 1)), 0.1, 0.1, now_s=0.1)  # new points at 0.2, 0.3, ...
    assert result.plan.times_s[0] == 0.2 and result.blended == 1
    assert result.plan.positions[0, 0] == 0.2  # (1 - 1/5) * old 0 + 1/5 * new 1
