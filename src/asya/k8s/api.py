"""The operator's only door to the Kubernetes API.

Every call the operator makes goes through :class:`KubeApi`, a thin layer over the kubernetes
client's ``DynamicClient``: server-side apply, pruning stale children, the status subresource,
one Secret read. Library exceptions are translated here into :class:`ApiError` (retryable or
not) and :class:`KindNotServed` (a CRD such as KEDA's is not installed), so the reconciler
above never sees the client library, and tests can hand in a fake ``DynamicClient``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from urllib3.exceptions import HTTPError

from asya.errors import AsyaError, ConfigError
from asya.k8s.crd import API_VERSION, KIND
from asya.k8s.render import ACTOR_LABEL, MANAGED_BY

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]

FIELD_MANAGER = "asya-operator"
#: Status codes worth retrying: conflicts, throttling and server-side trouble.
_RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: Every kind an actor may own, so a stale child (old workload type, disabled scaling) goes.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("keda.sh/v1alpha1", "ScaledObject"),
)


class KindNotServed(AsyaError):
    """The API server does not serve this kind (its CRD is not installed)."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"{api_version} {kind} is not served by the API server")
        self.api_version = api_version
        self.kind = kind


class ApiError(AsyaError):
    """A refused or failed API call; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = status is None or status in _RETRYABLE


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str


def ref_of(obj: JsonObject) -> ObjectRef:
    return ObjectRef(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def _summary(exc: ApiException) -> str:
    summary = getattr(exc, "summary", None)
    if callable(summary):
        return str(summary())
    return f"{exc.status} {exc.reason}"


class KubeApi:
    """The handful of API calls the operator needs, over a ``kubernetes.dynamic.DynamicClient``."""

    def __init__(self, dynamic: Any) -> None:
        self._dynamic = dynamic

    @classmethod
    def connect(cls) -> KubeApi:
        """In-cluster config when running in a pod, else the local kubeconfig."""
        from kubernetes import client, config
        from kubernetes.dynamic import DynamicClient

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            try:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            except (config.ConfigException, OSError) as exc:
                raise ConfigError(
                    "KUBECONFIG",
                    f"not running in a pod and no usable kubeconfig ({exc})",
                ) from exc
        try:
            return cls(DynamicClient(client.ApiClient()))  # type: ignore[no-untyped-call]
        except (ApiException, HTTPError) as exc:
            raise ApiError(f"cannot reach the API server: {exc}", None) from exc

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise KindNotServed(api_version, kind) from exc

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except ApiException as exc:
            raise ApiError(f"{what}: {_summary(exc)}", exc.status) from exc
        except HTTPError as exc:
            raise ApiError(f"{what}: API server unreachable ({exc})", None) from exc

    def served(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except KindNotServed:
            return False
        return True

    def apply(self, obj: JsonObject) -> None:
        """Server-side apply ``obj`` as the operator's field manager (taking over conflicts)."""
        ref = ref_of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        self._call(
            f"apply {ref.kind} {ref.name}",
            self._dynamic.server_side_apply,
            resource,
            body=obj,
            name=ref.name,
            namespace=obj["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def prune(self, namespace: str, actor: str, uid: str, keep: Iterable[ObjectRef]) -> list[str]:
        """Delete this actor's children that are no longer rendered; returns what went."""
        kept = set(keep)
        deleted: list[str] = []
        selector = f"{ACTOR_LABEL}={actor},app.kubernetes.io/managed-by={MANAGED_BY}"
        for api_version, kind in CHILD_KINDS:
            try:
                resource = self._resource(api_version, kind)
            except KindNotServed:
                continue
            listing = self._call(
                f"list {kind}",
                self._dynamic.get,
                resource,
                namespace=namespace,
                label_selector=selector,
            )
            for item in listing.to_dict().get("items", []):
                metadata = item.get("metadata", {})
                name = metadata.get("name", "")
                owned = any(ref.get("uid") == uid for ref in metadata.get("ownerReferences", []))
                if not owned or ObjectRef(api_version, kind, name) in kept:
                    continue
                self._call(
                    f"delete {kind} {name}",
                    self._dynamic.delete,
                    resource,
                    name=name,
                    namespace=namespace,
                    body={"propagationPolicy": "Background"},
                )
                deleted.append(f"{kind}/{name}")
        return deleted

    def patch_status(self, namespace: str, name: str, status: JsonObject) -> None:
        """Merge ``status`` into the AsyncActor's status subresource."""
        resource = self._resource(API_VERSION, KIND)
        self._call(
            f"patch status of {KIND} {name}",
            self._dynamic.patch,
            resource.status,
            body={"metadata": {"name": name, "namespace": namespace}, "status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    def read_secret(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded; ApiError when the Secret or key is missing."""
        resource = self._resource("v1", "Secret")
        secret = self._call(
            f"read Secret {name}", self._dynamic.get, resource, name=name, namespace=namespace
        ).to_dict()
        encoded = (secret.get("data") or {}).get(key)
        if encoded is None:
            raise ApiError(f"Secret {name} has no key {key!r}", 404)
        try:
            return base64.b64decode(encoded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError(f"Secret {name} key {key!r} is not valid base64 UTF-8", 422) from exc

    def workload_replicas(self, ref: ObjectRef, namespace: str) -> tuple[int, int] | None:
        """``(replicas, readyReplicas)`` of a workload, or None when it does not exist yet."""
        resource = self._resource(ref.api_version, ref.kind)
        try:
            workload = self._dynamic.get(resource, name=ref.name, namespace=namespace).to_dict()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ApiError(f"read {ref.kind} {ref.name}: {_summary(exc)}", exc.status) from exc
        status = workload.get("status") or {}
        if ref.kind == "Job":
            return int(status.get("active", 0)), int(status.get("ready", 0))
        return int(status.get("replicas", 0)), int(status.get("readyReplicas", 0))
