"""asya.yaml → the Kubernetes objects that run the same mesh on a cluster
(docs/kubernetes.md#from-asyayaml).

Each actor becomes an AsyncActor (the operator renders its workload and KEDA scaler from it),
the gateway's tools file becomes deploy/gateway's ConfigMap, and the crew is happy-end and
error-end exactly as deploy/crew defines them. What only a laptop has — SQLite queues, a broker
on localhost, a SQLite job store — is replaced by deploy/'s cluster services: the RabbitMQ
Service ``rabbitmq`` (user ``asya``, password in the Secret ``rabbitmq``) and the gateway
Service ``asya-gateway``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from asya.errors import AsyaError
from asya.gateway.tools import ToolsConfigError, parse_tools
from asya.k8s.crd import API_VERSION, KIND, InvalidActorError
from asya.k8s.render import render
from asya.up.model import DEFAULT_EXCHANGE, ERROR_END, HAPPY_END, ActorConfig, MeshConfig

JsonObject = dict[str, Any]

ASYA_IMAGE = "asya:latest"
GATEWAY_SERVICE_URL = "http://asya-gateway"
TOOLS_CONFIG_MAP = "asya-gateway-tools"
TOOLS_KEY = "tools.yaml"
RUNTIME_CONTAINER = "asya-runtime"
GRACE_SECONDS = 10  # extra time a pod gets beyond one handler call to finish it
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_NOT_IN_NAME = re.compile(r"[^a-z0-9-]+")


class MeshExportError(AsyaError):
    """asya.yaml cannot be turned into Kubernetes objects; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cannot render asya.yaml for Kubernetes:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Broker:
    """The RabbitMQ the actors use on the cluster; the defaults are deploy/'s."""

    host: str = "rabbitmq"
    port: int = 5672
    username: str = "asya"
    secret: str = "rabbitmq"
    secret_key: str = "password"
    sqs: tuple[tuple[str, str], ...] = ()  # transport.sqs of the AsyncActors, when on SQS

    @classmethod
    def from_transport(cls, url: str) -> Broker:
        """The file's broker when it names one a cluster can reach, else deploy/'s."""
        if url.startswith("sqs://"):
            return cls.from_sqs(url)
        if not url.startswith(("amqp://", "amqps://")):
            return cls()
        parts = urlsplit(url)
        if not parts.hostname or parts.hostname in _LOOPBACK:
            return cls()
        username = unquote(parts.username) if parts.username else "guest"
        return cls(host=parts.hostname, port=parts.port or 5672, username=username)

    @classmethod
    def from_sqs(cls, url: str) -> Broker:
        """SQS stays SQS on the cluster: KEDA needs the region, so the URL must name it."""
        query = dict(parse_qsl(urlsplit(url).query))
        if not query.get("region"):
            raise MeshExportError(
                [f"transport: {url!r} names no region; add ?region=… (KEDA's awsRegion needs it)"]
            )
        fields = {"region": query["region"], "queuePrefix": query.get("prefix", "")}
        if query.get("endpoint"):
            fields["endpoint"] = query["endpoint"]
        return cls(sqs=tuple(fields.items()))

    def transport(self) -> JsonObject:
        if self.sqs:
            return {"type": "sqs", "sqs": dict(self.sqs)}
        return {
            "type": "rabbitmq",
            "rabbitmq": {
                "host": self.host,
                "port": self.port,
                "username": self.username,
                "passwordSecretRef": {"name": self.secret, "key": self.secret_key},
            },
        }


@dataclass(frozen=True)
class MeshOptions:
    image: str | None = None  # for actors without ``image:``
    namespace: str | None = None


@dataclass(frozen=True)
class MeshObjects:
    """What one asya.yaml becomes; ``standard_crew`` says deploy/crew can stand in for ``crew``."""

    actors: tuple[JsonObject, ...]
    crew: tuple[JsonObject, ...]
    tools: JsonObject | None
    standard_crew: bool

    def all(self) -> list[JsonObject]:
        return [*([self.tools] if self.tools else []), *self.actors, *self.crew]


