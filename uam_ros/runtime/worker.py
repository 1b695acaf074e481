"""Inference off the control thread: one observation in flight, newest result wins.

The control timer only ever calls submit() and poll(), which take a lock for a few microseconds;
it never waits for the model. torch / ONNX Runtime / TensorRT release the GIL while they compute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from uam_ros.runtime.policy import ActionChunk, Observation, Policy


@dataclass(frozen=True)
class WorkerResult:
    chunk: ActionChunk | None
    error: str  # "" on success
    latency_s: float
    started_s: float = 0.0  # time.monotonic() when infer() was called (for ~/chunk_timing)
    finished_s: float = 0.0  # time.monotonic() when it returned


class BusyClock:
    """busy / busy_for_s of a worker that sets ``_busy_since`` (monotonic s, None when idle) under
    ``_lock``: shared by the thread and the process worker, which PolicyLoop's timeout reads alike."""

    _lock: threading.Lock
    _busy_since: float | None

    def busy_for_s(self) -> float:
        """Seconds the current inference has been running (0 when idle)."""
        with self._lock:
            since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy_since is not None


class InferenceWorker(BusyClock):
    def __init__(self, policy: Policy, name: str = "uam-inference") -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: Observation | None = None
        self._result: WorkerResult | None = None
        self._busy_since: float | None = None
        self._stopping = False
        self.completed = 0
        self.failed = 0
        self.name = name
        self._generation = 0
        self._thread = threading.Thread(target=self._run, args=(0,), name=name, daemon=True)

    def start(self) -> None:
        """Start the thread; after stop() (a lifecycle deactivate), start a new one."""
        with self._lock:
            if self._thread.ident is not None:  # started before: a thread runs only once
                if self._thread.is_alive() and not self._stopping:
                    return
                self._generation += 1  # an old thread still finishing an inference exits after it
                self._thread = threading.Thread(target=self._run, args=(self._generation,), name=self.name,
                                                daemon=True)
                self._stopping, self._pending, self._result, self._busy_since = False, None, None, None
            thread = self._thread
        thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def submit(self, observation: Observation) -> bool:
        """Queue an observation unless one is already being inferred; never blocks on inference."""
        with self._lock:
            if self._busy_since is not None or self._stopping:
                return False
            self._pending = observation
            self._busy_since = time.monotonic()
            self._wake.notify()
            return True

    def poll(self) -> WorkerResult | None:
        with self._lock:
            result, self._result = self._result, None
            return result

    def _run(self, generation: int) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stopping and generation == self._generation:
                    self._wake.wait()
                if self._stopping or generation != self._generation:
                    return
                observation, self._pending = self._pending, None
            start = time.monotonic()
            try:
                chunk = self.policy.infer(observation)
                end = time.monotonic()
                result = WorkerResult(chunk, "", end - start, start, end)
            except Exception as exc:  # a backend fault must never kill the control loop
                end = time.monotonic()
                result = WorkerResult(None, f"{type(exc).__name__}: {exc}", end - start, start, end)
            with self._lock:
                if generation != self._generation:
                    return  # stopped and restarted while this inference ran: its result is stale
                self._result = result
                self._busy_since = None
                if result.error:
                    self.failed += 1
                else:
                    self.completed += 1
