"""One reconciliation of an AsyncActor: apply what :func:`render` gives, declare the queue,
record the outcome on the status.

The order matters to users: the workload is applied first and stays running whatever happens to
scaling (KEDA missing, a refused ScaledObject) or to the broker. Every outcome is written to the
status conditions before a failure is raised, so ``kubectl get asya`` shows why. Failures come
out as :class:`~asya.errors.TransientError` (try again) or :class:`~asya.errors.PermanentError`
(fix the AsyncActor); the kopf layer maps them to its own retry types.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from asya.errors import PermanentError, TransientError
from asya.k8s.api import ApiError, KindNotServed, KubeApi, ObjectRef, ref_of
from asya.k8s.crd import InvalidActorError, actor_name, load_actor
from asya.k8s.render import KEDA_API_VERSION, RenderOptions, render, sidecar_exchange

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
QueueDeclarer = Callable[[str, str, str], Awaitable[None]]

WORKLOAD_READY = "WorkloadReady"
SCALING_READY = "ScalingReady"
KEDA_MISSING = "KEDA is not installed (keda.sh/v1alpha1 ScaledObject not served)"
KEDA_RETRY_SECONDS = 60.0
DECLARE_TIMEOUT_SECONDS = 15.0


async def declare_with_transport(url: str, exchange: str, queue: str) -> None:
    """Declare ``queue`` (and the exchange binding) on the broker at ``url``."""
    from asya.transports import open_transport

    transport = open_transport(url, exchange=exchange, connect_timeout=DECLARE_TIMEOUT_SECONDS)
    async with transport:
        await transport.declare_queue(queue)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[JsonObject],
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[JsonObject]:
    """``conditions`` with ``kind`` set; lastTransitionTime moves only when the status flips."""
    status = "True" if ok else "False"
    previous = next((c for c in conditions if c.get("type") == kind), None)
    changed = previous is None or previous.get("status") != status
    condition: JsonObject = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339()
        if changed or previous is None
        else previous.get("lastTransitionTime", now_rfc3339()),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return [*(c for c in conditions if c.get("type") != kind), condition]


@dataclass
class _Run:
    """The status being built during one reconciliation."""

    namespace: str
    name: str
    generation: int | None
    conditions: list[JsonObject]

    def condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        self.conditions = set_condition(self.conditions, kind, ok, reason, message, self.generation)


def _retry_or_give_up(error: ApiError, what: str) -> Exception:
    if error.retryable:
        return TransientError(f"{what}: {error}")
    return PermanentError(f"{what}: {error}")


class Reconciler:
    """Turns one AsyncActor body into applied objects, a declared queue and a status."""

    def __init__(
        self,
        api: KubeApi,
        options: RenderOptions,
        declare_queue: QueueDeclarer | None = declare_with_transport,
    ) -> None:
        self._api = api
        self._options = options
        self._declare_queue = declare_queue

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        # the kubernetes client is blocking: keep the operator's event loop free
        return await asyncio.to_thread(fn, *args)

    async def _write_status(self, run: _Run, extra: JsonObject) -> None:
        status = {"conditions": run.conditions, **extra}
        await self._call(self._api.patch_status, run.namespace, run.name, status)

    async def reconcile(self, body: Mapping[str, Any]) -> JsonObject:
        """Apply, declare, record. Returns the status written; raises on failure."""
        metadata = body.get("metadata", {})
        existing = (body.get("status") or {}).get("conditions") or []
        run = _Run(
            namespace=metadata.get("namespace", "default"),
            name=actor_name(body),
            generation=metadata.get("generation"),
            conditions=[dict(c) for c in existing],
        )
        try:
            actor = load_actor(body)
            objects = render(actor, self._options)
        except InvalidActorError as exc:
            run.condition(WORKLOAD_READY, False, "WorkloadFailed", str(exc))
            await self._write_status(run, {"observedGeneration": run.generation})
            raise PermanentError(str(exc)) from exc

        workload = next(o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job"))
        scaled = [o for o in objects if o["apiVersion"] == KEDA_API_VERSION]
        plain = [o for o in objects if o["apiVersion"] != KEDA_API_VERSION]
        status: JsonObject = {"observedGeneration": run.generation}

        try:
            for obj in plain:
                await self._call(self._api.apply, obj)
        except (ApiError, KindNotServed) as exc:
            run.condition(WORKLOAD_READY, False, "WorkloadFailed", str(exc))
            await self._write_status(run, status)
            if isinstance(exc, ApiError):
                raise _retry_or_give_up(exc, "applying the workload") from exc
            raise TransientError(str(exc)) from exc
        workload_ref = ref_of(workload)
        run.condition(
            WORKLOAD_READY,
            True,
            "WorkloadCreated",
            f"{workload_ref.kind} {workload_ref.name} applied",
        )
        status["workloadRef"] = {
            "apiVersion": workload_ref.api_version,
            "kind": workload_ref.kind,
            "name": workload_ref.name,
        }

        failure = await self._reconcile_scaling(run, scaled, status)
        kept = [ref_of(o) for o in objects]
        uid = metadata.get("uid")
        if uid:
            try:
                pruned = await self._call(self._api.prune, run.namespace, run.name, uid, kept)
            except ApiError as exc:
                failure = failure or _retry_or_give_up(exc, "removing stale children")
            else:
                for item in pruned:
                    logger.info("removed %s of AsyncActor %s/%s", item, run.namespace, run.name)

        declare_failure = await self._declare(actor["spec"], run)
        failure = failure or declare_failure
        await self._write_status(run, status)
        if failure is not None:
            raise failure
        return {"conditions": run.conditions, **status}

    async def _reconcile_scaling(
        self, run: _Run, scaled: list[JsonObject], status: JsonObject
    ) -> Exception | None:
        if not scaled:
            run.condition(SCALING_READY, True, "ScalingDisabled", "spec.scaling.enabled is false")
            status["scaledObjectRef"] = None
            return None
        scaled_object = next(o for o in scaled if o["kind"] == "ScaledObject")
        status["scaledObjectRef"] = None
        if not await self._call(self._api.served, KEDA_API_VERSION, "ScaledObject"):
            run.condition(SCALING_READY, False, "ScaledObjectFailed", KEDA_MISSING)
            return TransientError(KEDA_MISSING, retry_after=KEDA_RETRY_SECONDS)
        try:
            for obj in scaled:
                await self._call(self._api.apply, obj)
        except (ApiError, KindNotServed) as exc:
            if isinstance(exc, KindNotServed) or exc.status == 404:
                # KEDA's CRDs went away between discovery and apply
                run.condition(SCALING_READY, False, "ScaledObjectFailed", KEDA_MISSING)
                return TransientError(KEDA_MISSING, retry_after=KEDA_RETRY_SECONDS)
            run.condition(SCALING_READY, False, "ScaledObjectFailed", str(exc))
            return _retry_or_give_up(exc, "applying the ScaledObject")
        status["scaledObjectRef"] = {"name": scaled_object["metadata"]["name"]}
        run.condition(
            SCALING_READY,
            True,
            "ScaledObjectCreated",
            f"ScaledObject {scaled_object['metadata']['name']} applied",
        )
        return None

    async def _declare(self, spec: Mapping[str, Any], run: _Run) -> Exception | None:
        if self._declare_queue is None:
            return None
        queue = spec["queueName"]
        kind = spec["transport"].get("type", "rabbitmq")
        if kind == "sqs":
            return None  # an SQS sidecar declares its queue itself when it starts
        if kind == "nats":
            nats_url = spec["transport"]["nats"]["url"]
            try:
                await asyncio.wait_for(
                    self._declare_queue(nats_url, sidecar_exchange(spec), queue),
                    DECLARE_TIMEOUT_SECONDS * 2,
                )
            except Exception as exc:  # the sidecar can still declare it later
                logger.warning("could not declare queue %s: %s", queue, exc)
                return TransientError(f"declaring queue {queue} on {nats_url}: {exc}")
            return None
        rabbitmq = spec["transport"]["rabbitmq"]
        secret = rabbitmq["passwordSecretRef"]
        try:
            password = await self._call(
                self._api.read_secret, run.namespace, secret["name"], secret["key"]
            )
        except ApiError as exc:
            return TransientError(f"declaring queue {queue}: {exc}")
        exchange = next(
            (
                e.get("value", "asya")
                for e in spec["sidecar"].get("env", [])
                if e.get("name") == "ASYA_RABBITMQ_EXCHANGE"
            ),
            "asya",
        )
        url = (
            f"amqp://{quote(rabbitmq['username'], safe='')}:"
            f"{quote(password, safe='')}@{rabbitmq['host']}:{rabbitmq['port']}/"
        )
        try:
            await asyncio.wait_for(
                self._declare_queue(url, exchange, queue), DECLARE_TIMEOUT_SECONDS * 2
            )
        except Exception as exc:  # any broker failure: the sidecar can still declare it later
            logger.warning("could not declare queue %s: %s", queue, exc)
            return TransientError(f"declaring queue {queue} on {rabbitmq['host']}: {exc}")
        return None

    async def refresh_replicas(self, body: Mapping[str, Any]) -> JsonObject | None:
        """Copy the workload's replica counts into the status (for ``kubectl get asya``)."""
        metadata = body.get("metadata", {})
        status = body.get("status") or {}
        ref = status.get("workloadRef")
        if not ref:
            return None
        namespace = metadata.get("namespace", "default")
        counts = await self._call(
            self._api.workload_replicas,
            ObjectRef(ref["apiVersion"], ref["kind"], ref["name"]),
            namespace,
        )
        if counts is None:
            return None
        replicas, ready = counts
        if status.get("replicas") == replicas and status.get("readyReplicas") == ready:
            return None
        patch = {"replicas": replicas, "readyReplicas": ready}
        await self._call(self._api.patch_status, namespace, actor_name(body), patch)
        return patch
