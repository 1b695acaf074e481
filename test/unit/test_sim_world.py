"""SimWorld: joint states in YAML order, tracking of joint targets, reset, rendering."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from uam_ros.sim.tasks import sample_episode  # noqa: E402
from uam_ros.sim.world import SimWorld  # noqa: E402


@pytest.fixture(scope="module", params=["franka_panda", "ur5e"])
def world(request):
    w = SimWorld(request.param, sample_episode("put_in", "train", 2))
    yield w
    w.close()


def test_joint_state_is_yaml_arm_joints_then_gripper(world):
    world.reset()
    names, q, qd = world.joint_state()
    cfg = world.cfg
    assert names == list(cfg.joints.names) + [cfg.gripper.joint]
    assert q.shape == qd.shape == (len(names),)
    assert q[:-1] == pytest.approx(cfg.home, abs=1e-3)
    assert q[-1] == pytest.approx(cfg.gripper.open_position, abs=2e-3)
    assert np.abs(qd).max() < 1e-2


def test_arm_tracks_joint_targets_and_gripper_closes(world):
    world.reset()
    cfg = world.cfg
    goal = np.asarray(cfg.home) + np.linspace(-0.2, 0.2, cfg.arm_dof)
    world.move_to(goal, cfg.gripper.closed_position, duration=1.0)
    world.step(250)
    _, q, qd = world.joint_state()
    assert q[:-1] == pytest.approx(goal, abs=5e-3)
    assert np.abs(qd[:-1]).max() < 0.02
    assert abs(q[-1] - cfg.gripper.closed_position) < 0.1 * abs(cfg.gripper.open_position - cfg.gripper.closed_position)
    with pytest.raises(ValueError):
        world.set_joint_targets(goal[:-1])
    with pytest.raises(ValueError):
        world.set_joint_targets(goal * np.nan)


def test_reset_restores_the_episode(world):
    world.reset()
    start = {o.name: world.object_position(o.name) for o in world.episode.objects}
    world.set_joint_targets(np.asarray(world.cfg.home) + 0.3)
    world.step(300)
    world.reset()
    assert world.time == 0.0
    for obj in world.episode.objects:
        assert world.object_position(obj.name) == pytest.approx(start[obj.name], abs=1e-4)
        assert world.object_position(obj.name)[:2] == pytest.approx(obj.pos, abs=2e-3)
    assert not world.success()
    world.reset(seed=3)  # a new episode of the same task and split
    assert world.episode == sample_episode("put_in", "train", 3)
    for obj in world.episode.objects:
        assert world.object_position(obj.name)[:2] == pytest.approx(obj.pos, abs=2e-3)
    world.load_episode(sample_episode("put_in", "train", 2))


def test_render_returns_the_configured_size(world):
    world.reset()
    img = world.render()
    assert img.shape == (world.cfg.camera.height, world.cfg.camera.width, 3) and img.dtype == np.uint8
    assert img.std() > 5  # an actual scene, not a blank buffer
    wrist = world.render("wrist", width=96, height=64)
    assert wrist.shape == (64, 96, 3) and wrist.dtype == np.uint8
    again = world.render()
    assert np.array_equal(again, img)  # deterministic; the renderer is re-created per size only
    with pytest.raises(ValueError):
        world.render("ceiling")
    with pytest.raises(ValueError):
        world.render(width=4000, height=100)


def test_ee_position_is_between_the_fingers(world):
    world.reset()
    ee = world.ee_position()
    assert ee.shape == (3,)
    assert 0.2 < ee[0] < 0.7 and ee[2] > 0.2  # above the table in front of the robot
