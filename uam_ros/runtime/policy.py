"""The contract between the control loop and any inference backend (openpi's Policy, ROS-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One synchronised input to the policy.

    image: HxWx3 uint8 RGB at the camera's resolution. state: arm joint positions followed by the
    gripper position (robot config order). stamp_ns: the stamp the chunk's timing is anchored to
    (the newer of the image and joint-state stamps).
    """

    image: np.ndarray
    state: np.ndarray
    instruction: str
    stamp_ns: int


@dataclass(frozen=True)
class ActionChunk:
    """Absolute joint targets [chunk_size, action_dim] (arm joints, then gripper) spaced by dt_s,
    point i meant for time observation.stamp + (i + 1) * dt_s."""

    positions: np.ndarray
    dt_s: float
    observation_stamp_ns: int
    imagined_future: np.ndarray | None = None
    inference_s: float = 0.0
    extras: dict = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """Anything that maps an Observation to an ActionChunk. Implementations must be thread-safe
    for one caller at a time and must not touch ROS."""

    name: str

    def infer(self, observation: Observation) -> ActionChunk: ...

    def warmup(self) -> float:
        """Run the first (slow) inferences now; returns seconds spent."""
        ...
