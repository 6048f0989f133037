"""Loading and validating asya.yaml (docs/reference/asya-yaml.md).

A mistake in asya.yaml should be fixed in one go, so every problem in the file is collected
and reported together, each naming the file, the line and the field (``actors[1].scaling.max``)
— never a traceback. Relative paths and SQLite URLs are resolved against the file's folder, so
``asya up -f path/to/asya.yaml`` behaves the same from any working directory.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from asya.envconfig import to_seconds
from asya.up.model import (
    DATABASE_SCHEMES,
    DEAD_LETTER,
    DEFAULT_DATABASE,
    DEFAULT_EXCHANGE,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TRANSPORT,
    ERROR_END,
    HAPPY_END,
    TRANSPORT_SCHEMES,
    ActorConfig,
    GatewayConfig,
    MeshConfig,
    MeshConfigError,
    Problem,
    ScalingConfig,
    absolute_sqlite_url,
    check_url,
)

__all__ = [
    "ActorConfig",
    "GatewayConfig",
    "MeshConfig",
    "MeshConfigError",
    "Problem",
    "ScalingConfig",
    "load_config",
    "parse_config",
]

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_HANDLER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_TOP_KEYS = frozenset({"transport", "database", "exchange", "gateway", "crew", "env", "actors"})
_GATEWAY_KEYS = frozenset({"port", "host", "tools"})
_ACTOR_KEYS = frozenset(
    {"name", "handler", "mode", "timeout", "replicas", "scaling", "env", "image"}
)
_SCALING_KEYS = frozenset({"min", "max", "queue_length", "polling_interval", "cooldown"})
_MODES = {"payload": "payload", "message": "message", "envelope": "message"}

Path_ = tuple[str | int, ...]


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> MeshConfig:
    """Read and validate ``path``; raises MeshConfigError listing every problem."""
    file = Path(path).expanduser().resolve()
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MeshConfigError(name, [Problem("", "file not found")]) from None
    except OSError as exc:
        raise MeshConfigError(name, [Problem("", f"cannot be read ({exc.strerror})")]) from None
    return parse_config(text, file, name, os.environ if environ is None else environ)


def parse_config(
    text: str, file: Path, name: str, environ: Mapping[str, str] | None = None
) -> MeshConfig:
    """Validate the YAML ``text`` of ``file`` (``name`` is how errors refer to it)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise MeshConfigError(name, [Problem("", f"not valid YAML: {reason}", line)]) from None
    validator = _Validator(file.parent, _line_index(node), environ or {})
    config = validator.mesh(data, file)
    if validator.problems:
        raise MeshConfigError(name, validator.problems)
    assert config is not None
    return config


