"""Scripted experts solve every task (one fixed seed each), within the robot's joint limits."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from uam_ros.sim.expert import IKSolver, down_rotation, run_expert_episode  # noqa: E402
from uam_ros.sim.tasks import TASK_NAMES, sample_episode  # noqa: E402
from uam_ros.sim.world import SimWorld  # noqa: E402

# One robot per task keeps this short; both robots get three tasks each.
CASES = [
    ("franka_panda", "reach", "train"),
    ("ur5e", "push", "heldout"),
    ("franka_panda", "pick", "heldout"),
    ("ur5e", "put_in", "train"),
    ("franka_panda", "stack", "train"),
    ("ur5e", "press", "heldout"),
]
SEED = 5


@pytest.fixture(scope="module")
def worlds():
    made = {}

    def get(robot, task, split):
        if robot not in made:
            made[robot] = SimWorld(robot, sample_episode(task, split, SEED))
        return made[robot]

    yield get
    for w in made.values():
        w.close()


def test_cases_cover_every_task_and_both_robots():
    assert sorted(task for _, task, _ in CASES) == sorted(TASK_NAMES)
    assert {robot for robot, _, _ in CASES} == {"franka_panda", "ur5e"}


@pytest.mark.parametrize("robot,task,split", CASES)
def test_expert_solves_task(worlds, robot, task, split):
    world = worlds(robot, task, split)
    result = run_expert_episode(robot, task, split, SEED, world=world)
    assert result.success, f"{robot} {task} {split} seed {SEED}: '{result.instruction}' failed ({result.steps} steps)"
    assert world.success()
    # The targets are JointTrajectory-ready: arm joints + gripper, within the YAML limits, at 10 Hz.
    cfg = world.cfg
    actions = np.array(result.actions)
    assert actions.shape == (result.steps, cfg.arm_dof + 1)
    assert np.all(actions[:, :-1] >= np.array(cfg.joints.position_min) - 1e-9)
    assert np.all(actions[:, :-1] <= np.array(cfg.joints.position_max) + 1e-9)
    path = np.vstack([result.joint_positions[0][:-1], actions[:, :-1]])
    velocity = np.diff(path, axis=0) * cfg.chunk.action_rate_hz
    assert np.all(np.abs(velocity) <= np.array(cfg.joints.velocity_max))


def test_expert_is_not_trivially_successful(worlds):
    """Zero steps of expert action do not count as success (the predicate needs the expert's work)."""
    world = worlds("franka_panda", "pick", "train")
    world.load_episode(sample_episode("pick", "train", SEED))
    world.step(500)
    assert not world.success()


def test_ik_reaches_a_top_down_pose(worlds):
    world = worlds("franka_panda", "reach", "train")
    world.reset()
    ik = IKSolver(world)
    target = np.array([0.5, -0.1, 0.15])
    q, err = ik.solve(target, down_rotation(1.0), world.arm_positions())
    pos, rot = ik.fk(q)
    assert err < 1e-3 and np.linalg.norm(pos - target) < 1e-3
    assert np.abs(rot - down_rotation(1.0)).max() < 1e-2
    assert np.all(q >= ik.low) and np.all(q <= ik.high)
