"""The AsyncActor CRD as data, and the checks the API server would run on an AsyncActor.

``crd.yaml`` beside this module is the one definition of the resource. Off-cluster callers
(``asya k8s render``, the tests) get the same answers as the API server from
:func:`load_actor`: the openAPIV3Schema is checked with jsonschema (unknown fields refused, as
``kubectl apply`` does with strict field validation), defaults are filled in from the schema, and
the CEL rules (``x-kubernetes-validations``) are evaluated by their Python equivalents in
:data:`RULES`, keyed by the rule's message so a test can prove every rule has one.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import Any

import jsonschema
import yaml

from asya.errors import AsyaError

GROUP = "asya.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AsyncActor"
PLURAL = "asyncactors"

JsonObject = dict[str, Any]


class InvalidActorError(AsyaError):
    """An AsyncActor that the API server would refuse, or that cannot be rendered."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid AsyncActor {name!r}:\n{listing}")


@functools.cache
def _crd_text() -> str:
    return (resources.files("asya.k8s") / "crd.yaml").read_text(encoding="utf-8")


def crd_yaml() -> str:
    """The CRD document exactly as shipped (comments included)."""
    return _crd_text()


def crd_manifest() -> JsonObject:
    """The CRD as a fresh dict (callers may change it)."""
    manifest: JsonObject = yaml.safe_load(_crd_text())
    return manifest


@functools.cache
def _schema() -> JsonObject:
    versions = crd_manifest()["spec"]["versions"]
    schema: JsonObject = next(v for v in versions if v["name"] == VERSION)["schema"][
        "openAPIV3Schema"
    ]
    return schema


def strict_schema(schema: JsonObject) -> JsonObject:
    """The schema with unknown fields refused wherever the CRD does not preserve them."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if "properties" in schema:
        out["properties"] = {k: strict_schema(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        out["items"] = strict_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(schema["additionalProperties"])
    return out


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    strict = strict_schema(_schema())
    # metadata is checked by the API server itself, not by the CRD schema
    strict["properties"]["metadata"] = {"type": "object"}
    cls = jsonschema.validators.validator_for(strict, default=jsonschema.Draft202012Validator)
    validator: jsonschema.protocols.Validator = cls(strict)
    return validator


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Fill in ``default`` values as the API server does (recursively, into defaulted objects)."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(root)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{_path(error)}: {error.message} (not a field of AsyncActor {VERSION})"
    return f"{_path(error)}: {error.message}"


# --- CEL rules (x-kubernetes-validations) and their Python equivalents, keyed by message ------

Rule = Callable[[JsonObject], bool]

RULES: dict[str, tuple[str, Rule]] = {
    "scaling.enabled is not supported for workload.type Job (a KEDA ScaledObject needs a "
    "Deployment or StatefulSet)": (
        "spec",
        lambda spec: not (spec["scaling"]["enabled"] and spec["workload"]["type"] == "Job"),
    ),
    "transport.rabbitmq is required when transport.type is rabbitmq": (
        "spec.transport",
        lambda transport: transport["type"] != "rabbitmq" or "rabbitmq" in transport,
    ),
    "transport.nats is required when transport.type is nats": (
        "spec.transport",
        lambda transport: transport["type"] != "nats" or "nats" in transport,
    ),
    "transport.sqs is required when transport.type is sqs": (
        "spec.transport",
        lambda transport: transport["type"] != "sqs" or "sqs" in transport,
    ),
    "scaling.maxReplicas must be greater than or equal to scaling.minReplicas": (
        "spec.scaling",
        lambda scaling: scaling["maxReplicas"] >= scaling["minReplicas"],
    ),
    "workload.volumeClaimTemplates is only allowed with workload.type StatefulSet": (
        "spec.workload",
        lambda workload: (
            "volumeClaimTemplates" not in workload or workload["type"] == "StatefulSet"
        ),
    ),
}


def cel_rules() -> Iterator[tuple[str, str, str]]:
    """Every ``(path, rule, message)`` declared in the CRD schema."""

    def walk(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
        for entry in schema.get("x-kubernetes-validations", []):
            yield path, entry["rule"], entry["message"]
        for key, sub in schema.get("properties", {}).items():
            yield from walk(sub, f"{path}.{key}" if path else key)

    yield from walk(_schema(), "")


def _lookup(obj: JsonObject, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value[part]
    return value


def actor_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else "<unnamed>"


def load_actor(obj: Mapping[str, Any]) -> JsonObject:
    """Validate an AsyncActor as the API server would and return it with defaults filled in.

    Raises :class:`InvalidActorError` listing every problem found.
    """
    name = actor_name(obj)
    problems: list[str] = []
    if obj.get("apiVersion") != API_VERSION or obj.get("kind") != KIND:
        problems.append(
            f"expected apiVersion {API_VERSION} and kind {KIND}, "
            f"got {obj.get('apiVersion')!r} {obj.get('kind')!r}"
        )
    if name == "<unnamed>":
        problems.append("metadata.name is required")
    errors = sorted(_validator().iter_errors(dict(obj)), key=lambda e: list(e.absolute_path))
    problems.extend(_describe(error) for error in errors)
    if problems:
        raise InvalidActorError(name, problems)
    actor = apply_defaults(_schema(), copy.deepcopy(dict(obj)))
    for message, (path, check) in RULES.items():
        target = _lookup(actor, path)
        if not check(target):
            problems.append(f"{path}: {message}")
    if problems:
        raise InvalidActorError(name, problems)
    result: JsonObject = actor
    return result
