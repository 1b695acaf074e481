"""A Policy whose faults the test switches on and off from outside the node process.

Loaded by the node as model:=python://fault_policy:FaultPolicy?control=/path/file (test/faults is on
the node's PYTHONPATH). Without a fault it returns a small valid chunk around the observed state (a
slow few-mrad drift of the first joint), so the safety filter passes it and chunks keep flowing.

The control file, read on every infer(), selects the fault (absent or empty: none):
    raise            infer() raises RuntimeError("injected backend fault")
    sleep <seconds>  infer() sleeps that long before answering (slow inference)
raise_after=N (query argument) additionally raises on every call after the N-th; trace=/path/file
makes every call write the instruction it was given there (to check instruction changes reach it).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from uam_ros.runtime.policy import ActionChunk, Observation


class FaultPolicy:
    name = "fault-injection"

    def __init__(self, joint_names, chunk_size, robot, control: str = "", raise_after: int = -1,
                 dt_s: float = 0.1, step: float = 0.002, trace: str = "") -> None:
        self.trace = Path(trace) if trace else None
        self.joint_names = list(joint_names)
        self.chunk_size = int(chunk_size)
        self.control = Path(control) if control else None
        self.raise_after = int(raise_after)
        self.dt_s = float(dt_s)
        self.step = float(step)
        self.calls = 0

    def warmup(self) -> float:
        return 0.0

    def _fault(self) -> str:
        if self.control is None:
            return ""
        try:
            return self.control.read_text().strip()
        except OSError:
            return ""

    def infer(self, observation: Observation) -> ActionChunk:
        self.calls += 1
        if self.trace is not None:
            self.trace.write_text(observation.instruction)
        fault = self._fault()
        if fault == "raise" or 0 <= self.raise_after < self.calls:
            raise RuntimeError(f"injected backend fault (call {self.calls})")
        if fault.startswith("sleep"):
            time.sleep(float(fault.split()[1]))
        state = np.asarray(observation.state, dtype=np.float64)
        if state.shape != (len(self.joint_names),):
            raise ValueError(f"state has shape {state.shape}, expected ({len(self.joint_names)},)")
        positions = np.tile(state, (self.chunk_size, 1))
        positions[:, 0] += self.step * np.arange(1, self.chunk_size + 1) / self.chunk_size
        return ActionChunk(positions, self.dt_s, observation.stamp_ns)
