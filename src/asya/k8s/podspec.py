"""Merging Asya's pieces into the user's pod template.

The user owns the pod template; the operator adds the runtime entry point, the sidecar, two
volumes and a few environment variables. Anything the user wrote is kept. Where the user set a
field to a value the operator must control differently (a container named like the sidecar, an
env var that comes from another spec field, a clashing volume), rendering fails with a message
naming the field: nothing is silently overwritten.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from asya.envconfig import parse_bool

JsonObject = dict[str, Any]

SIDECAR_CONTAINER = "asya-sidecar"
RUNTIME_CONTAINER = "asya-runtime"
RUNTIME_VOLUME = "asya-runtime"
SOCKET_VOLUME = "asya-socket"
RUNTIME_MOUNT = "/opt/asya"
RUNTIME_FILE = "asya_runtime.py"
RUNTIME_COMMAND = ["python", f"{RUNTIME_MOUNT}/{RUNTIME_FILE}"]
PASSWORD_ENV = "ASYA_RABBITMQ_PASSWORD"
USERNAME_ENV = "ASYA_RABBITMQ_USERNAME"

_TEMPLATE = "spec.workload.template"


class PodSpecError(ValueError):
    """A user field clashes with what the operator adds; the message names the field."""


def _env_entry(name: str, value: str) -> JsonObject:
    return {"name": name, "value": value}


def merge_env(
    user_env: list[JsonObject], managed: list[JsonObject], where: str, sources: Mapping[str, str]
) -> list[JsonObject]:
    """Operator variables first (so user values may refer to them as ``$(VAR)``), then the user's.

    A user variable with the name of a managed one is accepted only with the same value.
    """
    managed_by_name = {entry["name"]: entry for entry in managed}
    kept: list[JsonObject] = []
    for index, entry in enumerate(user_env):
        name = entry.get("name", "")
        ours = managed_by_name.get(name)
        if ours is None:
            kept.append(entry)
            continue
        if entry != ours:
            source = sources.get(name, "the spec")
            raise PodSpecError(
                f"{where}.env[{index}]: {name} is set by the operator from {source} "
                f"({ours.get('value', 'a secret')!r}); set it there instead"
            )
    return [*managed, *kept]


def _check_unique(
    items: list[JsonObject], key: str, ours: list[JsonObject], where: str, hint: str
) -> None:
    taken = {item.get(key): index for index, item in enumerate(items)}
    for item in ours:
        if item[key] in taken:
            raise PodSpecError(
                f"{where}[{taken[item[key]]}].{key}: {item[key]!r} is reserved by Asya ({hint})"
            )


def _socket_probe(socket_path: str, **timing: int) -> JsonObject:
    return {"exec": {"command": ["test", "-S", socket_path]}, **timing}


def _http_probe(**timing: int) -> JsonObject:
    return {"httpGet": {"path": "/health", "port": "metrics"}, **timing}


def runtime_container(
    container: JsonObject, index: int, spec: Mapping[str, Any], socket_dir: str
) -> JsonObject:
    """The user's container, started as the Asya runtime with the handler from its env."""
    where = f"{_TEMPLATE}.spec.containers[{index}]"
    result = copy.deepcopy(container)
    for field in ("command", "args"):
        if field in result:
            raise PodSpecError(
                f"{where}.{field}: the operator starts this container as "
                f"`{' '.join(RUNTIME_COMMAND)}`; remove {field} (the handler comes from "
                "ASYA_HANDLER)"
            )
    user_env: list[JsonObject] = result.get("env", [])
    if not any(entry.get("name") == "ASYA_HANDLER" for entry in user_env):
        raise PodSpecError(f"{where}.env: ASYA_HANDLER is required (module.function to serve)")
    socket, timeout = spec["socket"], spec["timeout"]
    managed = [
        _env_entry("ASYA_SOCKET_PATH", socket["path"]),
        _env_entry("ASYA_RUNTIME_TIMEOUT", f"{timeout['processing']}s"),
        _env_entry("ASYA_MAX_MESSAGE_SIZE", str(socket["maxSize"])),
    ]
    sources = {
        "ASYA_SOCKET_PATH": "spec.socket.path",
        "ASYA_RUNTIME_TIMEOUT": "spec.timeout.processing",
        "ASYA_MAX_MESSAGE_SIZE": "spec.socket.maxSize",
    }
    result["command"] = list(RUNTIME_COMMAND)
    result["env"] = merge_env(user_env, managed, where, sources)
    mounts: list[JsonObject] = [
        {"name": RUNTIME_VOLUME, "mountPath": RUNTIME_MOUNT, "readOnly": True},
        {"name": SOCKET_VOLUME, "mountPath": socket_dir},
    ]
    user_mounts: list[JsonObject] = result.get("volumeMounts", [])
    _check_unique(user_mounts, "name", mounts, f"{where}.volumeMounts", "runtime volumes")
    _check_unique(user_mounts, "mountPath", mounts, f"{where}.volumeMounts", "runtime paths")
    result["volumeMounts"] = [*user_mounts, *mounts]
    probe_path = socket["path"]
    result.setdefault(
        "startupProbe", _socket_probe(probe_path, periodSeconds=5, failureThreshold=120)
    )
    result.setdefault("readinessProbe", _socket_probe(probe_path, periodSeconds=5))
    result.setdefault(
        "livenessProbe", _socket_probe(probe_path, periodSeconds=30, failureThreshold=3)
    )
    return result


