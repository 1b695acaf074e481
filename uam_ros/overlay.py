"""What the policy intends, drawn on images (numpy + OpenCV, no ROS).

The same colour ramp colours the end-effector path in RViz (uam_ros.ros.markers) and in the
overlay video of ``uam demo``: early points of a chunk are blue, late points yellow; red is kept
for what the safety filter clamped or rejected.
"""

from __future__ import annotations

import os

import numpy as np

RAMP_START = np.array([0.10, 0.35, 1.00])  # now: blue
RAMP_END = np.array([1.00, 0.90, 0.10])  # end of the chunk: yellow
CLAMPED = np.array([1.0, 0.1, 0.1])  # what the safety filter changed or refused
PREVIOUS = np.array([0.6, 0.6, 0.6])
GRIPPER_CLOSED = np.array([0.85, 0.25, 0.85])
GRIPPER_OPEN = np.array([0.25, 0.85, 0.35])


def time_ramp(times: np.ndarray | int) -> np.ndarray:
    """RGB in [0, 1], one row per time (or per index when given a count). Every channel is
    monotone in time (red and green rise, blue falls), so order is readable in any one channel."""
    t = np.arange(times, dtype=np.float64) if np.isscalar(times) else np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros((0, 3))
    span = t.max() - t.min()
    s = (t - t.min()) / span if span > 0 else np.zeros_like(t)
    return RAMP_START + s[:, None] * (RAMP_END - RAMP_START)


def _bgr(rgb: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(round(255 * float(c))) for c in rgb[:3])
    return b, g, r


