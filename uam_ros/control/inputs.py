"""Turn raw sensor data into validated arrays, or say exactly why not.

Every rejection is an InputRejected with a short machine-readable reason (for diagnostics and
counters) and a human message (for the log). Nothing here raises anything else on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class InputRejected(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class JointSample:
    stamp_s: float
    positions: np.ndarray  # arm joints, robot config order
    velocities: np.ndarray | None
    gripper: float | None


@dataclass(frozen=True)
class ImageSample:
    stamp_s: float
    image: np.ndarray  # H x W x 3 uint8 RGB


class JointStateMapper:
    """Maps a JointState's (names, positions, velocities) onto the robot's joint order.

    Drivers publish extra joints (fingers, other arms) and in any order; those are fine. A message
    that lacks one of our arm joints is rejected, naming what is missing and what was unexpected.
    The index map is cached per name tuple because drivers send the same layout every time.
    """

    def __init__(self, arm_joints: Sequence[str], gripper_joint: str | None) -> None:
        self.arm_joints = tuple(arm_joints)
        self.gripper_joint = gripper_joint
        self._cache: dict[tuple[str, ...], tuple[np.ndarray, int | None]] = {}

    def _indices(self, names: tuple[str, ...]) -> tuple[np.ndarray, int | None]:
        cached = self._cache.get(names)
        if cached is not None:
            return cached
        if len(set(names)) != len(names):
            raise InputRejected("duplicate_joints", f"joint_states has duplicate names: {list(names)}")
        lookup = {name: i for i, name in enumerate(names)}
        missing = [n for n in self.arm_joints if n not in lookup]
        if missing:
            known = set(self.arm_joints) | {self.gripper_joint}
            unknown = [n for n in names if n not in known]
            raise InputRejected(
                "unknown_joints",
                f"joint_states lacks arm joints {missing}" + (f"; unexpected names {unknown}" if unknown else ""),
            )
        arm = np.array([lookup[n] for n in self.arm_joints], dtype=np.intp)
        gripper = lookup.get(self.gripper_joint) if self.gripper_joint else None
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[names] = (arm, gripper)
        return arm, gripper

    def map(
        self, stamp_s: float, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float]
    ) -> JointSample:
        names = tuple(names)
        if len(positions) != len(names):
            raise InputRejected(
                "malformed_joint_state", f"joint_states has {len(names)} names but {len(positions)} positions"
            )
        if len(velocities) not in (0, len(names)):
            raise InputRejected(
                "malformed_joint_state", f"joint_states has {len(names)} names but {len(velocities)} velocities"
            )
        # Array methods and math.isfinite rather than np.all/np.isfinite on scalars: this runs for every
        # joint state (500 Hz from some drivers), a few numpy calls each.
        arm_idx, gripper_idx = self._indices(names)
        pos = np.asarray(positions, dtype=np.float64)
        arm_q = pos[arm_idx]
        if not np.isfinite(arm_q).all():
            bad = [self.arm_joints[i] for i in np.flatnonzero(~np.isfinite(arm_q))]
            raise InputRejected("non_finite_joint_state", f"joint_states has non-finite positions for {bad}")
        arm_v = None
        if len(velocities):
            arm_v = np.asarray(velocities, dtype=np.float64)[arm_idx]
            if not np.isfinite(arm_v).all():
                arm_v = None  # velocities are only a hint for the acceleration limit; positions matter
        gripper = None
        if gripper_idx is not None:
            value = float(pos[gripper_idx])
            gripper = value if math.isfinite(value) else None
        return JointSample(stamp_s=stamp_s, positions=arm_q, velocities=arm_v, gripper=gripper)


SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def decode_image(
    encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview | np.ndarray,
    expected_hw: tuple[int, int],
) -> np.ndarray:
    """sensor_msgs/Image fields -> HxWx3 uint8 RGB, rejecting what the policy cannot use.

    The size must match the configured camera exactly: silently resizing a wrong camera's frames
    would feed the policy a view it was never trained on.
    """
    if encoding not in _CHANNELS:
        raise InputRejected(
            "unsupported_encoding", f"image encoding '{encoding}' is not supported (use one of {SUPPORTED_ENCODINGS})"
        )
    if (height, width) != tuple(expected_hw):
        raise InputRejected(
            "wrong_image_size", f"image is {width}x{height}, the robot config expects {expected_hw[1]}x{expected_hw[0]}"
        )
    channels = _CHANNELS[encoding]
    if step < width * channels:
        raise InputRejected("malformed_image", f"image step {step} < width*channels {width * channels}")
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buffer.size < step * height:
        raise InputRejected("malformed_image", f"image data has {buffer.size} bytes, expected {step * height}")
    rows = buffer[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return pixels[:, :, ::-1].copy()
    if encoding == "rgba8":
        return pixels[:, :, :3].copy()
    if encoding == "bgra8":
        return pixels[:, :, 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)
