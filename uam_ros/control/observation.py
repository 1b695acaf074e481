"""Pair the newest camera frame with the joint state measured when it was taken, and refuse stale data.

The policy's proprioception must describe the same instant as its image (otherwise a moving arm
looks like it is somewhere it is not), so the joint state is matched to the image stamp from a
short history. The safety filter, by contrast, always needs the newest joint state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from uam_ros.control.inputs import ImageSample, JointSample


@dataclass(frozen=True)
class SyncedInputs:
    image: ImageSample
    matched_joints: JointSample  # nearest in time to the image, for the policy
    latest_joints: JointSample  # newest, for safety and hold


@dataclass(frozen=True)
class SyncStatus:
    """ok, or the reason the inputs cannot be used right now (no_image, stale_image, ...)."""

    reason: str
    detail: str
    inputs: SyncedInputs | None = None

    @property
    def ok(self) -> bool:
        return self.inputs is not None


class ObservationSync:
    def __init__(self, max_image_age_s: float, max_joint_state_age_s: float, history: int = 256) -> None:
        self.max_image_age_s = max_image_age_s
        self.max_joint_state_age_s = max_joint_state_age_s
        self._joints: deque[JointSample] = deque(maxlen=history)
        self._image: ImageSample | None = None

    def reset(self) -> None:
        """Forget everything (clock jumps, sim resets): old stamps are meaningless afterwards."""
        self._joints.clear()
        self._image = None

    def put_joints(self, sample: JointSample) -> None:
        if self._joints and sample.stamp_s < self._joints[-1].stamp_s:
            # Time went backwards (sim reset, bag loop): the history no longer describes the past.
            self._joints.clear()
        self._joints.append(sample)

    def put_image(self, sample: ImageSample) -> None:
        self._image = sample

    @property
    def latest_joints(self) -> JointSample | None:
        return self._joints[-1] if self._joints else None

    def _match(self, stamp_s: float) -> JointSample:
        """The joint sample nearest the image stamp (the oldest of equally near ones). The history is in
        stamp order (put_joints keeps it so), so the scan walks back from the newest and stops once
        samples only get farther: a few steps per tick instead of the whole history."""
        best, best_gap = self._joints[-1], abs(self._joints[-1].stamp_s - stamp_s)
        for sample in reversed(self._joints):
            gap = abs(sample.stamp_s - stamp_s)
            if gap <= best_gap:
                best, best_gap = sample, gap
            elif sample.stamp_s < stamp_s:
                break
        return best

    def get(self, now_s: float) -> SyncStatus:
        latest = self.latest_joints
        if latest is None:
            return SyncStatus("no_joint_state", "no joint state received yet")
        joint_age = now_s - latest.stamp_s
        if joint_age > self.max_joint_state_age_s:
            return SyncStatus("stale_joint_state", f"newest joint state is {joint_age:.3f} s old "
                              f"(limit {self.max_joint_state_age_s:.3f} s)")
        if joint_age < -self.max_joint_state_age_s:
            return SyncStatus("future_joint_state", f"joint state stamp is {-joint_age:.3f} s in the future (clock jump?)")
        if self._image is None:
            return SyncStatus("no_image", "no camera image received yet")
        image_age = now_s - self._image.stamp_s
        if image_age > self.max_image_age_s:
            return SyncStatus("stale_image", f"newest camera image is {image_age:.3f} s old "
                              f"(limit {self.max_image_age_s:.3f} s)")
        if image_age < -self.max_image_age_s:
            return SyncStatus("future_image", f"camera stamp is {-image_age:.3f} s in the future (clock jump?)")
        matched = self._match(self._image.stamp_s)
        return SyncStatus("ok", "", SyncedInputs(self._image, matched, latest))
