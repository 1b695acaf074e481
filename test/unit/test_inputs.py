import numpy as np
import pytest

from uam_ros.control.inputs import InputRejected, JointStateMapper, decode_image


def test_joint_state_reordered_and_extra_joints_ignored():
    mapper = JointStateMapper(["a", "b"], "g")
    sample = mapper.map(1.0, ["x", "b", "g", "a"], [9.0, 2.0, 0.03, 1.0], [0.0, 0.2, 0.0, 0.1])
    np.testing.assert_array_equal(sample.positions, [1.0, 2.0])
    np.testing.assert_array_equal(sample.velocities, [0.1, 0.2])
    assert sample.gripper == pytest.approx(0.03)


@pytest.mark.parametrize(
    "names, positions, velocities, reason",
    [
        (["a", "zzz"], [1.0, 2.0], [], "unknown_joints"),
        (["a", "b"], [1.0, float("nan")], [], "non_finite_joint_state"),
        (["a", "b"], [1.0, float("inf")], [], "non_finite_joint_state"),
        (["a", "b"], [1.0], [], "malformed_joint_state"),
        (["a", "b"], [1.0, 2.0], [1.0], "malformed_joint_state"),
        (["a", "a", "b"], [1.0, 1.0, 2.0], [], "duplicate_joints"),
    ],
)
def test_bad_joint_states_rejected_with_reason(names, positions, velocities, reason):
    with pytest.raises(InputRejected) as info:
        JointStateMapper(["a", "b"], None).map(0.0, names, positions, velocities)
    assert info.value.reason == reason


def test_unknown_names_message_names_missing_and_unexpected():
    with pytest.raises(InputRejected, match=r"lacks arm joints \['b'\].*unexpected names \['zzz'\]"):
        JointStateMapper(["a", "b"], None).map(0.0, ["a", "zzz"], [1.0, 2.0], [])


def test_decode_bgr_rgba_mono_and_padded_rows():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(decode_image("rgb8", 2, 3, 9, rgb.tobytes(), (2, 3)), rgb)
    np.testing.assert_array_equal(decode_image("bgr8", 2, 3, 9, rgb[:, :, ::-1].tobytes(), (2, 3)), rgb)
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image("rgba8", 2, 3, 12, rgba.tobytes(), (2, 3)), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image("bgra8", 2, 3, 12, bgra.tobytes(), (2, 3)), rgb)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    np.testing.assert_array_equal(decode_image("rgb8", 2, 3, 12, padded.tobytes(), (2, 3)), rgb)
    mono = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    assert decode_image("mono8", 2, 3, 3, mono.tobytes(), (2, 3))[1, 2].tolist() == [6, 6, 6]


@pytest.mark.parametrize(
    "encoding, h, w, step, size, reason",
    [
        ("16UC1", 2, 3, 6, 12, "unsupported_encoding"),
        ("yuv422", 2, 3, 6, 12, "unsupported_encoding"),
        ("rgb8", 4, 3, 9, 36, "wrong_image_size"),
        ("rgb8", 2, 3, 9, 10, "malformed_image"),
        ("rgb8", 2, 3, 5, 10, "malformed_image"),
    ],
)
def test_bad_images_rejected(encoding, h, w, step, size, reason):
    with pytest.raises(InputRejected) as info:
        decode_image(encoding, h, w, step, bytes(size), (2, 3))
    assert info.value.reason == reason
