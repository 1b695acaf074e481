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