def draw_path(image_rgb: np.ndarray, pixels: np.ndarray, times: np.ndarray | None = None,
              clamped: np.ndarray | None = None, scale: float = 1.0, thickness: int = 2) -> np.ndarray:
    """Copy of image with a polyline through pixels (N, 2) coloured by time; clamped points red.

    pixels are in the image's original resolution; scale > 1 upsamples the image first so the
    line stays thin and smooth on small camera frames. NaN pixels (behind the camera) are skipped.
    """
    import cv2

    h, w = image_rgb.shape[:2]
    out = image_rgb if scale == 1.0 else cv2.resize(image_rgb, (int(w * scale), int(h * scale)),
                                                     interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    n = pixels.shape[0]
    if n == 0:
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    colours = time_ramp(times if times is not None else n)
    bad = np.zeros(n, bool) if clamped is None else np.asarray(clamped, bool)
    shift = 4  # sub-pixel drawing
    pts = np.round((pixels * scale + (scale - 1.0) / 2.0) * (1 << shift))  # pixel centres after upsampling
    ok = np.all(np.isfinite(pixels), axis=1)
    for k in range(n - 1):
        if ok[k] and ok[k + 1]:
            colour = CLAMPED if (bad[k] or bad[k + 1]) else colours[k + 1]
            cv2.line(out, tuple(int(v) for v in pts[k]), tuple(int(v) for v in pts[k + 1]), _bgr(colour),
                     thickness, cv2.LINE_AA, shift)
    for k in range(n):
        if ok[k]:
            colour = CLAMPED if bad[k] else colours[k]
            radius = (thickness + 2 if k in (0, n - 1) else thickness + 1) << shift
            cv2.circle(out, tuple(int(v) for v in pts[k]), radius, _bgr(colour), -1, cv2.LINE_AA, shift)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def label(image_rgb: np.ndarray, text: str, height: int = 22) -> np.ndarray:
    """The image with a white title band on top."""
    import cv2

    band = np.full((height, image_rgb.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (5, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image_rgb], axis=0)


def placeholder(size: tuple[int, int], text: str) -> np.ndarray:
    import cv2

    h, w = size
    out = np.full((h, w, 3), 40, np.uint8)
    cv2.putText(out, text, (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    return out


def plot_chunk(times: np.ndarray, positions: np.ndarray, size: tuple[int, int], joint_names=None,
               history: list[tuple[np.ndarray, np.ndarray]] = (), limits: tuple[np.ndarray, np.ndarray] | None = None,
               clamped: np.ndarray | None = None) -> np.ndarray:
    """Line plot of a commanded chunk: one line per joint over time_from_start (s).

    history: earlier chunks (times relative to the current one, positions), drawn faded.
    limits: (min, max) per joint to fix the y range per joint; else the data range. Each joint is
    normalised to its own range so joints of different units share one plot.
    """
    import cv2

    h, w = size
    out = np.full((h, w, 3), 255, np.uint8)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[0] == 0:
        return placeholder(size, "no chunk yet")
    joints = positions.shape[1]
    stacked = np.concatenate([positions] + [p for _, p in history], axis=0)
    low = stacked.min(axis=0) if limits is None else np.asarray(limits[0], dtype=np.float64)
    high = stacked.max(axis=0) if limits is None else np.asarray(limits[1], dtype=np.float64)
    pad = np.maximum(high - low, 1e-3) * 0.1
    low, high = low - pad, high + pad
    t_max = max(float(np.max(times)), 1e-3)
    t_min = min(0.0, *(float(np.min(t)) for t, _ in history)) if history else 0.0
    labels = _short_names(joint_names, joints)
    left, right, top, bottom = (8 + 6 * max((len(n) for n in labels), default=0)), w - 8, 8, h - 22

    def xy(t, q, j):
        x = left + (t - t_min) / (t_max - t_min) * (right - left)
        y = bottom - (q - low[j]) / (high[j] - low[j]) * (bottom - top)
        return np.stack([x, y], axis=1)

    cv2.rectangle(out, (left, top), (right, bottom), (200, 200, 200), 1)
    x0 = int(left + (0 - t_min) / (t_max - t_min) * (right - left))
    cv2.line(out, (x0, top), (x0, bottom), (150, 150, 150), 1)
    cv2.putText(out, "now", (x0 + 2, bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(out, f"+{t_max:.1f}s", (right - 34, bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (80, 80, 80), 1,
                cv2.LINE_AA)
    palette = [tuple(int(c) for c in cv2.cvtColor(np.uint8([[[int(180 * j / max(joints, 1)), 200, 200]]]),
                                                  cv2.COLOR_HSV2RGB)[0, 0]) for j in range(joints)]
    for t_hist, q_hist in history:
        for j in range(joints):
            pts = xy(np.asarray(t_hist), q_hist[:, j], j).astype(np.int32)
            faded = tuple(int(255 - 0.3 * (255 - c)) for c in palette[j])
            cv2.polylines(out, [pts], False, faded, 1, cv2.LINE_AA)
    bad = np.zeros(positions.shape[0], bool) if clamped is None else np.asarray(clamped, bool)
    for j in range(joints):
        pts = xy(np.asarray(times), positions[:, j], j).astype(np.int32)
        cv2.polylines(out, [pts], False, palette[j], 2, cv2.LINE_AA)
        for k in np.nonzero(bad)[0]:
            cv2.circle(out, tuple(int(v) for v in pts[k]), 3, _bgr(CLAMPED)[::-1], -1, cv2.LINE_AA)
        if j < len(labels):
            cv2.putText(out, labels[j], (2, top + 10 + 12 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.33, palette[j], 1,
                        cv2.LINE_AA)
    return out


def _short_names(names, count: int) -> list[str]:
    """Joint names without their common prefix (panda_joint1 -> joint1), at most 12 characters."""
    if not names:
        return []
    names = [str(n) for n in names[:count]]
    prefix = os.path.commonprefix(names)
    cut = prefix.rfind("_") + 1 if len(names) > 1 else 0
    return [n[cut:][:12] or n[:12] for n in names]


def compose(panels: list[np.ndarray], titles: list[str]) -> np.ndarray:
    """Panels side by side (padded to the tallest), each under its title."""
    height = max(p.shape[0] for p in panels)
    padded = []
    for panel, title in zip(panels, titles):
        if panel.shape[0] < height:
            panel = np.concatenate([panel, np.full((height - panel.shape[0], panel.shape[1], 3), 255, np.uint8)])
        padded.append(label(panel, title))
    return np.concatenate(padded, axis=1)
