"""The scripted expert as a Policy, so it can drive the real ROS path before a model is trained.

The expert needs privileged state (where the objects are), which a camera-only policy never has.
It therefore plays its episode once in a private copy of the simulated world, recording the
joint targets it commanded and the joint states it saw, and at run time replays the recorded targets on their schedule, counted
from the first observation; when the arm falls behind (a hold) it resumes from the recorded step
nearest to the measured state. Deterministic physics makes the real sim follow the same path.
Selected with model:=expert://<task>?split=train&seed=3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import numpy as np

from uam_ros.runtime.policy import ActionChunk, Observation

SCHEME = "expert://"


@dataclass(frozen=True)
class ExpertSpec:
    task: str
    split: str
    seed: int

    @classmethod
    def parse(cls, uri: str) -> "ExpertSpec":
        parsed = urlparse(uri)
        if parsed.scheme != "expert" or not parsed.netloc:
            raise ValueError(f"expected expert://<task>?split=<split>&seed=<n>, got {uri!r}")
        query = parse_qs(parsed.query)
        return cls(parsed.netloc, query.get("split", ["train"])[0], int(query.get("seed", ["0"])[0]))


class ExpertPolicy:
    name = "expert"
    max_lag_rad = 0.15  # well inside the safety filter's max_position_deviation

    def __init__(self, robot: str, spec: ExpertSpec, chunk_size: int) -> None:
        from uam_ros.sim.expert import run_expert_episode

        self.spec = spec
        self.chunk_size = chunk_size
        result = run_expert_episode(robot, spec.task, spec.split, spec.seed, stop_on_success=True)
        if not result.actions:
            raise RuntimeError(f"the scripted expert produced no actions for {spec}")
        self.expert_succeeded = result.success
        self.instruction = result.instruction
        self.actions = np.asarray(result.actions, dtype=np.float64)  # (T, A): targets commanded at step t
        self.states = np.asarray(result.joint_positions, dtype=np.float64)  # (T, A): state before step t
        from uam_ros.control.robot_config import load_robot_config

        self.dt_s = 1.0 / load_robot_config(robot).chunk.action_rate_hz
        self._last_stamp_ns: int | None = None
        self._progress = 0.0

    def infer(self, observation: Observation) -> ActionChunk:
        start = time.perf_counter()
        if self._last_stamp_ns is not None:
            # Replay on the recorded schedule: the controller executes chunks by time, so the arm is
            # normally where the private rollout was at the same elapsed time (grasp pauses included).
            self._progress += (observation.stamp_ns - self._last_stamp_ns) * 1e-9 / self.dt_s
        self._last_stamp_ns = observation.stamp_ns
        step = min(int(round(self._progress)), len(self.actions) - 1)
        arm = observation.state[: self.states.shape[1] - 1]
        if np.max(np.abs(self.states[step, : arm.shape[0]] - arm)) > self.max_lag_rad:
            # The arm fell behind (a hold, a slow start): resume from the recorded step nearest to
            # where it is instead of commanding a jump the safety filter would refuse.
            window = self.states[: step + 1, : arm.shape[0]]
            step = int(np.argmin(np.max(np.abs(window - arm), axis=1)))
            self._progress = float(step)
        index = np.minimum(step + np.arange(self.chunk_size), len(self.actions) - 1)
        return ActionChunk(
            positions=self.actions[index].copy(),
            dt_s=self.dt_s,
            observation_stamp_ns=observation.stamp_ns,
            inference_s=time.perf_counter() - start,
            extras={"expert_step": step},
        )

    def warmup(self) -> float:
        return 0.0
