"""One error type for every config file, so users always learn which file and which field is wrong."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is missing or invalid; the message names the source file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: field '{field}': {problem}")