def transport_env(transport: Mapping[str, Any]) -> tuple[list[JsonObject], dict[str, str]]:
    """The sidecar's broker variables for ``spec.transport``, and the field each comes from."""
    kind = transport.get("type", "rabbitmq")
    if kind == "nats":
        url = transport["nats"]["url"]
        return [_env_entry("ASYA_TRANSPORT_URL", url)], {
            "ASYA_TRANSPORT_URL": "spec.transport.nats.url"
        }
    if kind == "sqs":
        sqs = transport["sqs"]
        query = {"region": sqs["region"]}
        if sqs.get("queuePrefix"):
            query["prefix"] = sqs["queuePrefix"]
        entries = [_env_entry("ASYA_TRANSPORT_URL", f"sqs://?{urlencode(query)}")]
        sources = {"ASYA_TRANSPORT_URL": "spec.transport.sqs"}
        if sqs.get("endpoint"):
            entries.append(_env_entry("AWS_ENDPOINT_URL", sqs["endpoint"]))
            sources["AWS_ENDPOINT_URL"] = "spec.transport.sqs.endpoint"
        return entries, sources
    rabbitmq = transport["rabbitmq"]
    secret = rabbitmq["passwordSecretRef"]
    url = f"amqp://$({USERNAME_ENV}):$({PASSWORD_ENV})@{rabbitmq['host']}:{rabbitmq['port']}/"
    entries = [
        _env_entry(USERNAME_ENV, rabbitmq["username"]),
        {
            "name": PASSWORD_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["key"]}},
        },
        _env_entry("ASYA_RABBITMQ_URL", url),
    ]
    sources = {
        USERNAME_ENV: "spec.transport.rabbitmq.username",
        PASSWORD_ENV: "spec.transport.rabbitmq.passwordSecretRef",
        "ASYA_RABBITMQ_URL": "spec.transport.rabbitmq",
    }
    return entries, sources


def sidecar_container(
    spec: Mapping[str, Any], socket_dir: str, image: str, native: bool
) -> JsonObject:
    """The ``asya sidecar`` container, configured from the spec and the transport."""
    sidecar = spec["sidecar"]
    port = sidecar["metricsPort"]
    broker_env, broker_sources = transport_env(spec["transport"])
    managed = [
        _env_entry("ASYA_QUEUE_NAME", spec["queueName"]),
        *broker_env,
        _env_entry("ASYA_SOCKET_PATH", spec["socket"]["path"]),
        _env_entry("ASYA_RUNTIME_TIMEOUT", f"{spec['timeout']['processing']}s"),
        _env_entry("ASYA_METRICS_ADDR", f":{port}"),
    ]
    sources = {
        "ASYA_QUEUE_NAME": "spec.queueName",
        **broker_sources,
        "ASYA_SOCKET_PATH": "spec.socket.path",
        "ASYA_RUNTIME_TIMEOUT": "spec.timeout.processing",
        "ASYA_METRICS_ADDR": "spec.sidecar.metricsPort",
    }
    user_env: list[JsonObject] = copy.deepcopy(sidecar.get("env", []))
    container: JsonObject = {
        "name": SIDECAR_CONTAINER,
        "image": image,
        "imagePullPolicy": sidecar["imagePullPolicy"],
        "command": ["asya", "sidecar"],
        "env": merge_env(user_env, managed, "spec.sidecar", sources),
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "volumeMounts": [{"name": SOCKET_VOLUME, "mountPath": socket_dir}],
    }
    if "resources" in sidecar:
        container["resources"] = copy.deepcopy(sidecar["resources"])
    if _metrics_enabled(user_env):
        container["readinessProbe"] = _http_probe(periodSeconds=10)
        container["livenessProbe"] = _http_probe(periodSeconds=30, failureThreshold=3)
    if native:
        # a native sidecar (init container that keeps running) lets a Job's pod complete
        container["restartPolicy"] = "Always"
    return container


