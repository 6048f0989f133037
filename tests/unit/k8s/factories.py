"""Test data builders: a valid minimal AsyncActor, changed per test with ``actor(**spec)``."""

from __future__ import annotations

import copy
from typing import Any

BASE_ACTOR: dict[str, Any] = {
    "apiVersion": "asya.io/v1alpha1",
    "kind": "AsyncActor",
    "metadata": {"name": "doubler", "namespace": "team-a"},
    "spec": {
        "queueName": "test-doubler-queue",
        "transport": {
            "type": "rabbitmq",
            "rabbitmq": {
                "host": "rabbitmq.messaging.svc",
                "port": 5673,
                "username": "asya",
                "passwordSecretRef": {"name": "rabbitmq-creds", "key": "pw"},
            },
        },
        "workload": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "handler",
                            "image": "python:3.11-slim",
                            "env": [{"name": "ASYA_HANDLER", "value": "handlers.double"}],
                        }
                    ]
                }
            }
        },
    },
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in (dicts recursively; other values replace)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def actor(metadata: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """The base actor with ``spec`` fields merged in (and ``metadata``)."""
    result = merge(BASE_ACTOR, {"spec": spec})
    if metadata:
        result["metadata"] = merge(result["metadata"], metadata)
    return result


def container(name: str = "handler", **fields: Any) -> dict[str, Any]:
    """A user container with ASYA_HANDLER set (plus ``fields``)."""
    base: dict[str, Any] = {
        "name": name,
        "image": "python:3.11-slim",
        "env": [{"name": "ASYA_HANDLER", "value": "handlers.double"}],
    }
    base.update(fields)
    return base


def template(*containers: dict[str, Any], **pod: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": list(containers) or [container()], **pod}}}
