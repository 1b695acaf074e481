"""~/predicted_path: the end-effector path of the commanded chunk as a visualization_msgs/MarkerArray.

Every array starts with a DELETEALL marker and then sets markers with fixed (namespace, id) pairs
and action ADD (== MODIFY), so each message replaces the previous picture instead of adding to it.

| namespace  | id | type              | what                                                        |
|------------|----|-------------------|-------------------------------------------------------------|
| path       | 0  | LINE_STRIP        | the commanded path, coloured by time (blue now -> yellow)    |
| points     | 0  | SPHERE_LIST       | the chunk's points, same colours                             |
| gripper    | 0  | CUBE_LIST         | where the gripper command changes (magenta close, green open) |
| clamped    | 0  | LINE_LIST         | red: what the policy asked for where the safety filter clamped, and the correction |
| clamped    | 1  | SPHERE_LIST       | red: the requested (unsafe) points                           |
| rejected   | 0  | LINE_STRIP        | red: a whole chunk the safety filter refused (the arm holds)  |
| previous   | 0  | LINE_STRIP        | the previous commanded path, faded                           |
| status     | 0  | TEXT_VIEW_FACING  | loop state, backend, latency, dry-run/enabled                |

Positions are in the robot's base_frame; the header stamp is the command's stamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from uam_ros.overlay import CLAMPED, GRIPPER_CLOSED, GRIPPER_OPEN, PREVIOUS, time_ramp
from uam_ros.ros.conversions import s_to_stamp

NAMESPACES = ("path", "points", "gripper", "clamped", "rejected", "previous", "status")


@dataclass(frozen=True)
class PathStyle:
    line_width: float = 0.006
    point_diameter: float = 0.014
    gripper_mark: float = 0.028
    previous_alpha: float = 0.35
    text_height: float = 0.04


@dataclass(frozen=True)
class PathScene:
    """Everything one ~/predicted_path message shows (numpy, base frame)."""

    path: np.ndarray | None = None  # (N, 3) commanded end-effector positions
    times_s: np.ndarray | None = None  # (N,) time_from_start of the points
    clamped: np.ndarray | None = None  # (N,) bool: the safety filter changed this point
    requested: np.ndarray | None = None  # (N, 3) what the policy asked for (before the safety filter)
    gripper_closed: np.ndarray | None = None  # (N,) bool: commanded gripper state per point
    previous: np.ndarray | None = None  # (M, 3) the previous commanded path
    rejected: np.ndarray | None = None  # (K, 3) a refused chunk
    status: str = ""


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _colour(rgb, alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def _marker(frame_id: str, stamp_s: float, ns: str, marker_id: int, marker_type: int) -> Marker:
    marker = Marker()
    marker.header.frame_id = frame_id
    marker.header.stamp = s_to_stamp(stamp_s)
    marker.ns = ns
    marker.id = marker_id
    marker.type = marker_type
    marker.action = Marker.ADD  # == Marker.MODIFY: same (ns, id) replaces
    marker.pose.orientation.w = 1.0
    return marker


def delete_all(frame_id: str, stamp_s: float) -> Marker:
    marker = _marker(frame_id, stamp_s, "", 0, Marker.LINE_STRIP)
    marker.action = Marker.DELETEALL
    return marker


def _strip(frame_id, stamp_s, ns, marker_id, points, colours, alpha, width, marker_type=Marker.LINE_STRIP) -> Marker:
    marker = _marker(frame_id, stamp_s, ns, marker_id, marker_type)
    marker.scale.x = marker.scale.y = marker.scale.z = float(width)
    marker.points = [_point(p) for p in points]
    if colours is not None and len(colours) == len(points):
        marker.colors = [_colour(c, alpha) for c in colours]
    marker.color = _colour(colours[-1] if colours is not None and len(colours) else PREVIOUS, alpha)
    return marker


def predicted_path_markers(frame_id: str, stamp_s: float, scene: PathScene, style: PathStyle = PathStyle()) -> MarkerArray:
    out = [delete_all(frame_id, stamp_s)]
    path = None if scene.path is None else np.asarray(scene.path, dtype=np.float64).reshape(-1, 3)
    if path is not None and path.shape[0] > 0:
        n = path.shape[0]
        colours = time_ramp(scene.times_s if scene.times_s is not None else n)
        if n >= 2:
            out.append(_strip(frame_id, stamp_s, "path", 0, path, colours, 1.0, style.line_width))
        out.append(_strip(frame_id, stamp_s, "points", 0, path, colours, 1.0, style.point_diameter,
                          Marker.SPHERE_LIST))
        if scene.gripper_closed is not None and len(scene.gripper_closed) == n:
            closed = np.asarray(scene.gripper_closed, bool)
            marks = [0] + [k for k in range(1, n) if closed[k] != closed[k - 1]]
            out.append(_strip(frame_id, stamp_s, "gripper", 0, path[marks],
                              [GRIPPER_CLOSED if closed[k] else GRIPPER_OPEN for k in marks], 0.8,
                              style.gripper_mark, Marker.CUBE_LIST))
        clamped = np.zeros(n, bool) if scene.clamped is None else np.asarray(scene.clamped, bool)
        if scene.requested is not None and np.any(clamped):
            requested = np.asarray(scene.requested, dtype=np.float64).reshape(-1, 3)
            segments = []
            for k in range(n):
                if clamped[k]:
                    segments += [requested[k], path[k]]  # the correction the filter applied
                if k > 0 and (clamped[k] or clamped[k - 1]):
                    segments += [requested[k - 1], requested[k]]  # the part of the request it refused
            out.append(_strip(frame_id, stamp_s, "clamped", 0, segments, [CLAMPED] * len(segments), 1.0,
                              style.line_width, Marker.LINE_LIST))
            out.append(_strip(frame_id, stamp_s, "clamped", 1, requested[clamped], [CLAMPED] * int(clamped.sum()),
                              1.0, style.point_diameter, Marker.SPHERE_LIST))
    if scene.rejected is not None and len(scene.rejected) >= 2:
        rejected = np.asarray(scene.rejected, dtype=np.float64).reshape(-1, 3)
        out.append(_strip(frame_id, stamp_s, "rejected", 0, rejected, [CLAMPED] * len(rejected), 1.0,
                          style.line_width))
    if scene.previous is not None and len(scene.previous) >= 2:
        previous = np.asarray(scene.previous, dtype=np.float64).reshape(-1, 3)
        out.append(_strip(frame_id, stamp_s, "previous", 0, previous, [PREVIOUS] * len(previous),
                          style.previous_alpha, style.line_width * 0.7))
    if scene.status:
        text = _marker(frame_id, stamp_s, "status", 0, Marker.TEXT_VIEW_FACING)
        anchor = path[0] if path is not None and len(path) else np.zeros(3)
        text.pose.position = _point(anchor + np.array([0.0, 0.0, 0.12]))
        text.scale.z = style.text_height
        text.color = _colour(CLAMPED if scene.status.startswith(("rejected", "hold")) else (1.0, 1.0, 1.0))
        text.text = scene.status
        out.append(text)
    return MarkerArray(markers=out)
