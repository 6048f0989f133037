"""Tool arguments from the command line: ``key=value`` pairs checked against the tool's schema.

A value that parses as JSON is JSON (``value=10`` is the integer 10, ``tags=["a"]`` a list);
anything else is a string (``name=Ada``). Checking locally against ``GET /tools`` lets the
client say exactly what is wrong — and list the tool's parameters — before any job exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asya.errors import AsyaError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


class UsageError(AsyaError):
    """The command line asks for something the gateway would refuse (exit 2)."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str | None = None
    description: str = ""
    required: bool = False
    default: Any = None
    has_default: bool = False
    options: tuple[Any, ...] = ()

    def describe(self) -> str:
        """``value: integer (required) — the input``, for tables and usage errors."""
        text = f"{self.name}: {self.type or 'any'}"
        if self.options:
            text += " one of " + "|".join(json.dumps(option) for option in self.options)
        if self.required:
            text += " (required)"
        elif self.has_default:
            text += f" (default {json.dumps(self.default)})"
        if self.description:
            text += f" — {self.description}"
        return text


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str = ""
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    def usage(self) -> str:
        lines = [f"parameters of {self.name}:"]
        lines += [f"  {p.describe()}" for p in self.parameters] or ["  (none)"]
        return "\n".join(lines)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_value(text: str) -> Any:
    """JSON when ``text`` parses as JSON, otherwise the text itself.

    Python's ``NaN``/``Infinity`` extensions are not JSON (the request could not carry them),
    so ``name=NaN`` stays the string "NaN".
    """
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def parse_assignments(
    pairs: Iterable[str], base: Mapping[str, Any] | None = None, tool: ToolInfo | None = None
) -> dict[str, Any]:
    """``["value=10", "name=Ada"]`` → ``{"value": 10, "name": "Ada"}``, over ``base``.

    A parameter the tool declares as a string keeps the text as typed (``zip=02134``).
    """
    strings = {p.name for p in tool.parameters if p.type == "string"} if tool else set()
    arguments = dict(base or {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        arguments[key] = raw if key in strings else parse_value(raw)
    return arguments


def parse_json_object(text: str) -> dict[str, Any]:
    """The ``--json`` option: a JSON object of arguments."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError as exc:
        raise UsageError(f"--json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--json must be a JSON object, like '{\"value\": 10}'")
    return value


def tool_from_json(data: Mapping[str, Any]) -> ToolInfo:
    """Read a tool as ``GET /tools`` lists it (``inputSchema`` JSON Schema or ``parameters``)."""
    schema = data.get("inputSchema") or data.get("input_schema")
    parameters: list[Parameter] = []
    if isinstance(schema, Mapping):
        required = set(schema.get("required") or ())
        for name, spec in (schema.get("properties") or {}).items():
            parameters.append(_parameter(name, spec, name in required))
    elif isinstance(data.get("parameters"), Mapping):
        for name, spec in data["parameters"].items():
            is_required = bool(isinstance(spec, Mapping) and spec.get("required"))
            parameters.append(_parameter(name, spec, is_required))
    return ToolInfo(
        str(data.get("name", "")), str(data.get("description") or ""), tuple(parameters)
    )


def _parameter(name: str, spec: Any, required: bool) -> Parameter:
    spec = spec if isinstance(spec, Mapping) else {}
    kind = spec.get("type")
    options = spec.get("enum") or spec.get("options") or ()
    return Parameter(
        name=name,
        type=kind if isinstance(kind, str) else None,
        description=str(spec.get("description") or ""),
        required=required,
        default=spec.get("default"),
        has_default="default" in spec,
        options=tuple(options),
    )


def check_arguments(tool: ToolInfo, arguments: Mapping[str, Any]) -> None:
    """Raise UsageError (listing the parameters) for unknown, missing or mistyped arguments."""
    declared = {p.name: p for p in tool.parameters}
    problems: list[str] = []
    for name in arguments:
        if name not in declared:
            problems.append(f"unknown argument {name!r}")
    for parameter in tool.parameters:
        if parameter.name not in arguments:
            if parameter.required and not parameter.has_default:
                problems.append(f"missing required argument {parameter.name!r}")
            continue
        value = arguments[parameter.name]
        if not _has_type(value, parameter.type):
            problems.append(
                f"argument {parameter.name!r} must be {parameter.type}, got {json.dumps(value)}"
            )
        elif parameter.options and value not in parameter.options:
            allowed = ", ".join(json.dumps(option) for option in parameter.options)
            problems.append(f"argument {parameter.name!r} must be one of {allowed}")
    if problems:
        raise UsageError(f"{tool.name}: " + "; ".join(problems) + "\n" + tool.usage())


def _has_type(value: Any, kind: str | None) -> bool:
    if kind is None or kind not in _JSON_TYPES:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES[kind])