def resource_name(queue: str) -> str:
    """A Kubernetes name (DNS-1123 label) for a queue name (which may hold ``_``, ``.``, A-Z)."""
    return _NOT_IN_NAME.sub("-", queue.lower()).strip("-")[:63].rstrip("-")


def _env(values: Mapping[str, str]) -> list[JsonObject]:
    return [{"name": name, "value": value} for name, value in values.items()]


def _metadata(
    name: str, namespace: str | None, labels: Mapping[str, str] | None = None
) -> JsonObject:
    metadata: JsonObject = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    return metadata


def _scaling(actor: ActorConfig) -> JsonObject | None:
    if actor.scaling is None:
        return None
    rule = actor.scaling
    return {
        "enabled": True,
        "minReplicas": rule.min,
        "maxReplicas": rule.max,
        "queueLength": rule.queue_length,
        "pollingInterval": max(1, math.ceil(rule.polling_interval)),
        "cooldownPeriod": math.ceil(rule.cooldown),
    }


def _sidecar_env(config: MeshConfig, user_env: Mapping[str, str]) -> dict[str, str]:
    """What ``asya up`` gives every sidecar, in its cluster form, then the file's env."""
    env: dict[str, str] = {}
    if config.gateway is not None:
        env["ASYA_GATEWAY_URL"] = GATEWAY_SERVICE_URL
    if config.exchange != DEFAULT_EXCHANGE:
        env["ASYA_RABBITMQ_EXCHANGE"] = config.exchange
    if config.happy_end != HAPPY_END:
        env["ASYA_STEP_HAPPY_END"] = config.happy_end
    if config.error_end != ERROR_END:
        env["ASYA_STEP_ERROR_END"] = config.error_end
    env.update(user_env)
    return env


def actor_resource(
    actor: ActorConfig, config: MeshConfig, broker: Broker, image: str, namespace: str | None
) -> JsonObject:
    """The AsyncActor for one asya.yaml actor."""
    user_env = {**config.env, **actor.env}
    runtime_env = {"ASYA_HANDLER": actor.handler, "ASYA_HANDLER_MODE": actor.mode}
    runtime_env.update((k, v) for k, v in user_env.items() if k not in runtime_env)
    processing = max(1, math.ceil(actor.timeout))
    workload: JsonObject = {"type": "Deployment"}
    spec: JsonObject = {"queueName": actor.name, "transport": broker.transport()}
    sidecar_env = _sidecar_env(config, user_env)
    if sidecar_env:
        spec["sidecar"] = {"env": _env(sidecar_env)}
    spec["timeout"] = {"processing": processing, "gracefulShutdown": processing + GRACE_SECONDS}
    scaling = _scaling(actor)
    if scaling is not None:
        spec["scaling"] = scaling
    else:
        workload["replicas"] = actor.replicas
    container = {"name": RUNTIME_CONTAINER, "image": image, "env": _env(runtime_env)}
    workload["template"] = {"spec": {"containers": [container]}}
    spec["workload"] = workload
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(resource_name(actor.name), namespace),
        "spec": spec,
    }


def crew_resource(
    queue: str, role: str, broker: Broker, namespace: str | None, *, gateway: bool = True
) -> JsonObject:
    """happy-end or error-end (``role``) as deploy/crew/<role>.yaml defines it."""
    handler = f"asya.crew.{role.replace('-', '_')}.handle"
    env = {
        "ASYA_HANDLER": handler,
        "ASYA_HANDLER_MODE": "message",
        "ASYA_ENABLE_VALIDATION": "false",
    }
    if gateway:
        env["ASYA_GATEWAY_URL"] = GATEWAY_SERVICE_URL
    runtime = {
        "name": RUNTIME_CONTAINER,
        "image": ASYA_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "env": _env(env),
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
    }
    security = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(
            resource_name(queue), namespace, {"app.kubernetes.io/component": "crew"}
        ),
        "spec": {
            "queueName": queue,
            "transport": broker.transport(),
            "sidecar": {"env": _env({"ASYA_IS_TERMINAL": "true"})},
            "timeout": {"processing": 60, "gracefulShutdown": 70},
            "scaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5, "queueLength": 20},
            "workload": {
                "type": "Deployment",
                "template": {"spec": {"securityContext": security, "containers": [runtime]}},
            },
        },
    }


