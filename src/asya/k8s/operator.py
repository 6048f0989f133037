"""The kopf layer of the operator: handler registration and error mapping, nothing else.

All the work happens in :class:`asya.k8s.reconcile.Reconciler`; this module is the only one that
imports kopf. The reconciler's :class:`~asya.errors.TransientError` becomes
``kopf.TemporaryError`` (kopf retries after the delay) and its
:class:`~asya.errors.PermanentError` becomes ``kopf.PermanentError`` (no retry until the
AsyncActor changes; the reason is already on its status).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from asya.errors import PermanentError, TransientError
from asya.k8s.api import ApiError, KubeApi
from asya.k8s.crd import GROUP, PLURAL, VERSION
from asya.k8s.reconcile import Reconciler, declare_with_transport
from asya.k8s.render import RenderOptions
from asya.k8s.settings import OperatorSettings

DEFAULT_RETRY_SECONDS = 10.0
REPLICAS_INTERVAL_SECONDS = 30.0

_log = logging.getLogger(__name__)


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(body))


async def reconcile(body: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """create / update / resume: apply the rendered objects and record the outcome."""
    reconciler: Reconciler = memo.reconciler
    try:
        await reconciler.reconcile(_plain(body))
    except TransientError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.retry_after or DEFAULT_RETRY_SECONDS) from exc
    except PermanentError as exc:
        raise kopf.PermanentError(str(exc)) from exc


async def deleted(body: Mapping[str, Any], **_: Any) -> None:
    """Children go with the actor through owner references; the queue and its messages stay."""
    metadata = body.get("metadata", {})
    _log.info(
        "AsyncActor %s/%s deleted; its objects are garbage-collected, queue %s is kept",
        metadata.get("namespace"),
        metadata.get("name"),
        (body.get("spec") or {}).get("queueName"),
    )


async def refresh_replicas(body: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """Keep status.replicas / readyReplicas current for ``kubectl get asya``."""
    reconciler: Reconciler = memo.reconciler
    try:
        await reconciler.refresh_replicas(_plain(body))
    except ApiError as exc:
        _log.warning("could not refresh replicas: %s", exc)


def build_registry() -> kopf.OperatorRegistry:
    """A registry with the AsyncActor handlers (a fresh one, so tests and runs never share)."""
    registry = kopf.OperatorRegistry()
    resource: dict[str, Any] = {"group": GROUP, "version": VERSION, "plural": PLURAL}
    kopf.on.create(**resource, id="reconcile", registry=registry)(reconcile)
    kopf.on.update(**resource, id="reconcile", registry=registry)(reconcile)
    kopf.on.resume(**resource, id="reconcile", registry=registry)(reconcile)
    kopf.on.delete(**resource, id="deleted", optional=True, registry=registry)(deleted)
    kopf.timer(
        **resource,
        id="replicas",
        interval=REPLICAS_INTERVAL_SECONDS,
        initial_delay=REPLICAS_INTERVAL_SECONDS,
        registry=registry,
    )(refresh_replicas)
    return registry


def make_memo(settings: OperatorSettings, api: KubeApi) -> kopf.Memo:
    reconciler = Reconciler(
        api,
        RenderOptions(sidecar_image=settings.sidecar_image),
        declare_with_transport if settings.declare_queues else None,
    )
    return kopf.Memo(reconciler=reconciler)


def run(settings: OperatorSettings) -> None:
    """Run the operator until SIGTERM (standalone: one replica, no peering objects needed)."""
    memo = make_memo(settings, KubeApi.connect())
    kopf.run(
        registry=build_registry(),
        memo=memo,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
