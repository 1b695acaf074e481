import numpy as np

from uam_ros.control.inputs import ImageSample, JointSample
from uam_ros.control.observation import ObservationSync


def joints(t, q=0.0):
    return JointSample(t, np.array([q, q]), None, None)


def image(t):
    return ImageSample(t, np.zeros((2, 2, 3), np.uint8))


def test_matches_joint_state_nearest_to_image_stamp_and_keeps_latest_for_safety():
    sync = ObservationSync(max_image_age_s=0.5, max_joint_state_age_s=0.1)
    for k in range(10):
        sync.put_joints(joints(1.0 + 0.01 * k, q=k))
    sync.put_image(image(1.031))
    status = sync.get(now_s=1.1)
    assert status.ok
    assert status.inputs.matched_joints.positions[0] == 3
    assert status.inputs.latest_joints.positions[0] == 9


def test_missing_and_stale_inputs_give_reasons():
    sync = ObservationSync(0.5, 0.1)
    assert sync.get(1.0).reason == "no_joint_state"
    sync.put_joints(joints(1.0))
    assert sync.get(1.05).reason == "no_image"
    sync.put_image(image(0.4))
    assert sync.get(1.05).reason == "stale_image"
    sync.put_image(image(1.0))
    assert sync.get(1.05).ok
    assert sync.get(1.2).reason == "stale_joint_state"


def test_future_stamps_and_time_going_backwards():
    sync = ObservationSync(0.5, 0.1)
    sync.put_joints(joints(100.0))
    sync.put_image(image(100.0))
    assert sync.get(10.0).reason == "future_joint_state"
    sync.put_joints(joints(5.0))  # sim reset: history cleared, only the new sample remains
    assert sync.latest_joints.stamp_s == 5.0
    sync.reset()
    assert sync.get(5.0).reason == "no_joint_state"


def test_nearest_match_agrees_with_a_full_search_including_ties_and_repeated_stamps():
    rng = np.random.default_rng(7)
    for trial in range(300):
        sync = ObservationSync(max_image_age_s=10.0, max_joint_state_age_s=10.0, history=64)
        steps = rng.choice([0.0, 0.002, 0.004], size=int(rng.integers(1, 80)))  # repeats -> equal stamps
        stamps = 1.0 + np.cumsum(steps)
        for k, t in enumerate(stamps):
            sync.put_joints(joints(float(t), q=k))
        kept = stamps[-64:]
        first_kept = len(stamps) - len(kept)
        target = float(rng.choice(kept)) + float(rng.choice([0.0, 0.001, -0.001, 0.05, -0.05]))
        sync.put_image(image(target))
        status = sync.get(now_s=float(stamps[-1]))
        expected = first_kept + int(np.argmin(np.abs(kept - target)))  # the oldest of equally near ones
        assert status.inputs.matched_joints.positions[0] == expected, (trial, target)
