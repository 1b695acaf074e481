"""Read a recording back, including one that was cut short.

mcap's make_reader() picks its SeekingReader for files, which starts from the footer and summary
at the end of the file; a recording whose process was killed has neither, and that reader fails
before yielding anything. A recording is written front to back, though, so this module reads it
the same way (mcap's StreamReader, CRCs checked): schemas, channels, metadata and every message of
every complete chunk, stopping at the first truncated record. `complete` says whether the footer
was reached, `problem` why reading stopped when it was not.

repair() rewrites such a file as a complete one (summary, indexes, footer) for tools that want
one; Foxglove and rosbag2's MCAP plugin can also fall back to scanning an unindexed file.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.records import Channel, DataEnd, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from uam_ros.recording.msgdefs import split_type_name


@dataclass(frozen=True)
class RecordedMessage:
    topic: str
    type_name: str  # 'sensor_msgs/msg/Image'
    data: bytes  # CDR, as it went over DDS
    log_time_ns: int  # when the recorder got it (the recording node's clock)
    publish_time_ns: int
    sequence: int


@dataclass
class Recording:
    path: Path
    channels: dict[str, Channel] = field(default_factory=dict)  # topic -> channel
    schemas: dict[int, Schema] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> values (the last record wins)
    messages: list[RecordedMessage] = field(default_factory=list)  # file order
    complete: bool = False  # the footer was reached (closed cleanly)
    problem: str = ""  # why reading stopped early

    def on(self, topic: str | None) -> list[RecordedMessage]:
        return [m for m in self.messages if m.topic == topic] if topic else []

    def counts(self) -> dict[str, int]:
        return dict(Counter(m.topic for m in self.messages))

    def type_name(self, topic: str) -> str:
        channel = self.channels[topic]
        return self.schemas[channel.schema_id].name

    def role_topic(self, role: str) -> str | None:
        """The topic recorded for a role (image, joint_states, command, chunk, ...), from the file's
        uam_ros metadata record."""
        return self.metadata.get("uam_ros", {}).get(f"topic.{role}")


def message_class(type_name: str) -> type:
    """The Python class of 'sensor_msgs/msg/Image' (the generated interface package must be installed)."""
    package, namespace, name = split_type_name(type_name)
    return getattr(importlib.import_module(f"{package}.{namespace}"), name)


def decode(message: RecordedMessage) -> Any:
    """The ROS message from its CDR bytes (rclpy's deserialize_message: the same code path as a
    subscription)."""
    from rclpy.serialization import deserialize_message

    return deserialize_message(message.data, message_class(message.type_name))


def iter_records(path: str | Path) -> Iterator[Any]:
    """mcap records in file order; ends quietly at a truncated or corrupt tail, raising
    _Truncated(problem) as the generator's last act so callers can tell."""
    with open(path, "rb") as stream:
        records = StreamReader(stream, validate_crcs=True).records
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - EndOfFile, bad CRC, short zstd frame: the cut
                raise _Truncated(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
            yield record


class _Truncated(Exception):
    pass


def read_recording(path: str | Path, topics: Iterable[str] | None = None) -> Recording:
    """Everything readable in the file (only messages on `topics` when given)."""
    wanted = set(topics) if topics is not None else None
    recording = Recording(Path(path))
    channels_by_id: dict[int, Channel] = {}
    in_data = True
    try:
        for record in iter_records(path):
            if isinstance(record, Schema):
                recording.schemas[record.id] = record
            elif isinstance(record, Channel):
                channels_by_id[record.id] = record
                recording.channels[record.topic] = record
            elif isinstance(record, Metadata):
                recording.metadata[record.name] = dict(record.metadata)
            elif isinstance(record, Message) and in_data:
                channel = channels_by_id.get(record.channel_id)
                if channel is None or (wanted is not None and channel.topic not in wanted):
                    continue
                schema = recording.schemas.get(channel.schema_id)
                recording.messages.append(RecordedMessage(
                    channel.topic, schema.name if schema else "", bytes(record.data), record.log_time,
                    record.publish_time, record.sequence))
            elif isinstance(record, DataEnd):
                in_data = False
            elif isinstance(record, Footer):
                recording.complete = True
    except _Truncated as exc:
        recording.problem = str(exc)
    if not recording.complete and not recording.problem:
        recording.problem = "no footer (the recording was not closed)"
    return recording


def repair(source: str | Path, target: str | Path) -> Recording:
    """Rewrite what is readable of source as a complete, indexed MCAP at target."""
    from uam_ros.recording.writer import McapRecordingWriter

    recording = read_recording(source)
    writer = McapRecordingWriter(target)
    try:
        for name, values in recording.metadata.items():
            writer.add_metadata(name, values)
        for topic, channel in recording.channels.items():
            schema = recording.schemas[channel.schema_id]
            writer.add_channel(topic, schema.name, definition=schema.data.decode("utf-8"),
                               channel_metadata=dict(channel.metadata))
        for message in recording.messages:
            writer.write(message.topic, message.data, message.log_time_ns, message.publish_time_ns, message.sequence)
    finally:
        writer.close()
    return recording
