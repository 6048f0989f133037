"""Reading settings from the environment for the non-runtime processes.

Each component reads its settings once at start into a frozen dataclass (``from_env``); the
helpers here turn a bad or missing value into a ``ConfigError`` that names the variable, so the
process can exit with a message an operator can act on. The value grammars (booleans, Go
durations, octal modes) come from the runtime module so that every process agrees on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from asya.errors import ConfigError
from asya.runtime import env_value, parse_bool, parse_duration

T = TypeVar("T")


class Env:
    """Typed access to an environment mapping; empty values count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        return env_value(self._environ, name)

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, "is required but not set")
        return value

    def get_str(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def get_optional_str(self, name: str) -> str | None:
        return self.raw(name)

    def _parse(self, name: str, default: T, parser: Callable[[str], T], kind: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parser(value)
        except ValueError as exc:
            raise ConfigError(name, f"invalid {kind} {value!r} ({exc})") from exc

    def get_bool(self, name: str, default: bool) -> bool:
        return self._parse(name, default, parse_bool, "boolean")

    def get_duration(self, name: str, default: float) -> float:
        return self._parse(name, default, parse_duration, "duration")

    def get_int(self, name: str, default: int, *, minimum: int | None = None) -> int:
        value = self._parse(name, default, int, "integer")
        if minimum is not None and value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def get_float(self, name: str, default: float) -> float:
        return self._parse(name, default, float, "number")
