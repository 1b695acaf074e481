"""SimPolicy's flow-matching noise: a fresh draw per chunk, or one draw held for the episode."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

pytest.importorskip("mujoco")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scene():
    from uam_ros.resources import models_dir
    from uam_ros.sim.tasks import sample_episode
    from uam_ros.sim.world import SimWorld

    spec = sample_episode("reach", "train", 7)
    world = SimWorld("franka_panda", spec)
    yield str(models_dir() / "default" / "franka_panda"), spec, world
    world.close()


def test_the_noise_decides_the_chunk_for_one_observation(scene):
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint, spec, world = scene
    policy = SimPolicy(checkpoint)
    noise = policy.draw_noise(torch.Generator().manual_seed(1))
    same = [policy.chunk(world, spec.instruction, torch.Generator(), noise) for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    generator = torch.Generator().manual_seed(1)
    fresh = [policy.chunk(world, spec.instruction, generator) for _ in range(2)]
    np.testing.assert_array_equal(fresh[0], same[0])  # the first fresh draw of seed 1 is that noise
    assert np.abs(fresh[1] - fresh[0]).max() > 1e-4


@pytest.mark.parametrize("mode, draws", [("held", 1), ("fresh", 4)])
def test_an_episode_draws_noise_once_when_held_and_per_chunk_when_fresh(scene, mode, draws):
    from uam_ros.sim.world import SimWorld
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint, spec, _ = scene
    world = SimWorld("franka_panda", spec)
    try:
        policy = SimPolicy(checkpoint, n_action_steps=2, noise=mode)
        generator = torch.Generator().manual_seed(3)
        assert policy.run(world, spec.instruction, generator, 8, stop=lambda: False) == (8, False)
    finally:
        world.close()
    expected = torch.Generator().manual_seed(3)
    for _ in range(draws):
        policy.draw_noise(expected)
    assert torch.equal(generator.get_state(), expected.get_state())


def test_an_unknown_noise_mode_is_refused(scene):
    from uam_ros.train.sim_policy import SimPolicy

    with pytest.raises(ValueError, match="noise must be one of"):
        SimPolicy(scene[0], noise="frozen")


def test_noise_scale_shrinks_the_draw_and_zero_gives_one_chunk_per_observation(scene):
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint, spec, world = scene
    full, half, zero = (SimPolicy(checkpoint, noise_scale=s) for s in (1.0, 0.5, 0.0))
    np.testing.assert_allclose(half.draw_noise(torch.Generator().manual_seed(2)).numpy(),
                               0.5 * full.draw_noise(torch.Generator().manual_seed(2)).numpy(), rtol=1e-6)
    generator = torch.Generator().manual_seed(4)
    chunks = [zero.chunk(world, spec.instruction, generator) for _ in range(2)]
    np.testing.assert_array_equal(chunks[0], chunks[1])  # no noise: the flow's deterministic mode
    with pytest.raises(ValueError, match="noise_scale"):
        SimPolicy(checkpoint, noise_scale=1.5)


def test_with_latency_the_arm_stays_until_the_first_chunk_arrives_then_runs_it_from_there(scene):
    """latency_steps=2: the first two action periods pass before the first chunk reaches the arm (it
    stays where it is), then the chunk runs from its target 2 -- the points already due are skipped."""
    from uam_ros.sim.world import SimWorld
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint, spec, _ = scene

    def act(lag, steps):
        world = SimWorld("franka_panda", spec)
        try:
            policy = SimPolicy(checkpoint, n_action_steps=2, latency_steps=lag)
            start = world.arm_positions()
            chunk = policy.chunk(world, spec.instruction, torch.Generator().manual_seed(5))
            policy.run(world, spec.instruction, torch.Generator().manual_seed(5), steps, stop=lambda: False)
            return start, chunk[:, :7], world.arm_positions()
        finally:
            world.close()

    start, _, still = act(2, 2)
    _, _, moving = act(0, 2)
    assert np.abs(still - start).max() < 0.01 < np.abs(moving - start).max()
    start, chunk, after = act(2, 3)
    assert np.abs(after - chunk[2]).max() < 0.5 * np.abs(start - chunk[2]).max()
    with pytest.raises(ValueError, match="latency_steps"):
        SimPolicy(checkpoint, latency_steps=-1)


def test_robot_limits_hold_on_a_far_first_target_and_clamp_to_the_velocity_limits(scene):
    """The node's safety filter on what the sim arm executes: the in-process arm otherwise follows
    any target, faster than the robot can (experiment 9)."""
    from uam_ros.train.sim_policy import SimPolicy

    checkpoint, _, world = scene
    policy = SimPolicy(checkpoint, n_action_steps=2, robot_limits=True)
    limits = policy.robot.limits_arrays()
    _, q, _ = world.joint_state()
    far = np.repeat(q[None], 2, axis=0)
    far[:, 0] += policy.robot.control.max_position_deviation + 0.05
    held = policy._within_limits(world, far)
    np.testing.assert_array_equal(held, np.repeat(q[None], 2, axis=0))
    assert policy.holds == 1
    fast = np.repeat(q[None], 2, axis=0)
    fast[0, 1] += 0.3  # 3 rad/s over one 0.1 s period: inside the deviation limit, over the velocity limit
    fast[1, 1] += 0.6
    executed = policy._within_limits(world, fast)
    steps = np.diff(np.concatenate([q[None, :7], executed[:, :7]]), axis=0)
    assert np.all(np.abs(steps) <= limits.velocity_max * policy.dt + 1e-9)
    assert executed[1, 1] > q[1] + 0.05 and policy.holds == 1  # clamped, not held
    np.testing.assert_array_equal(executed[:, 7], fast[:, 7])  # the gripper is not the arm filter's
    assert SimPolicy(checkpoint).safety is None
