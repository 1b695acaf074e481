"""Declare a config field once (type, default, description, bounds) and validate YAML against it.

Modelled on generate_parameter_library's YAML in ros2_controllers: every field carries its own
description and validation, and the ROS parameter descriptors of a node are generated from the
same dataclass (see uam_ros.ros.params), so there is no second list to drift.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from uam_ros.config_errors import ConfigError

T = TypeVar("T")


class FieldProblem(ValueError):
    """Raised by a dataclass's ``check()`` for cross-field problems; the loader adds the file name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def spec(
    default: Any = dataclasses.MISSING,
    description: str = "",
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: Sequence[Any] | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with a description and bounds (gt/ge/lt/le, choices)."""
    metadata = {"description": description, "gt": gt, "ge": ge, "lt": lt, "le": le, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    """Raise FieldProblem when value breaks the field's declared bounds."""
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise FieldProblem(name, f"{value!r} is not one of {list(choices)}")
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for number in numbers:
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            continue
        if isinstance(number, float) and not math.isfinite(number):
            raise FieldProblem(name, f"{number!r} is not finite")
        for key, ok, text in (
            ("gt", lambda v, b: v > b, ">"),
            ("ge", lambda v, b: v >= b, ">="),
            ("lt", lambda v, b: v < b, "<"),
            ("le", lambda v, b: v <= b, "<="),
        ):
            bound = metadata.get(key)
            if bound is not None and not ok(number, bound):
                raise FieldProblem(name, f"{number!r} must be {text} {bound}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except FieldProblem as exc:
                problems.append(exc.problem)
        raise FieldProblem(name, "; ".join(problems))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise FieldProblem(name, f"expected a mapping, got {type(value).__name__}")
        return _build(hint, value, name)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise FieldProblem(name, f"expected a list, got {type(value).__name__}")
        item_hint = args[0] if args else Any
        items = [_coerce(f"{name}[{i}]", item, item_hint) for i, item in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise FieldProblem(name, f"expected a mapping, got {type(value).__name__}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldProblem(name, f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldProblem(name, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise FieldProblem(name, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise FieldProblem(name, f"expected a string, got {value!r}")
        return value
    return value


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise FieldProblem(f"{where}{unknown[0]}", f"unknown field (known: {sorted(fields)})")
    kwargs = {}
    for name, fld in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise FieldProblem(path, "required field is missing")
            continue
        value = _coerce(path, data[name], hints[name])
        check_bounds(path, value, fld.metadata)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except FieldProblem as exc:
            field = f"{prefix}.{exc.field}" if prefix else exc.field
            raise FieldProblem(field, exc.problem) from None
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>") -> T:
    """Build and validate cls from a mapping; errors are ConfigError naming source and field."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, "<root>", f"expected a mapping, got {type(data).__name__}")
    try:
        return _build(cls, data, "")
    except FieldProblem as exc:
        raise ConfigError(source, exc.field, exc.problem) from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), "<file>", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "<file>", f"invalid YAML: {exc}") from None
    return from_dict(cls, data if data is not None else {}, str(path))


def to_dict(obj: Any) -> dict[str, Any]:
    """The inverse of from_dict (tuples become lists so the YAML stays plain)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(obj)
