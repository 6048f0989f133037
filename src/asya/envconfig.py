"""The one settings layer of the non-runtime processes.

Each component reads its settings once at start into a frozen dataclass (``from_env``); the
helpers here turn a bad or missing value into a ``ConfigError`` that names the variable, so the
process can exit with a message an operator can act on. Everything a setting is parsed with
lives here too: the shared defaults, the transport URL's fallback order, booleans and Go
durations (both ways). The value grammars come from the runtime module, which has to stay one
standard-library-only file, so that every process agrees on them; other modules import them
from here, never from ``asya.runtime``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar, overload

from asya.errors import ConfigError
from asya.runtime import DEFAULT_SOCKET_PATH, env_value, parse_bool, parse_duration

__all__ = [
    "DEFAULT_SOCKET_PATH",
    "DEFAULT_TRANSPORT_URL",
    "Env",
    "TransportURL",
    "format_duration",
    "parse_bool",
    "parse_duration",
    "to_seconds",
]

#: The broker when neither ``ASYA_TRANSPORT_URL`` nor ``ASYA_RABBITMQ_URL`` is set.
DEFAULT_TRANSPORT_URL = "amqp://guest:guest@localhost:5672/"
#: Variables naming the broker, first set wins.
TRANSPORT_VARIABLES = ("ASYA_TRANSPORT_URL", "ASYA_RABBITMQ_URL")

T = TypeVar("T")


class TransportURL(NamedTuple):
    """A broker URL and the variable to blame if it is wrong."""

    url: str
    variable: str


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

    @overload
    def transport_url(self, default: str = DEFAULT_TRANSPORT_URL) -> TransportURL: ...

    @overload
    def transport_url(self, default: None) -> TransportURL | None: ...

    def transport_url(self, default: str | None = DEFAULT_TRANSPORT_URL) -> TransportURL | None:
        """``ASYA_TRANSPORT_URL``, else ``ASYA_RABBITMQ_URL``, else ``default`` (blamed on
        ``ASYA_RABBITMQ_URL``, the variable that documents it); ``None`` if all are unset."""
        for variable in TRANSPORT_VARIABLES:
            url = self.raw(variable)
            if url is not None:
                return TransportURL(url, variable)
        return None if default is None else TransportURL(default, TRANSPORT_VARIABLES[-1])


def to_seconds(value: object) -> float:
    """A duration given as a number of seconds or a string in :func:`parse_duration`'s grammar
    (config files and URL options allow both); ValueError if it is neither or negative."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"invalid duration {value!r}: must be a non-negative number")
        return seconds
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: use seconds or Go syntax like 5s, 1m30s")


def format_duration(seconds: float) -> str:
    """A duration as Go prints it (``5s``, ``300ms``, ``1m30s``, ``5m0s``), as in the original's
    "Runtime timeout exceeded (5s)"; :func:`parse_duration` reads it back."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{_trim(millis)}ms" if millis >= 1 else f"{_trim(seconds * 1e6)}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{_trim(secs)}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")
