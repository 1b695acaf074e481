"""Chunked MCAP with ROS 2 schemas and raw CDR payloads, safe to kill at any moment.

Layout: profile "ros2", one schema per message type (encoding "ros2msg", the full definition text
from uam_ros.recording.msgdefs), one channel per topic (message encoding "cdr", channel metadata
`offered_qos_profiles` and `topic_type_hash` as rosbag2 writes them). Payloads are the CDR bytes
exactly as they went over DDS (a raw subscription's bytes, or rclpy's serialize_message), never
re-encoded, so what a reader sees is what the robot saw.

Crash safety: messages are grouped in chunks (compressed, CRC-checked). A chunk is written and
the file flushed to the OS as soon as it reaches `chunk_size` bytes, and at the latest
`flush_period_s` after its first message. A process killed with SIGKILL therefore loses at most
the chunk in progress; everything before it is complete records on disk that
uam_ros.recording.reader reads back. Only close() writes the summary and footer (the index
Foxglove and `ros2 bag` use to seek); see reader.repair() for a file that never got one.

Not thread-safe: one thread (uam_ros.recording.recorder's writer thread) owns it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer

from uam_ros.recording.msgdefs import ros2msg_definition, type_hash

COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
DEFAULT_CHUNK_SIZE = 256 * 1024  # a few camera frames: little is lost on a crash, compression still works
DEFAULT_FLUSH_PERIOD_S = 1.0
LIBRARY = "uam_ros"


class McapRecordingWriter:
    def __init__(self, path: str | Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE, compression: str = "zstd",
                 flush_period_s: float = DEFAULT_FLUSH_PERIOD_S) -> None:
        if compression not in COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(COMPRESSION)}, got {compression!r}")
        if chunk_size <= 0 or flush_period_s <= 0:
            raise ValueError("chunk_size and flush_period_s must be > 0")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: BinaryIO = open(self.path, "wb")
        self._writer = Writer(self._stream, chunk_size=chunk_size, compression=COMPRESSION[compression])
        self._writer.start(profile="ros2", library=LIBRARY)
        self._stream.flush()  # a file that exists is at least a valid MCAP header
        self.flush_period_s = flush_period_s
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._position = self._stream.tell()
        self._unflushed_since: float | None = None
        self.messages = 0
        self.closed = False

    def add_channel(self, topic: str, type_name: str, qos_yaml: str = "", *, definition: str | None = None,
                    channel_metadata: dict[str, str] | None = None) -> int:
        """Register topic (once) with the schema of type_name ('sensor_msgs/msg/Image').

        definition / channel_metadata default to the installed .msg text and to the QoS and type
        hash rosbag2 stores; reader.repair() passes the ones of the file it copies."""
        if topic in self._channels:
            return self._channels[topic]
        schema_id = self._schemas.get(type_name)
        if schema_id is None:
            text = ros2msg_definition(type_name) if definition is None else definition
            schema_id = self._writer.register_schema(type_name, SchemaEncoding.ROS2, text.encode("utf-8"))
            self._schemas[type_name] = schema_id
        if channel_metadata is None:
            channel_metadata = {}
            if qos_yaml:
                channel_metadata["offered_qos_profiles"] = qos_yaml
            digest = type_hash(type_name)
            if digest:
                channel_metadata["topic_type_hash"] = digest
        channel_id = self._writer.register_channel(topic, MessageEncoding.CDR, schema_id, dict(channel_metadata))
        self._channels[topic] = channel_id
        return channel_id

    def add_metadata(self, name: str, values: dict[str, str]) -> None:
        """A metadata record, written at once (outside any chunk, after the messages before it), so
        it survives a crash."""
        self.flush()
        self._writer.add_metadata(name, {str(k): str(v) for k, v in values.items()})
        self.flush()

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None,
              sequence: int = 0) -> None:
        """Append one CDR-encoded message on a registered topic."""
        self._writer.add_message(self._channels[topic], int(log_time_ns), bytes(data),
                                 int(log_time_ns if publish_time_ns is None else publish_time_ns),
                                 int(sequence) & 0xFFFFFFFF)
        self.messages += 1
        if self._unflushed_since is None:
            self._unflushed_since = time.monotonic()
        self._after_write()

    def _after_write(self) -> None:
        position = self._stream.tell()
        if position != self._position:
            # The writer emitted records (a full chunk, a metadata record): hand them to the OS now
            # rather than when Python's buffer happens to fill, so SIGKILL cannot lose them.
            self._stream.flush()
            self._position = position
            self._unflushed_since = None

    def maybe_flush(self) -> None:
        """Close the chunk in progress when it has been open for flush_period_s (low-rate topics
        would otherwise sit in memory until the chunk fills)."""
        if self._unflushed_since is not None and time.monotonic() - self._unflushed_since >= self.flush_period_s:
            self.flush()

    def flush(self) -> None:
        self._writer.flush()
        self._position = self._stream.tell()
        self._unflushed_since = None

    def close(self) -> None:
        """Write the last chunk, the summary (indexes, statistics) and the footer. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.finish()
        finally:
            self._stream.close()
