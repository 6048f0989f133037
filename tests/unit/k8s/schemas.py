"""Schema checks for everything the Kubernetes part produces, without a cluster.

Built-in kinds are checked against the Kubernetes 1.30 OpenAPI schemas shipped by
``kubernetes_validate`` (strict: unknown fields are errors); KEDA kinds against the KEDA CRD
schemas kept in ``data/``; AsyncActors against our own CRD (with its CEL rules).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from asya.k8s.crd import load_actor, strict_schema

KUBERNETES_VERSION = "1.30"
DATA = Path(__file__).parent / "data"
KEDA_SCHEMA_FILES = {
    "ScaledObject": "keda-v2.14-scaledobject.schema.yaml",
    "TriggerAuthentication": "keda-v2.14-triggerauthentication.schema.yaml",
}


@functools.cache
def keda_validator(kind: str) -> jsonschema.Draft202012Validator:
    document = yaml.safe_load((DATA / KEDA_SCHEMA_FILES[kind]).read_text())
    return jsonschema.Draft202012Validator(strict_schema(document["openAPIV3Schema"]))


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` would be refused by a Kubernetes 1.30 API server with KEDA and Asya."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    if api_version == "keda.sh/v1alpha1":
        keda_validator(kind).validate(obj)
    elif api_version.startswith("asya.io/"):
        load_actor(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
