"""AsyncActor → Kubernetes objects, as a pure function (no cluster, no I/O beyond reading the
runtime file once).

:func:`render` is what the operator applies and what ``asya k8s render`` prints, so the two
can never disagree. Objects come out in apply order: the runtime ConfigMap, the KEDA
TriggerAuthentication, the workload, the ScaledObject.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asya.runtime
from asya.k8s.crd import API_VERSION, KIND, InvalidActorError, actor_name, load_actor
from asya.k8s.podspec import RUNTIME_FILE, SIDECAR_CONTAINER, USERNAME_ENV, PodSpecError
from asya.k8s.podspec import pod_template as build_pod_template
from asya.transports.nats_names import consumer_name, stream_name

JsonObject = dict[str, Any]

DEFAULT_SIDECAR_IMAGE = "asya:latest"
ACTOR_LABEL = "asya.io/actor"
MANAGED_BY = "asya-operator"
RUNTIME_CHECKSUM_ANNOTATION = "asya.io/runtime-checksum"
KEDA_API_VERSION = "keda.sh/v1alpha1"
WORKLOAD_API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}


@functools.cache
def runtime_source() -> str:
    """The text of ``asya/runtime.py`` as installed (bytes decoded as is, newlines untouched)."""
    return Path(asya.runtime.__file__).read_bytes().decode("utf-8")


@dataclass(frozen=True)
class RenderOptions:
    """Operator-wide settings that are not part of an AsyncActor."""

    sidecar_image: str = DEFAULT_SIDECAR_IMAGE
    runtime_source: str = field(default_factory=runtime_source)


def config_map_name(actor: str) -> str:
    return f"{actor}-asya-runtime"


def trigger_auth_name(actor: str, transport: str = "rabbitmq") -> str:
    return f"{actor}-asya-{transport}"


def labels(actor: str, component: str) -> dict[str, str]:
    """The standard labels every object of one actor carries."""
    return {
        "app.kubernetes.io/name": actor,
        "app.kubernetes.io/part-of": "asya",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": component,
        ACTOR_LABEL: actor,
    }


def _metadata(actor: JsonObject, name: str, component: str) -> JsonObject:
    source = actor["metadata"]
    metadata: JsonObject = {"name": name}
    if source.get("namespace"):
        metadata["namespace"] = source["namespace"]
    metadata["labels"] = labels(source["name"], component)
    if source.get("uid"):
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": source["name"],
                "uid": source["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return metadata


def render_config_map(actor: JsonObject, source: str) -> JsonObject:
    name = actor["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(actor, config_map_name(name), "runtime"),
        "data": {RUNTIME_FILE: source},
    }


def render_workload(actor: JsonObject, options: RenderOptions) -> JsonObject:
    name = actor["metadata"]["name"]
    spec = actor["spec"]
    workload, scaling = spec["workload"], spec["scaling"]
    kind = workload["type"]
    checksum = hashlib.sha256(options.runtime_source.encode("utf-8")).hexdigest()[:16]
    template = build_pod_template(
        spec,
        labels=labels(name, "actor"),
        annotations={RUNTIME_CHECKSUM_ANNOTATION: checksum},
        config_map=config_map_name(name),
        image=spec["sidecar"].get("image", options.sidecar_image),
    )
    body: JsonObject = {"template": template}
    if kind == "Job":
        body["parallelism"] = workload["replicas"]
    else:
        body["selector"] = {"matchLabels": {ACTOR_LABEL: name}}
        if not scaling["enabled"]:
            # with scaling on, KEDA's HPA owns replicas: leaving it out of the applied
            # object keeps server-side apply from fighting the autoscaler
            body["replicas"] = workload["replicas"]
    if kind == "StatefulSet":
        body["serviceName"] = name
        body["podManagementPolicy"] = "Parallel"
        if "volumeClaimTemplates" in workload:
            body["volumeClaimTemplates"] = workload["volumeClaimTemplates"]
    return {
        "apiVersion": WORKLOAD_API_VERSIONS[kind],
        "kind": kind,
        "metadata": _metadata(actor, name, "actor"),
        "spec": body,
    }


def render_trigger_auth(actor: JsonObject) -> JsonObject:
    name = actor["metadata"]["name"]
    transport = actor["spec"]["transport"]
    if transport["type"] == "sqs":
        # KEDA reads the queue depth as the workload's AWS identity (IRSA / EKS Pod Identity)
        # or its own: no credentials in the cluster.
        spec: JsonObject = {
            "podIdentity": {"provider": "aws", "identityOwner": transport["sqs"]["identityOwner"]}
        }
    else:
        secret = transport["rabbitmq"]["passwordSecretRef"]
        spec = {
            "secretTargetRef": [
                {"parameter": "password", "name": secret["name"], "key": secret["key"]}
            ],
            "env": [
                {"parameter": "username", "name": USERNAME_ENV, "containerName": SIDECAR_CONTAINER}
            ],
        }
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": _metadata(actor, trigger_auth_name(name, transport["type"]), "scaler"),
        "spec": spec,
    }


def _trigger(spec: JsonObject) -> tuple[str, JsonObject]:
    """KEDA's trigger type and metadata for the actor's queue on its transport."""
    transport, queue_length = spec["transport"], str(spec["scaling"]["queueLength"])
    if transport.get("type") == "nats":
        nats = transport["nats"]
        return "nats-jetstream", {
            # the consumer's lag: its pending messages
            "natsServerMonitoringEndpoint": nats["monitoringEndpoint"],
            "account": nats.get("account", "$G"),
            "stream": stream_name(sidecar_exchange(spec)),
            "consumer": consumer_name(spec["queueName"]),
            "lagThreshold": queue_length,
        }
    if transport["type"] == "sqs":
        sqs = transport["sqs"]
        metadata: JsonObject = {
            # a queue name is enough where it is unambiguous (KEDA 2.6+): no account id needed
            "queueURL": sqs.get("queuePrefix", "") + spec["queueName"],
            "queueLength": queue_length,
            "awsRegion": sqs["region"],
        }
        if sqs.get("endpoint"):
            metadata["awsEndpoint"] = sqs["endpoint"]
        return "aws-sqs-queue", metadata
    rabbitmq = transport["rabbitmq"]
    return "rabbitmq", {
        "protocol": "amqp",
        "host": f"amqp://{rabbitmq['host']}:{rabbitmq['port']}",
        "vhostName": "/",
        "queueName": spec["queueName"],
        "mode": "QueueLength",
        "value": queue_length,
    }


def _trigger_object(
    name: str, trigger_type: str, metadata: JsonObject, transport: JsonObject
) -> JsonObject:
    trigger: JsonObject = {"type": trigger_type, "metadata": metadata}
    if transport.get("type") != "nats":  # KEDA reads NATS's monitoring endpoint unauthenticated
        trigger["authenticationRef"] = {"name": trigger_auth_name(name, transport["type"])}
    return trigger


def render_scaled_object(actor: JsonObject) -> JsonObject:
    name = actor["metadata"]["name"]
    spec = actor["spec"]
    scaling = spec["scaling"]
    kind = spec["workload"]["type"]
    trigger_type, metadata = _trigger(spec)
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": _metadata(actor, name, "scaler"),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": WORKLOAD_API_VERSIONS[kind],
                "kind": kind,
                "name": name,
            },
            "minReplicaCount": scaling["minReplicas"],
            "maxReplicaCount": scaling["maxReplicas"],
            "pollingInterval": scaling["pollingInterval"],
            "cooldownPeriod": scaling["cooldownPeriod"],
            "triggers": [_trigger_object(name, trigger_type, metadata, spec["transport"])],
        },
    }


def sidecar_exchange(spec: Mapping[str, Any]) -> str:
    """The exchange the sidecar uses: its ``ASYA_RABBITMQ_EXCHANGE`` env, else ``asya``."""
    return next(
        (
            str(e.get("value", "asya"))
            for e in spec["sidecar"].get("env", [])
            if e.get("name") == "ASYA_RABBITMQ_EXCHANGE"
        ),
        "asya",
    )


def render(obj: Mapping[str, Any], options: RenderOptions | None = None) -> list[JsonObject]:
    """Every object one AsyncActor needs, in apply order.

    Raises :class:`InvalidActorError` (listing each problem) for an AsyncActor the API server
    would refuse or whose pod template clashes with what Asya adds.
    """
    options = options or RenderOptions()
    actor = load_actor(obj)
    try:
        workload = render_workload(actor, options)
    except PodSpecError as exc:
        raise InvalidActorError(actor_name(actor), [str(exc)]) from exc
    objects = [render_config_map(actor, options.runtime_source)]
    if actor["spec"]["scaling"]["enabled"]:
        if actor["spec"]["transport"].get("type") != "nats":  # KEDA reads NATS unauthenticated
            objects.append(render_trigger_auth(actor))
        objects.append(workload)
        objects.append(render_scaled_object(actor))
    else:
        objects.append(workload)
    return objects
