import numpy as np

from uam_ros.control.robot_config import JointLimitArrays
from uam_ros.control.trajectory import build_command, command_problems, hold_command

LIM = JointLimitArrays(np.full(2, -1.0), np.full(2, 1.0), np.full(2, 1.0), np.full(2, 10.0))


def test_valid_command_has_no_problems():
    cmd = build_command(["a", "b"], 5.0, np.array([0.01, 0.1]), np.zeros((2, 2)), np.zeros((2, 2)))
    assert command_problems(cmd, LIM, 0.01) == []


def test_hold_is_one_point_at_measured_position():
    cmd = hold_command(["a", "b"], np.array([0.2, -0.3]))
    assert cmd.is_hold and command_problems(cmd, LIM, 0.01) == []
    assert cmd.stamp_s == 0.0  # JTC: start on receipt, so a delayed hold is never rejected as past
    np.testing.assert_array_equal(cmd.positions[0], [0.2, -0.3])


def test_each_jtc_rule_is_checked():
    def problems(**kw):
        args = dict(t=np.array([0.01, 0.1]), q=np.zeros((2, 2)), v=np.zeros((2, 2)), stamp=5.0, names=["a", "b"])
        args.update(kw)
        return " ".join(command_problems(build_command(args["names"], args["stamp"], args["t"], args["q"], args["v"]),
                                         LIM, 0.01))

    assert "strictly increasing" in problems(t=np.array([0.1, 0.1]))
    assert "first point" in problems(t=np.array([0.001, 0.1]))
    assert "non-finite positions" in problems(q=np.array([[0.0, np.nan], [0.0, 0.0]]))
    assert "outside joint limits" in problems(q=np.array([[0.0, 1.5], [0.0, 0.0]]))
    assert "velocities above" in problems(v=np.array([[0.0, 2.0], [0.0, 0.0]]))
    assert "velocities missing" in problems(v=np.zeros((1, 2)))
    assert "joint names" in problems(names=["a"])
    assert "non-finite stamp" in problems(stamp=float("inf"))
