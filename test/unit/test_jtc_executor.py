import numpy as np
import pytest

from uam_ros.sim.jtc import TrajectoryExecutor

NAMES = ["a", "b"]
Q0 = np.zeros(2)


def test_cubic_through_knots_with_velocities_and_hold_at_end():
    ex = TrajectoryExecutor(NAMES)
    assert ex.accept(10.0, 0.0, NAMES, [1.0, 2.0], [[1.0, 2.0], [2.0, 4.0]], [[1.0, 2.0], [0.0, 0.0]], Q0, Q0) == ""
    q, v = ex.sample(11.0)
    np.testing.assert_allclose(q, [1.0, 2.0])
    np.testing.assert_allclose(v, [1.0, 2.0])
    q, v = ex.sample(12.0)
    np.testing.assert_allclose(q, [2.0, 4.0])
    q, v = ex.sample(99.0)
    np.testing.assert_allclose(q, [2.0, 4.0]) and np.testing.assert_allclose(v, 0.0)
    # smooth between knots: C1 at t=11
    qa, _ = ex.sample(11.0 - 1e-6)
    qb, _ = ex.sample(11.0 + 1e-6)
    np.testing.assert_allclose(qa, qb, atol=1e-5)


def test_joint_order_is_remapped_and_positions_only_are_linear():
    ex = TrajectoryExecutor(NAMES)
    assert ex.accept(0.0, 0.0, ["b", "a"], [2.0], [[4.0, 2.0]], None, Q0, Q0) == ""
    np.testing.assert_allclose(ex.sample(1.0)[0], [1.0, 2.0])


def test_new_trajectory_replaces_old_from_current_desired_state():
    ex = TrajectoryExecutor(NAMES)
    ex.accept(0.0, 0.0, NAMES, [1.0], [[1.0, 1.0]], None, Q0, Q0)
    mid, _ = ex.sample(0.5)
    ex.accept(0.5, 0.0, NAMES, [1.0], [[-1.0, -1.0]], None, Q0, Q0)
    np.testing.assert_allclose(ex.sample(0.5)[0], mid)
    np.testing.assert_allclose(ex.sample(1.5)[0], [-1.0, -1.0])


def test_stamped_trajectory_partly_in_the_past_skips_past_points():
    ex = TrajectoryExecutor(NAMES)
    assert ex.accept(10.0, 9.0, NAMES, [0.5, 2.0], [[5.0, 5.0], [1.0, 1.0]], None, Q0, Q0) == ""
    assert ex.end_time == pytest.approx(11.0)


@pytest.mark.parametrize(
    "names, tfs, pos, vel, stamp, reason",
    [
        (["a"], [1.0], [[1.0]], None, 0.0, "do not match"),
        (["a", "c"], [1.0], [[1.0, 1.0]], None, 0.0, "do not match"),
        (NAMES, [1.0, 1.0], [[1.0, 1.0], [1.0, 1.0]], None, 0.0, "strictly increasing"),
        (NAMES, [2.0, 1.0], [[1.0, 1.0], [1.0, 1.0]], None, 0.0, "strictly increasing"),
        (NAMES, [1.0], [[np.nan, 1.0]], None, 0.0, "non-finite positions"),
        (NAMES, [1.0], [[1.0, 1.0]], [[np.inf, 0.0]], 0.0, "non-finite velocities"),
        (NAMES, [1.0], [[1.0]], None, 0.0, "wrong number of positions"),
        (NAMES, [], [], None, 0.0, "empty"),
        (NAMES, [1.0], [[1.0, 1.0]], None, 1.0, "ends in the past"),
    ],
)
def test_invalid_trajectories_rejected_and_nothing_changes(names, tfs, pos, vel, stamp, reason):
    ex = TrajectoryExecutor(NAMES)
    ex.accept(100.0, 0.0, NAMES, [1.0], [[0.5, 0.5]], None, Q0, Q0)
    before = ex.sample(100.5)
    assert reason in ex.accept(100.2, stamp, names, tfs, pos, vel, Q0, Q0)
    np.testing.assert_allclose(ex.sample(100.5)[0], before[0])
    assert ex.rejected == 1


def test_no_trajectory_means_no_setpoint():
    assert TrajectoryExecutor(NAMES).sample(0.0) is None
