"""uam_ros.overlay: the colour ramp, the projected path drawn where the camera sees it, the chunk plot."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from uam_ros.overlay import CLAMPED, RAMP_END, RAMP_START, compose, draw_path, plot_chunk, time_ramp  # noqa: E402


def test_time_ramp_is_monotone_in_every_channel_and_never_red():
    colours = time_ramp(np.array([0.05, 0.1, 0.2, 0.4, 0.8]))
    np.testing.assert_allclose(colours[0], RAMP_START)
    np.testing.assert_allclose(colours[-1], RAMP_END)
    assert np.all(np.diff(colours[:, 0]) > 0) and np.all(np.diff(colours[:, 1]) > 0)
    assert np.all(np.diff(colours[:, 2]) < 0)
    assert np.min(np.linalg.norm(colours - CLAMPED, axis=1)) > 0.5  # red stays reserved for clamped points
    assert time_ramp(1).shape == (1, 3) and time_ramp(0).shape == (0, 3)


def test_path_is_drawn_at_the_projected_pixels():
    image = np.zeros((40, 60, 3), np.uint8)
    pixels = np.array([[10.0, 10.0], [30.0, 20.0], [50.0, 30.0], [np.nan, np.nan]])
    out = draw_path(image, pixels, np.array([0.1, 0.2, 0.3, 0.4]))
    assert out.shape == image.shape and image.max() == 0  # the input is not modified
    start, end = out[10, 10].astype(int), out[30, 50].astype(int)
    assert start[2] > start[0] and end[0] > end[2]  # blue at the start, yellow at the end
    assert out[5:15, 5:15].any() and out[25:35, 45:55].any() and not out[:, :4].any()
    scaled = draw_path(image, pixels, scale=3)
    assert scaled.shape == (120, 180, 3)
    assert scaled[3 * 10 + 1, 3 * 10 + 1].any()  # the centre of original pixel (10, 10) after upsampling


def test_clamped_points_are_red():
    out = draw_path(np.zeros((40, 60, 3), np.uint8), np.array([[10.0, 10.0], [30.0, 20.0], [50.0, 30.0]]),
                    clamped=np.array([False, False, True]))
    r, g, b = out[30, 50].astype(int)
    assert r > 200 and g < 80 and b < 80


def test_projected_fk_path_lands_in_the_scene_camera_image():
    """With the TCP lowered towards the table (where the tasks happen) it projects inside the sim's
    camera frame, and turning the base moves it sideways across the image."""
    from uam_ros.kinematics import RobotKinematics

    kin = RobotKinematics("franka_panda")
    low = np.array(kin.robot.home) + [0.0, 0.8, 0.0, 0.2, 0.0, 0.5, 0.0]
    q = np.array([low, low + [0.3, 0, 0, 0, 0, 0, 0]])
    pixels = kin.project_tcp_path(q)
    assert np.all(np.isfinite(pixels))
    assert np.all((pixels >= 0) & (pixels < [kin.robot.camera.width, kin.robot.camera.height]))
    assert abs(pixels[1, 0] - pixels[0, 0]) > 10.0 > abs(pixels[1, 1] - pixels[0, 1])


def test_plot_and_compose_shapes():
    times = 0.1 * np.arange(1, 17)
    positions = np.cumsum(np.full((16, 7), 0.01), axis=0)
    plot = plot_chunk(times, positions, (120, 200), [f"j{i}" for i in range(7)],
                      history=[(times - 0.2, positions - 0.05)], clamped=np.arange(16) == 15)
    assert plot.shape == (120, 200, 3) and plot.dtype == np.uint8 and (plot < 255).any()
    empty = plot_chunk(times[:0], positions[:0], (120, 200))
    assert empty.shape == (120, 200, 3)
    sheet = compose([plot, np.zeros((100, 50, 3), np.uint8)], ["a", "b"])
    assert sheet.shape[1] == 250 and sheet.shape[0] > 120


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_drawing_tolerates_an_empty_path(scale):
    out = draw_path(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 2)), scale=scale)
    assert out.shape == (int(8 * scale), int(8 * scale), 3) and not out.any()
