import numpy as np
import pytest

from uam_ros.control.robot_config import JointLimitArrays
from uam_ros.control.safety import SafetyFilter, clamp_gripper


def limits(n=2, pmin=-1.0, pmax=1.0, vmax=1.0, amax=10.0):
    return JointLimitArrays(np.full(n, pmin), np.full(n, pmax), np.full(n, vmax), np.full(n, amax))


def times(n, dt=0.1):
    return dt * np.arange(1, n + 1)


def assert_feasible(result, lim, q0, t):
    assert result.ok
    q = result.positions
    assert np.all(np.isfinite(q)) and np.all(np.isfinite(result.velocities))
    assert np.all(q >= lim.position_min) and np.all(q <= lim.position_max)
    seg_v = np.diff(np.vstack([q0, q]), axis=0) / np.diff(np.concatenate([[0.0], t]))[:, None]
    assert np.all(np.abs(seg_v) <= lim.velocity_max + 1e-9)
    assert np.all(np.abs(result.velocities) <= lim.velocity_max + 1e-9)
    return seg_v


def test_feasible_chunk_passes_unchanged():
    lim = limits()
    t = times(5)
    target = np.tile(0.05 * np.arange(1, 6)[:, None], (1, 2))
    result = SafetyFilter(lim, 0.5).filter(t, target, np.zeros(2))
    assert_feasible(result, lim, np.zeros(2), t)
    np.testing.assert_allclose(result.positions, target)
    assert result.clamped_points == 0
    assert np.all(result.velocities[-1] == 0.0)


def test_positions_clamped_into_limits():
    lim = limits(vmax=100.0, amax=1e6)
    t = times(3)
    target = np.array([[0.9, 0.0], [1.5, -3.0], [2.0, -3.0]])
    result = SafetyFilter(lim, 1.0).filter(t, target, np.array([0.9, 0.0]))
    assert_feasible(result, lim, np.array([0.9, 0.0]), t)
    assert result.clamped_points >= 2


def test_velocity_and_acceleration_limited_from_measured_state():
    lim = limits(vmax=1.0, amax=5.0)
    t = times(10, dt=0.05)
    target = np.full((10, 2), 0.3)
    q0 = np.zeros(2)
    result = SafetyFilter(lim, 0.5).filter(t, target, q0, np.zeros(2))
    seg_v = assert_feasible(result, lim, q0, t)
    accel = np.diff(np.vstack([np.zeros(2), seg_v]), axis=0) / 0.05
    assert np.all(np.abs(accel) <= 5.0 + 1e-6)
    assert result.clamped_points > 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_refused(bad):
    target = np.zeros((3, 2))
    target[1, 1] = bad
    result = SafetyFilter(limits(), 0.5).filter(times(3), target, np.zeros(2))
    assert not result.ok and result.reason == "non_finite" and result.positions is None


def test_non_finite_measured_state_refused():
    result = SafetyFilter(limits(), 0.5).filter(times(2), np.zeros((2, 2)), np.array([0.0, np.nan]))
    assert not result.ok and result.reason == "non_finite"


def test_first_point_far_from_measured_state_refused():
    result = SafetyFilter(limits(), 0.2).filter(times(2), np.full((2, 2), 0.5), np.zeros(2))
    assert not result.ok and result.reason == "deviation"
    assert "joint 0" in result.detail


def test_bad_timing_and_shape_refused():
    f = SafetyFilter(limits(), 0.5)
    assert f.filter(np.array([0.1, 0.1]), np.zeros((2, 2)), np.zeros(2)).reason == "bad_timing"
    assert f.filter(np.array([0.0, 0.1]), np.zeros((2, 2)), np.zeros(2)).reason == "bad_timing"
    assert f.filter(times(2), np.zeros((2, 3)), np.zeros(2)).reason == "bad_shape"


