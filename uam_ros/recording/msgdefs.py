"""ROS 2 message definitions for MCAP schemas, read from the installed interface packages.

A recording must be readable without this package and without the exact ROS install it was
made with: Foxglove and other tools build a CDR decoder at run time from the schema text stored in
the file. That text is the type's `.msg` file followed by every type it uses, recursively, in the
`ros2msg` format rosbag2 writes (docs/message_definition_encoding.md in ros2/rosbag2):

    <root .msg text>
    ================================================================================
    MSG: std_msgs/Header
    <Header.msg text>
    ...

The `.msg` files come from `<prefix>/share/<package>/msg/` of the installed wheels (or a ROS
install), the same place rosbag2's LocalMessageDefinitionSource reads them, so nothing is typed in
by hand and the text always matches the types the node serialises. Needs no rclpy.
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

SEPARATOR = "=" * 80

# The field type at the start of a definition line: "pkg/Type" in "pkg/Type[] name", "Type" in
# "Type name". Comment lines start with '#' and never match. Same pattern as rosbag2's.
_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")

PRIMITIVE_TYPES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string", "wstring",
})


class MessageDefinitionError(LookupError):
    """A message type whose definition file cannot be found or whose name is malformed."""


def type_name_of(msg_type: type) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image (the name rosbag2 and Foxglove use)."""
    module = msg_type.__module__.split(".")
    if len(module) < 2 or module[1] not in ("msg", "srv", "action"):
        raise MessageDefinitionError(f"{msg_type!r} is not a generated ROS 2 interface class")
    return f"{module[0]}/{module[1]}/{msg_type.__name__}"


def split_type_name(type_name: str) -> tuple[str, str, str]:
    """'pkg/Type' or 'pkg/msg/Type' -> ('pkg', 'msg', 'Type')."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", p) for p in parts):
        raise MessageDefinitionError(f"not a ROS 2 type name: {type_name!r} (expected pkg/Type or pkg/msg/Type)")
    return parts[0], parts[1], parts[2]


def _prefixes() -> list[Path]:
    """Install prefixes to search: AMENT_PREFIX_PATH (a ROS install, colcon workspaces), then this
    interpreter's prefix (pip wheels put share/ under the venv)."""
    entries = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    entries.append(sys.prefix)
    seen: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path not in seen:
            seen.append(path)
    return seen


def interface_file(type_name: str, suffix: str = ".msg") -> Path:
    package, namespace, name = split_type_name(type_name)
    tried = []
    for prefix in _prefixes():
        path = prefix / "share" / package / namespace / f"{name}{suffix}"
        if path.is_file():
            return path
        tried.append(str(path))
    raise MessageDefinitionError(f"no definition for {type_name}: none of {tried} exists")


@lru_cache(maxsize=None)
def _msg_text(type_name: str) -> str:
    return interface_file(type_name).read_text(encoding="utf-8")


def dependencies(text: str, package: str) -> list[str]:
    """The non-primitive field types of one .msg text as 'pkg/Type', sorted (rosbag2's order).
    A type without a package ('JointTrajectoryPoint') lives in the same package as the message."""
    found = set()
    for match in _FIELD_TYPE.finditer(text):
        field_type = match.group(1)
        if field_type in PRIMITIVE_TYPES:
            continue
        found.add(field_type if "/" in field_type else f"{package}/{field_type}")
    return sorted(found)


def ros2msg_definition(type_name: str) -> str:
    """The complete ros2msg schema text of type_name: its .msg text, then each dependency once,
    depth first, each after the 80 '=' line and 'MSG: pkg/Type' (as rosbag2 writes it)."""
    seen: set[str] = set()

    def append(name: str, depth: int) -> str:
        if depth > 32:
            raise MessageDefinitionError(f"definition of {type_name} nests deeper than 32 levels")
        package, _, _ = split_type_name(name)
        text = _msg_text(name)
        result = text
        for dependency in dependencies(text, package):
            if dependency in seen:
                continue
            seen.add(dependency)
            result += f"\n{SEPARATOR}\nMSG: {dependency}\n" + append(dependency, depth + 1)
        return result

    return append(type_name, 0)


@lru_cache(maxsize=None)
def type_hash(type_name: str) -> str:
    """The type's RIHS01 hash from its generated .json type description ('' when not shipped:
    distributions before Iron have none). rosbag2 stores it as channel metadata topic_type_hash."""
    package, namespace, name = split_type_name(type_name)
    full = f"{package}/{namespace}/{name}"
    try:
        described = json.loads(interface_file(type_name, ".json").read_text(encoding="utf-8"))
    except (MessageDefinitionError, ValueError):
        return ""
    for entry in described.get("type_hashes", []):
        if entry.get("type_name") == full:
            return str(entry.get("hash_string", ""))
    return ""
