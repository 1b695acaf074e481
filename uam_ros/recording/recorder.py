"""A recording that never blocks its caller: a bounded queue and one writer thread.

The policy node records from its control timer and its subscription callbacks, which must never
wait on a disk, a compressor or a serializer. record() only timestamps the message and puts a
reference on a queue (microseconds); the writer thread serializes (rclpy's serialize_message),
compresses and writes. When the disk cannot keep up and the queue is full, the message is dropped
and counted (per topic), never waited for: losing a camera frame of the recording is acceptable,
delaying a trajectory command is not. The counts are written to the file at close and returned by
stats().

record() takes either a ROS message, the CDR bytes of one (a raw subscription's), or a callable
returning a message — the last lets the node hand over numpy results whose conversion to a
message then runs on the writer thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rclpy.serialization import serialize_message

from uam_ros.recording.msgdefs import type_name_of
from uam_ros.recording.topics import TopicSpec, offered_qos_yaml
from uam_ros.recording.writer import DEFAULT_CHUNK_SIZE, DEFAULT_FLUSH_PERIOD_S, McapRecordingWriter

LOG = logging.getLogger("uam_ros.recording")
METADATA_NAME = "uam_ros"  # the file's description: roles -> topics, robot, model, ...
STATS_NAME = "uam_ros.stats"  # written at close: counts and drops


@dataclass(frozen=True)
class RecorderStats:
    written: dict[str, int]
    dropped: dict[str, int]
    errors: int
    bytes: int
    duration_s: float


class Recorder:
    """Records TopicSpecs to an MCAP file from any thread; close() finishes the file."""

    _STOP = object()

    def __init__(self, path: str | Path, topics: Iterable[TopicSpec], metadata: dict[str, str] | None = None, *,
                 clock_ns: Callable[[], int] = time.time_ns, queue_size: int = 2000,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, compression: str = "zstd",
                 flush_period_s: float = DEFAULT_FLUSH_PERIOD_S) -> None:
        self.path = Path(path)
        self.clock_ns = clock_ns
        self.topics = {spec.topic: spec for spec in topics}
        self._writer = McapRecordingWriter(self.path, chunk_size=chunk_size, compression=compression,
                                           flush_period_s=flush_period_s)
        roles = {f"topic.{spec.role}": spec.topic for spec in self.topics.values()}
        self._writer.add_metadata(METADATA_NAME, {**roles, **(metadata or {})})
        for spec in self.topics.values():
            self._writer.add_channel(spec.topic, type_name_of(spec.msg_type), offered_qos_yaml(spec.qos))
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._written: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._errors = 0
        self._closed = False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="uam-recorder", daemon=True)
        self._thread.start()

    # ---- any thread -----------------------------------------------------------------------
    def record(self, topic: str, message: Any, log_time_ns: int | None = None, publish_time_ns: int | None = None,
               sequence: int = 0) -> bool:
        """Queue one message (a ROS message, its CDR bytes, or a callable returning a message).
        Never blocks; returns False when it was dropped (queue full, closed, unknown topic)."""
        if self._closed or topic not in self.topics:
            return False
        stamp = self.clock_ns() if log_time_ns is None else log_time_ns
        try:
            self._queue.put_nowait((topic, message, stamp, publish_time_ns, sequence))
            return True
        except queue.Full:
            self._dropped[topic] += 1
            return False

    @property
    def dropped(self) -> int:
        return sum(self._dropped.values())

    def stats(self) -> RecorderStats:
        size = self.path.stat().st_size if self.path.exists() else 0
        return RecorderStats(dict(self._written), dict(self._dropped), self._errors, size,
                             time.monotonic() - self._started)

    def close(self, timeout_s: float = 10.0) -> RecorderStats:
        """Write what is queued, the stats record, the summary and the footer. Idempotent."""
        if not self._closed:
            self._closed = True
            try:
                self._queue.put(self._STOP, timeout=timeout_s)
            except queue.Full:
                pass  # the writer thread is stuck (a dead disk); the join below times out and says so
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                LOG.error("recorder: writer thread did not finish in %.1f s; %s has no footer "
                          "(readable up to its last chunk)", timeout_s, self.path)
        return self.stats()

    # ---- writer thread --------------------------------------------------------------------
    def _encode(self, message: Any) -> bytes:
        if isinstance(message, (bytes, bytearray, memoryview)):
            return bytes(message)
        if callable(message):
            message = message()
        return serialize_message(message)

    def _run(self) -> None:
        writer = self._writer
        try:
            while True:
                try:
                    item = self._queue.get(timeout=writer.flush_period_s / 2)
                except queue.Empty:
                    writer.maybe_flush()
                    continue
                if item is self._STOP:
                    break
                topic, message, log_time_ns, publish_time_ns, sequence = item
                try:
                    writer.write(topic, self._encode(message), log_time_ns, publish_time_ns, sequence)
                    self._written[topic] += 1
                except Exception:  # noqa: BLE001 - one bad message must not end the recording
                    self._errors += 1
                    if self._errors <= 3:
                        LOG.exception("recorder: could not write a message on %s", topic)
                writer.maybe_flush()
        finally:
            try:
                stats = self.stats()
                writer.add_metadata(STATS_NAME, {
                    "messages": sum(stats.written.values()), "dropped": sum(stats.dropped.values()),
                    "errors": stats.errors, "duration_s": f"{stats.duration_s:.3f}",
                    **{f"written.{t}": n for t, n in stats.written.items()},
                    **{f"dropped.{t}": n for t, n in stats.dropped.items()},
                })
            finally:
                writer.close()
