"""The expert-as-Policy used by the demo: replays on schedule and waits for a lagging arm."""

import numpy as np
import pytest

from uam_ros.runtime.policy import Observation
from uam_ros.sim.expert_policy import ExpertPolicy, ExpertSpec


@pytest.fixture(scope="module")
def policy():
    return ExpertPolicy("franka_panda", ExpertSpec.parse("expert://reach?split=train&seed=4"), chunk_size=8)


def observe(policy, step, t_s):
    return Observation(np.zeros((128, 128, 3), np.uint8), policy.states[step], policy.instruction, int(t_s * 1e9))


def test_uri_parsing_and_bad_uri():
    assert ExpertSpec.parse("expert://pick?split=heldout&seed=7") == ExpertSpec("pick", "heldout", 7)
    with pytest.raises(ValueError, match="expert://"):
        ExpertSpec.parse("pick")


def test_replays_recorded_targets_on_schedule(policy):
    assert policy.expert_succeeded
    policy._last_stamp_ns, policy._progress = None, 0.0
    first = policy.infer(observe(policy, 0, 10.0))
    np.testing.assert_allclose(first.positions, policy.actions[:8])
    later = policy.infer(observe(policy, 5, 10.5))  # 0.5 s later, the arm is where the rollout was
    np.testing.assert_allclose(later.positions[0], policy.actions[5])
    assert later.dt_s == pytest.approx(0.1)


def test_waits_for_an_arm_that_held(policy):
    policy._last_stamp_ns, policy._progress = None, 0.0
    policy.infer(observe(policy, 0, 10.0))
    stuck = policy.infer(observe(policy, 2, 12.0))  # 2 s passed but the arm only got to step 2
    first_target = stuck.positions[0][:7]
    assert np.max(np.abs(first_target - policy.states[2][:7])) < 0.35  # the safety filter would accept it
    assert stuck.extras["expert_step"] <= 3
