"""A fake of ``kubernetes.dynamic.DynamicClient``: the client library's surface the operator
uses (``resources.get``, ``server_side_apply``, ``get``, ``patch``, ``delete``), backed by a dict.

Errors are the library's own: ``ResourceNotFoundError`` for a kind the server does not serve
(KEDA not installed) and the ``DynamicApiError`` subclasses for refused calls.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, api_exception

BUILTIN_KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("asya.io/v1alpha1", "AsyncActor"),
}
KEDA_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


@dataclass
class FakeResource:
    api_version: str
    kind: str
    namespaced: bool = True
    subresource: str | None = None

    @property
    def status(self) -> FakeResource:
        return FakeResource(self.api_version, self.kind, subresource="status")


class FakeInstance:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)


class FakeResources:
    def __init__(self, client: FakeDynamicClient) -> None:
        self._client = client

    def get(self, *, api_version: str, kind: str) -> FakeResource:
        if (api_version, kind) not in self._client.served:
            raise ResourceNotFoundError(f"No matches found for {api_version} {kind}")
        return FakeResource(api_version, kind)


def refused(status: int, reason: str) -> Exception:
    return api_exception(ApiException(status=status, reason=reason))


@dataclass
class FakeDynamicClient:
    keda: bool = True
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    apply_calls: list[dict[str, Any]] = field(default_factory=list)
    status_patches: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    #: kind -> exception raised by server_side_apply for that kind
    failures: dict[str, Exception] = field(default_factory=dict)

    @property
    def served(self) -> set[tuple[str, str]]:
        return BUILTIN_KINDS | (KEDA_KINDS if self.keda else set())

    @property
    def resources(self) -> FakeResources:
        return FakeResources(self)

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.objects[("Secret", namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": encoded,
        }

    def server_side_apply(
        self,
        resource: FakeResource,
        body: dict[str, Any],
        name: str,
        namespace: str | None,
        field_manager: str | None = None,
        force_conflicts: bool | None = None,
    ) -> FakeInstance:
        self.apply_calls.append(
            {
                "kind": resource.kind,
                "name": name,
                "namespace": namespace,
                "field_manager": field_manager,
                "force_conflicts": force_conflicts,
            }
        )
        if resource.kind in self.failures:
            raise self.failures[resource.kind]
        stored = copy.deepcopy(body)
        self.objects[(resource.kind, namespace or "", name)] = stored
        self.applied.append(stored)
        return FakeInstance(stored)

    def get(
        self,
        resource: FakeResource,
        name: str | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> FakeInstance:
        if name is not None:
            found = self.objects.get((resource.kind, namespace or "", name))
            if found is None:
                raise refused(404, "Not Found")
            return FakeInstance(found)
        wanted = dict(part.split("=", 1) for part in (label_selector or "").split(",") if part)
        items = [
            obj
            for (kind, ns, _), obj in self.objects.items()
            if kind == resource.kind
            and ns == (namespace or "")
            and wanted.items() <= obj["metadata"].get("labels", {}).items()
        ]
        return FakeInstance({"items": items})

    def patch(
        self,
        resource: FakeResource,
        body: dict[str, Any],
        name: str,
        namespace: str,
        content_type: str | None = None,
    ) -> FakeInstance:
        assert resource.subresource == "status", "the operator patches only the status"
        assert content_type == "application/merge-patch+json"
        self.status_patches.append(copy.deepcopy(body["status"]))
        return FakeInstance(body)

    def delete(
        self, resource: FakeResource, name: str, namespace: str, body: Any = None
    ) -> FakeInstance:
        removed = self.objects.pop((resource.kind, namespace, name), None)
        if removed is None:
            raise refused(404, "Not Found")
        self.deleted.append((resource.kind, name))
        return FakeInstance(removed)

    def last_status(self) -> dict[str, Any]:
        """The status as the API server would hold it after every merge patch so far."""
        status: dict[str, Any] = {}
        for patch in self.status_patches:
            for key, value in patch.items():
                if value is None:
                    status.pop(key, None)
                else:
                    status[key] = value
        return status

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.last_status()["conditions"] if c["type"] == kind)
