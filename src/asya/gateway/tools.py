"""The tools file (``ASYA_CONFIG_PATH``): which pipelines the gateway offers, and their inputs.

Each tool's ``parameters`` become a JSON Schema (shown to MCP clients and used to check every
call); its ``route`` is the list of queues a job travels. Mistakes in the file stop the gateway
at start with a message naming the tool, so a typo never surfaces as a failed job later.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from asya.errors import AsyaError

_TYPES = ("string", "number", "integer", "boolean", "array", "object")
_PARAM_KEYS = frozenset(
    {"type", "description", "required", "default", "options", "enum", "items", "properties"}
)


class ToolsConfigError(AsyaError):
    """The tools file cannot be used; the message names the file and the tool."""


class ArgumentsError(AsyaError):
    """A call's arguments do not fit the tool's schema (answered 400 / MCP ``isError``)."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    route: tuple[str, ...]
    timeout: float | None = None
    wait: bool = False
    progress: bool = True
    #: Whether a call becomes an MCP task when the client declared the Tasks extension.
    task: bool = True
    _validator: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "route": list(self.route),
            "timeout": self.timeout,
            "wait": self.wait,
            "progress": self.progress,
        }

    def prepare_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Refuse undeclared arguments, fill defaults, validate; the result is the payload."""
        declared = self.input_schema.get("properties", {})
        unknown = sorted(key for key in arguments if key not in declared)
        if unknown:
            names = ", ".join(sorted(declared)) or "none"
            raise ArgumentsError(
                f"tool '{self.name}' has no argument '{unknown[0]}' (declared: {names})"
            )
        payload: dict[str, Any] = _fill_defaults(self.input_schema, copy.deepcopy(dict(arguments)))
        validator: jsonschema.protocols.Validator = self._validator
        error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            prefix = f"argument '{where}': " if where else ""
            raise ArgumentsError(
                f"invalid arguments for tool '{self.name}': {prefix}{error.message}"
            )
        return payload


@dataclass(frozen=True)
class ToolRegistry:
    tools: dict[str, Tool]

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def __iter__(self) -> Any:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)


def _fill_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill_defaults(sub, value[key])
    return value


def _parameter_schema(tool: str, path: str, spec: Any) -> tuple[dict[str, Any], bool]:
    """One parameter's JSON Schema and whether it is required."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ToolsConfigError(f"tool '{tool}': parameter '{path}' must be a mapping")
    unknown = sorted(set(spec) - _PARAM_KEYS)
    if unknown:
        raise ToolsConfigError(f"tool '{tool}': parameter '{path}' has unknown key '{unknown[0]}'")
    kind = spec.get("type", "string")
    if kind not in _TYPES:
        raise ToolsConfigError(
            f"tool '{tool}': parameter '{path}' has bad type {kind!r} "
            f"(use one of {', '.join(_TYPES)})"
        )
    schema: dict[str, Any] = {"type": kind}
    if spec.get("description") is not None:
        schema["description"] = str(spec["description"])
    options = spec.get("options", spec.get("enum"))
    if options is not None:
        if not isinstance(options, list) or not options:
            raise ToolsConfigError(f"tool '{tool}': parameter '{path}' options must be a list")
        schema["enum"] = list(options)
    if kind == "array" and spec.get("items") is not None:
        schema["items"], _ = _parameter_schema(tool, f"{path}[]", spec["items"])
    if kind == "object":
        schema.update(_object_schema(tool, spec.get("properties") or {}, f"{path}."))
    if "default" in spec:
        schema["default"] = spec["default"]
        try:
            jsonschema.Draft202012Validator(schema).validate(spec["default"])
        except jsonschema.ValidationError as exc:
            raise ToolsConfigError(
                f"tool '{tool}': parameter '{path}' default does not fit: {exc.message}"
            ) from exc
    return schema, bool(spec.get("required", False))


def _object_schema(tool: str, params: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ToolsConfigError(f"tool '{tool}': parameters must be a mapping of name to spec")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in params.items():
        properties[str(name)], is_required = _parameter_schema(tool, f"{prefix}{name}", spec)
        if is_required:
            required.append(str(name))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if properties:
        schema["additionalProperties"] = False
    return schema


def _timeout(tool: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolsConfigError(f"tool '{tool}': timeout must be a number of seconds, got {value!r}")
    if value < 0:
        raise ToolsConfigError(f"tool '{tool}': timeout must not be negative, got {value}")
    return float(value) if value > 0 else None


def _route(tool: str, value: Any, templates: Mapping[str, list[str]]) -> tuple[str, ...]:
    if isinstance(value, str):
        if value not in templates:
            raise ToolsConfigError(f"tool '{tool}': unknown route template '{value}'")
        value = templates[value]
    if not isinstance(value, list) or not value:
        raise ToolsConfigError(f"tool '{tool}': route is empty")
    if not all(isinstance(step, str) and step for step in value):
        raise ToolsConfigError(f"tool '{tool}': route steps must be non-empty queue names")
    return tuple(value)


def parse_tools(document: Any, default_timeout: float | None = None) -> ToolRegistry:
    """Build the registry from a parsed tools file (docs/reference/gateway-api.md#tools-file).

    A tool without ``timeout`` (and no ``defaults.timeout``) gets ``default_timeout`` seconds;
    ``timeout: 0`` in the file means no deadline.
    """
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ToolsConfigError("the tools file must be a mapping with a 'tools' list")
    defaults = document.get("defaults") or {}
    templates = document.get("routes") or {}
    if not isinstance(defaults, Mapping) or not isinstance(templates, Mapping):
        raise ToolsConfigError("'defaults' and 'routes' must be mappings")
    for template, steps in templates.items():
        _route(f"route template {template}", steps, {})
    raw_tools = document.get("tools") or []
    if not isinstance(raw_tools, list):
        raise ToolsConfigError("'tools' must be a list")
    if defaults.get("timeout") is not None:
        default_timeout = _timeout("defaults", defaults["timeout"])
    tools: dict[str, Tool] = {}
    for index, raw in enumerate(raw_tools):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise ToolsConfigError(f"tool #{index + 1}: every tool needs a non-empty 'name'")
        name = raw["name"]
        if name in tools:
            raise ToolsConfigError(f"tool '{name}': duplicate name")
        schema = _object_schema(name, raw.get("parameters") or {})
        timeout = default_timeout
        if raw.get("timeout") is not None:
            timeout = _timeout(name, raw["timeout"])
        wait = bool(raw.get("wait", False))
        tools[name] = Tool(
            name=name,
            description=str(raw.get("description") or name),
            input_schema=schema,
            route=_route(name, raw.get("route"), templates),
            timeout=timeout,
            wait=wait,
            task=bool(raw.get("task", not wait)),
            progress=bool(raw.get("progress", defaults.get("progress", True))),
            _validator=jsonschema.Draft202012Validator(schema),
        )
    return ToolRegistry(tools)


def load_tools(path: str | None, default_timeout: float | None = None) -> ToolRegistry:
    """Read ``path``; no path gives an empty registry (the gateway still serves jobs)."""
    if path is None:
        return ToolRegistry({})
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolsConfigError(f"cannot read tools file {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ToolsConfigError(f"tools file {where} is not valid YAML: {problem}") from exc
    try:
        return parse_tools(document, default_timeout)
    except ToolsConfigError as exc:
        raise ToolsConfigError(f"{path}: {exc}") from exc