def test_random_chunks_always_come_out_feasible():
    rng = np.random.default_rng(0)
    lim = limits(n=3, vmax=0.8, amax=4.0)
    f = SafetyFilter(lim, 10.0)
    for _ in range(200):
        t = np.cumsum(rng.uniform(0.01, 0.2, size=8))
        q0 = rng.uniform(-1, 1, size=3)
        target = rng.normal(0, 2, size=(8, 3))
        assert_feasible(f.filter(t, target, q0, rng.normal(0, 0.5, size=3)), lim, f.clamp_positions(q0), t)


def test_gripper_clamped_and_nan_ignored():
    assert clamp_gripper(0.5, 0.0, 0.04) == 0.04
    assert clamp_gripper(-1.0, 0.0, 0.04) == 0.0
    assert clamp_gripper(float("nan"), 0.0, 0.04) is None


def sequential_limits(f: SafetyFilter, t, target, q0, v0):
    """The limits' definition, one point after the other from the measured state (what filter() must
    equal: it only skips this walk over the points where no limit binds)."""
    vmax, amax = f.limits.velocity_max, f.limits.acceleration_max
    target = f.clamp_positions(target)
    prev_q, prev_v, prev_t = f.clamp_positions(q0), np.clip(v0, -vmax, vmax), 0.0
    out, seg_v = np.empty_like(target), np.empty_like(target)
    for k in range(target.shape[0]):
        dt = t[k] - prev_t
        v = np.clip(np.clip((target[k] - prev_q) / dt, prev_v - amax * dt, prev_v + amax * dt), -vmax, vmax)
        q = f.clamp_positions(prev_q + v * dt)
        out[k], seg_v[k] = q, (q - prev_q) / dt
        prev_q, prev_v, prev_t = q, seg_v[k], t[k]
    return out, seg_v


@pytest.mark.parametrize("spread", [0.01, 0.05, 0.2])
def test_limited_path_equals_the_point_by_point_definition(spread):
    # Small spreads give chunks where no limit binds or one binds only late in the chunk (the path the
    # filter takes without walking the points), large ones chunks limited from the first point.
    rng = np.random.default_rng(int(spread * 100))
    lim = limits(n=7, vmax=1.0, amax=8.0)
    f = SafetyFilter(lim, 10.0)
    walked = 0
    for _ in range(300):
        t = np.cumsum(rng.uniform(0.02, 0.1, size=16))
        q0 = rng.uniform(-0.9, 0.9, size=7)
        target = q0 + np.cumsum(rng.normal(0, spread, size=(16, 7)), axis=0)
        v0 = rng.normal(0, 0.3, size=7)
        result = f.filter(t, target, q0, v0)
        expected, seg_v = sequential_limits(f, t, target, q0, v0)
        np.testing.assert_allclose(result.positions, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.velocities[:-1], 0.5 * (seg_v[:-1] + seg_v[1:]), rtol=0, atol=1e-9)
        assert result.clamped_points == int(np.count_nonzero(np.any(np.abs(expected - f.clamp_positions(target)) > 1e-9, axis=1)
                                                             | np.any(f.clamp_positions(target) != target, axis=1)))
        walked += result.clamped_points > 0
    assert walked > 0 or spread == 0.01  # the larger spreads must exercise the limits


def test_velocity_limit_alone_binds():
    lim = limits(n=3, vmax=1.0, amax=10.0)
    f = SafetyFilter(lim, 10.0)
    t = times(8)  # 0.1 s apart: reach = amax * dt = 1 rad/s, so 1.3 rad/s from 1 rad/s is no acceleration problem
    q0, v0 = np.zeros(3), np.ones(3)
    result = f.filter(t, 1.3 * t[:, None] * np.ones((8, 3)), q0, v0)
    seg_v = assert_feasible(result, lim, q0, t)
    np.testing.assert_allclose(seg_v, 1.0, rtol=0, atol=1e-12)  # held at the limit, not at 1.3
    assert result.clamped_points == 8