def tools_config_map(text: str, namespace: str | None) -> JsonObject:
    """deploy/gateway's ConfigMap ``asya-gateway-tools`` holding this tools file."""
    labels = {"app.kubernetes.io/name": "asya-gateway", "app.kubernetes.io/component": "gateway"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(TOOLS_CONFIG_MAP, namespace, labels),
        "data": {TOOLS_KEY: text},
    }


def _check_tools(text: str, where: str) -> list[str]:
    try:
        parse_tools(yaml.safe_load(text))
    except (ToolsConfigError, yaml.YAMLError) as exc:
        return [f"gateway.tools ({where}): {exc}"]
    return []


def _check_actors(objects: Iterable[JsonObject], labels: list[str]) -> list[str]:
    """Render each AsyncActor as the operator would, so a clash shows up now, not on apply."""
    problems: list[str] = []
    for obj, label in zip(objects, labels, strict=True):
        try:
            render(obj)
        except InvalidActorError as exc:
            problems.extend(f"{label}: {problem}" for problem in exc.problems)
    return problems


def mesh_objects(config: MeshConfig, options: MeshOptions | None = None) -> MeshObjects:
    """Every object asya.yaml needs on a cluster besides deploy/'s bases.

    Raises :class:`MeshExportError` listing every actor without an image, every name clash and
    every AsyncActor the operator would refuse.
    """
    options = options or MeshOptions()
    broker = Broker.from_transport(config.transport)
    problems: list[str] = []
    taken: dict[str, str] = {}
    actors: list[JsonObject] = []
    labels: list[str] = []
    queues = [(a.name, f"actors[{i}] ({a.name})") for i, a in enumerate(config.actors)]
    if config.crew:
        queues += [
            (config.happy_end, "the crew's happy-end"),
            (config.error_end, "the crew's error-end"),
        ]
    for queue, label in queues:
        name = resource_name(queue)
        if not name:
            problems.append(f"{label}: no Kubernetes name can be made from {queue!r}")
        elif name in taken:
            problems.append(f"{label}: Kubernetes name {name!r} is also {taken[name]}'s")
        taken.setdefault(name, label)
    for index, actor in enumerate(config.actors):
        label = f"actors[{index}] ({actor.name})"
        image = actor.image or options.image
        if image is None:
            problems.append(f"{label}: no image: set image: on the actor or pass --image")
            continue
        actors.append(actor_resource(actor, config, broker, image, options.namespace))
        labels.append(label)
    problems.extend(_check_actors(actors, labels))
    crew: tuple[JsonObject, ...] = ()
    if config.crew:
        gateway = config.gateway is not None
        crew = (
            crew_resource(config.happy_end, HAPPY_END, broker, options.namespace, gateway=gateway),
            crew_resource(config.error_end, ERROR_END, broker, options.namespace, gateway=gateway),
        )
    tools = None
    if config.gateway is not None:
        text = config.gateway.tools.read_text(encoding="utf-8")
        problems.extend(_check_tools(text, str(config.gateway.tools)))
        tools = tools_config_map(text, options.namespace)
    if problems:
        raise MeshExportError(problems)
    # deploy/crew assumes deploy's broker, the default crew queues and a gateway to report to
    standard = (
        broker == Broker()
        and (config.happy_end, config.error_end) == (HAPPY_END, ERROR_END)
        and tools is not None
    )
    return MeshObjects(tuple(actors), crew, tools, standard_crew=standard)
