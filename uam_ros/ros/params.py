"""ROS parameters generated from a schema dataclass: declared once, typed, described, range-checked."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from uam_ros.config_errors import ConfigError
from uam_ros.schema import FieldProblem, check_bounds

T = TypeVar("T")

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


def descriptor_for(field: dataclasses.Field, hint: Any) -> ParameterDescriptor:
    meta = field.metadata
    description = meta.get("description", "")
    if meta.get("choices"):
        description += f" (one of {list(meta['choices'])})"
    descriptor = ParameterDescriptor(name=field.name, type=_TYPES[hint], description=description)
    low = meta.get("ge", meta.get("gt"))
    high = meta.get("le", meta.get("lt"))
    if hint is float and (low is not None or high is not None):
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(low if low is not None else -1e300),
                               to_value=float(high if high is not None else 1e300), step=0.0)
        ]
    elif hint is int and (low is not None or high is not None):
        descriptor.integer_range = [
            IntegerRange(from_value=int(low if low is not None else -(2**62)),
                         to_value=int(high if high is not None else 2**62), step=0)
        ]
    return descriptor


def declare(node, cls: type[T]) -> T:
    """Declare every field of cls on node and return the validated values as cls."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        parameter = node.declare_parameter(field.name, field.default, descriptor_for(field, hint))
        value = parameter.value
        if hint is float and isinstance(value, int):
            value = float(value)
        try:
            check_bounds(field.name, value, field.metadata)
        except FieldProblem as exc:
            raise ConfigError(f"node '{node.get_name()}' parameters", exc.field, exc.problem) from None
        values[field.name] = value
    return cls(**values)