def _line_index(node: yaml.Node | None) -> dict[Path_, int]:
    """Map each key/item path of the document to its 1-based line number."""
    index: dict[Path_, int] = {}

    def walk(current: yaml.Node, path: Path_) -> None:
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                child = (*path, str(key_node.value))
                index[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(current, yaml.SequenceNode):
            for position, item in enumerate(current.value):
                index[(*path, position)] = item.start_mark.line + 1
                walk(item, (*path, position))

    if node is not None:
        index[()] = node.start_mark.line + 1
        walk(node, ())
    return index


def _field_name(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Validator:
    """Checks the parsed document piece by piece, collecting problems instead of stopping."""

    def __init__(self, folder: Path, lines: dict[Path_, int], environ: Mapping[str, str]) -> None:
        self.folder = folder
        self.lines = lines
        self.environ = environ
        self.problems: list[Problem] = []
        self.reserved = frozenset({HAPPY_END, ERROR_END, DEAD_LETTER})

    def problem(self, path: Path_, message: str) -> None:
        line = None
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                break
        self.problems.append(Problem(_field_name(path), message, line))

    def mapping(self, value: Any, path: Path_, allowed: frozenset[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.problem((*path, str(key)), f"unknown key (expected one of: {hint})")
        return value

    def string(self, value: Any, path: Path_) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, got {_kind(value)}")
            return None
        return value.strip()

    def integer(self, value: Any, path: Path_, minimum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be an integer, got {_kind(value)}")
            return None
        if value < minimum:
            self.problem(path, f"must be at least {minimum}, got {value}")
            return None
        return int(value)

    def duration(self, value: Any, path: Path_, *, positive: bool) -> float | None:
        try:
            seconds = to_seconds(value)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            self.problem(
                path, f"invalid duration {value!r}: use seconds or Go syntax like 5s, 1m30s"
            )
            return None
        if positive and seconds == 0:
            self.problem(path, "must be greater than zero")
            return None
        return seconds

    def env(self, value: Any, path: Path_) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of NAME: value, got {_kind(value)}")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                self.problem((*path, str(key)), "is not a valid environment variable name")
            elif isinstance(item, dict | list):
                self.problem((*path, key), "must be a string, number or boolean")
            else:
                result[key] = _env_text(item)
        return result

    def mesh(self, data: Any, file: Path) -> MeshConfig | None:
        if data is None:
            data = {}
        top = self.mapping(data, (), _TOP_KEYS)
        if top is None:
            return None
        transport = self.url(top, "transport", DEFAULT_TRANSPORT, TRANSPORT_SCHEMES)
        database = self.url(top, "database", DEFAULT_DATABASE, DATABASE_SCHEMES)
        default_exchange = self.environ.get("ASYA_RABBITMQ_EXCHANGE") or DEFAULT_EXCHANGE
        exchange = self.string(top.get("exchange", default_exchange), ("exchange",))
        crew = top.get("crew", True)
        if not isinstance(crew, bool):
            self.problem(("crew",), f"must be true or false, got {_kind(crew)}")
            crew = True
        gateway = None if top.get("gateway") is None else self.gateway(top["gateway"])
        env = self.env(top.get("env"), ("env",))
        # The crew's queues follow the sidecar's ASYA_STEP_* settings (file env, then shell).
        merged = {**self.environ, **env}
        happy_end = merged.get("ASYA_STEP_HAPPY_END") or HAPPY_END
        error_end = merged.get("ASYA_STEP_ERROR_END") or ERROR_END
        self.reserved = frozenset({happy_end, error_end, DEAD_LETTER})
        actors = self.actors(top.get("actors"), crew)
        return MeshConfig(
            path=file,
            transport=transport,
            database=database,
            exchange=exchange or DEFAULT_EXCHANGE,
            gateway=gateway,
            crew=crew,
            actors=tuple(actors),
            env=env,
            happy_end=happy_end,
            error_end=error_end,
        )

    def url(self, top: dict[str, Any], key: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.string(top.get(key, default), (key,))
        if value is None:
            return default
        before = len(self.problems)
        check_url(value, schemes, key, self.lines.get((key,)), self.problems)
        return value if len(self.problems) > before else absolute_sqlite_url(value, self.folder)

    def gateway(self, value: Any) -> GatewayConfig | None:
        path: Path_ = ("gateway",)
        section = self.mapping(value, path, _GATEWAY_KEYS)
        if section is None:
            return None
        port = self.integer(section.get("port", DEFAULT_GATEWAY_PORT), (*path, "port"), 1)
        if port is not None and port > 65535:
            self.problem((*path, "port"), f"must be at most 65535, got {port}")
        host = self.string(section.get("host", "127.0.0.1"), (*path, "host"))
        tools_path: Path | None = None
        if "tools" not in section:
            self.problem(path, "missing key 'tools' (the gateway's tools file, e.g. routes.yaml)")
        else:
            tools = self.string(section["tools"], (*path, "tools"))
            if tools is not None:
                tools_path = (self.folder / tools).resolve()
                if not tools_path.is_file():
                    self.problem((*path, "tools"), f"file not found: {tools_path}")
        if port is None or host is None or tools_path is None:
            return None
        return GatewayConfig(port=port, tools=tools_path, host=host)

    def actors(self, value: Any, crew: bool) -> list[ActorConfig]:
        if value is None or value == []:
            self.problem(("actors",), "at least one actor is required")
            return []
        if not isinstance(value, list):
            self.problem(("actors",), f"must be a list of actors, got {_kind(value)}")
            return []
        actors: list[ActorConfig] = []
        seen: dict[str, int] = {}
        for position, item in enumerate(value):
            actor = self.actor(item, ("actors", position), crew)
            if actor is None:
                continue
            if actor.name in seen:
                self.problem(
                    ("actors", position, "name"),
                    f"duplicate actor name {actor.name!r} (also actors[{seen[actor.name]}])",
                )
                continue
            seen[actor.name] = position
            actors.append(actor)
        return actors

    def actor(self, value: Any, path: Path_, crew: bool) -> ActorConfig | None:
        section = self.mapping(value, path, _ACTOR_KEYS)
        if section is None:
            return None
        before = len(self.problems)
        name = handler = None
        if "name" not in section:
            self.problem(path, "missing key 'name' (the actor's queue name)")
        else:
            name = self.string(section["name"], (*path, "name"))
            if name is not None and not _QUEUE_NAME.match(name):
                self.problem(
                    (*path, "name"), f"{name!r} is not a valid queue name (letters, digits, . _ -)"
                )
            elif name in self.reserved:
                self.problem((*path, "name"), f"{name!r} is reserved for the crew")
        if "handler" not in section:
            self.problem(path, "missing key 'handler' (module.function or module.Class.method)")
        else:
            handler = self.string(section["handler"], (*path, "handler"))
            if handler is not None and not _HANDLER.match(handler):
                self.problem(
                    (*path, "handler"),
                    f"{handler!r} must be module.function or module.Class.method",
                )
        mode = section.get("mode", "payload")
        if mode not in _MODES:
            self.problem((*path, "mode"), f"must be payload or message, got {mode!r}")
        timeout = self.duration(
            section.get("timeout", DEFAULT_TIMEOUT), (*path, "timeout"), positive=True
        )
        replicas = 1
        scaling = None
        if "scaling" in section and "replicas" in section:
            self.problem(
                (*path, "replicas"),
                "set either replicas (a fixed count) or scaling (min/max by queue depth), not both",
            )
        elif "scaling" in section:
            scaling = self.scaling(section["scaling"], (*path, "scaling"))
        elif "replicas" in section:
            replicas = self.integer(section["replicas"], (*path, "replicas"), 0) or 0
        env = self.env(section.get("env"), (*path, "env"))
        # the container image on Kubernetes (asya k8s render/export); asya up ignores it
        image = self.string(section["image"], (*path, "image")) if "image" in section else None
        if len(self.problems) > before or name is None or handler is None:
            return None
        return ActorConfig(
            name=name,
            handler=handler,
            mode=_MODES[mode],
            timeout=timeout or DEFAULT_TIMEOUT,
            replicas=replicas,
            scaling=scaling,
            env=env,
            image=image,
        )

    def scaling(self, value: Any, path: Path_) -> ScalingConfig | None:
        section = self.mapping(value, path, _SCALING_KEYS)
        if section is None:
            return None
        before = len(self.problems)
        for key in ("min", "max", "queue_length"):
            if key not in section:
                self.problem(path, f"missing key {key!r}")
        low = self.integer(section.get("min", 0), (*path, "min"), 0)
        high = self.integer(section.get("max", 1), (*path, "max"), 1)
        per = self.integer(section.get("queue_length", 1), (*path, "queue_length"), 1)
        interval = self.duration(
            section.get("polling_interval", 1.0), (*path, "polling_interval"), positive=True
        )
        cooldown = self.duration(section.get("cooldown", 10.0), (*path, "cooldown"), positive=False)
        if low is not None and high is not None and high < low:
            self.problem((*path, "max"), f"must be at least min ({low}), got {high}")
        if len(self.problems) > before:
            return None
        assert low is not None and high is not None and per is not None
        assert interval is not None and cooldown is not None
        return ScalingConfig(low, high, per, interval, cooldown)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "a mapping"})
    text = names.get(type(value), type(value).__name__)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return f"{text} ({value!r})"
    return text


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