def _metrics_enabled(env: list[JsonObject]) -> bool:
    for entry in env:
        if entry.get("name") == "ASYA_METRICS_ENABLED" and "value" in entry:
            try:
                return parse_bool(str(entry["value"]))
            except ValueError as exc:
                raise PodSpecError(f"spec.sidecar.env: ASYA_METRICS_ENABLED: {exc}") from exc
    return True


def _runtime_index(containers: list[JsonObject]) -> int:
    for index, container in enumerate(containers):
        if container.get("name") == RUNTIME_CONTAINER:
            return index
    return 0


def pod_template(
    spec: Mapping[str, Any],
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    config_map: str,
    image: str,
) -> JsonObject:
    """The workload's pod template: the user's, with the runtime and sidecar wired in."""
    workload_type = spec["workload"]["type"]
    template: JsonObject = copy.deepcopy(spec["workload"]["template"])
    metadata = template.setdefault("metadata", {})
    pod_labels = metadata.setdefault("labels", {})
    for key, value in labels.items():
        if pod_labels.get(key, value) != value:
            raise PodSpecError(
                f"{_TEMPLATE}.metadata.labels: {key!r} is set by the operator to {value!r}"
            )
        pod_labels[key] = value
    metadata.setdefault("annotations", {}).update(annotations)

    pod: JsonObject = template["spec"]
    containers: list[JsonObject] = pod["containers"]
    for field in ("containers", "initContainers"):
        for index, container in enumerate(pod.get(field, [])):
            if container.get("name") == SIDECAR_CONTAINER:
                raise PodSpecError(
                    f"{_TEMPLATE}.spec.{field}[{index}].name: {SIDECAR_CONTAINER!r} is reserved "
                    "for the sidecar the operator adds; rename the container"
                )
    socket_dir = posixpath.dirname(spec["socket"]["path"])
    runtime_index = _runtime_index(containers)
    containers[runtime_index] = runtime_container(
        containers[runtime_index], runtime_index, spec, socket_dir
    )
    native = workload_type == "Job"
    sidecar = sidecar_container(spec, socket_dir, image, native)
    if native:
        pod["initContainers"] = [*pod.get("initContainers", []), sidecar]
    else:
        containers.append(sidecar)

    volumes = [
        {"name": RUNTIME_VOLUME, "configMap": {"name": config_map, "defaultMode": 0o444}},
        {"name": SOCKET_VOLUME, "emptyDir": {}},
    ]
    user_volumes: list[JsonObject] = pod.get("volumes", [])
    _check_unique(user_volumes, "name", volumes, f"{_TEMPLATE}.spec.volumes", "runtime volumes")
    pod["volumes"] = [*user_volumes, *volumes]

    grace = spec["timeout"]["gracefulShutdown"]
    if pod.get("terminationGracePeriodSeconds", grace) != grace:
        raise PodSpecError(
            f"{_TEMPLATE}.spec.terminationGracePeriodSeconds: set by the operator from "
            f"spec.timeout.gracefulShutdown ({grace}); set it there instead"
        )
    pod["terminationGracePeriodSeconds"] = grace
    _check_restart_policy(pod, workload_type)
    return template


def _check_restart_policy(pod: JsonObject, workload_type: str) -> None:
    policy = pod.get("restartPolicy")
    if workload_type == "Job":
        if policy == "Always":
            raise PodSpecError(
                f"{_TEMPLATE}.spec.restartPolicy: a Job's pods need OnFailure or Never"
            )
        pod.setdefault("restartPolicy", "OnFailure")
    elif policy not in (None, "Always"):
        raise PodSpecError(
            f"{_TEMPLATE}.spec.restartPolicy: a {workload_type}'s pods must use Always"
        )
