"""The operator's kopf handlers against a fake kubernetes DynamicClient (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from asya.k8s import operator
from asya.k8s.api import KubeApi
from asya.k8s.reconcile import KEDA_MISSING
from asya.k8s.settings import OperatorSettings
from tests.helpers import RUNTIME_FILE, free_port
from tests.unit.k8s.factories import actor, container, template
from tests.unit.k8s.fake_kube import FakeDynamicClient, refused

SCALING = {"enabled": True, "minReplicas": 0, "maxReplicas": 4}
UID = "7f0c1a52-0000-4000-8000-000000000001"


def cluster_actor(generation: int = 1, **spec: Any) -> dict[str, Any]:
    """An AsyncActor as the API server hands it to the operator (uid, generation)."""
    return actor(metadata={"uid": UID, "generation": generation}, **spec)


def memo_for(client: FakeDynamicClient, *, declare_queues: bool = False) -> kopf.Memo:
    settings = OperatorSettings(sidecar_image="asya:test", declare_queues=declare_queues)
    return operator.make_memo(settings, KubeApi(client))


async def run_handler(client: FakeDynamicClient, body: dict[str, Any], **memo: Any) -> None:
    await operator.reconcile(body=body, memo=memo_for(client, **memo))


def applied_kinds(client: FakeDynamicClient) -> list[str]:
    return [call["kind"] for call in client.apply_calls]


def with_status(body: dict[str, Any], client: FakeDynamicClient) -> dict[str, Any]:
    updated = copy.deepcopy(body)
    updated["status"] = client.last_status()
    return updated


async def test_create_applies_every_object_and_records_ready_conditions() -> None:
    client = FakeDynamicClient()
    await run_handler(client, cluster_actor(scaling=SCALING))

    assert applied_kinds(client) == [
        "ConfigMap",
        "Deployment",
        "TriggerAuthentication",
        "ScaledObject",
    ]
    for call in client.apply_calls:
        assert call["namespace"] == "team-a"
        assert call["field_manager"] == "asya-operator"
        assert call["force_conflicts"] is True
    for obj in client.applied:
        assert obj["metadata"]["ownerReferences"][0]["uid"] == UID
    config_map = client.objects[("ConfigMap", "team-a", "doubler-asya-runtime")]
    assert config_map["data"]["asya_runtime.py"].encode() == RUNTIME_FILE.read_bytes()

    status = client.last_status()
    assert status["observedGeneration"] == 1
    assert status["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "doubler",
    }
    assert status["scaledObjectRef"] == {"name": "doubler"}
    workload = client.condition("WorkloadReady")
    assert (workload["status"], workload["reason"]) == ("True", "WorkloadCreated")
    scaling = client.condition("ScalingReady")
    assert (scaling["status"], scaling["reason"]) == ("True", "ScaledObjectCreated")


async def test_the_sidecar_image_comes_from_the_operator_settings() -> None:
    client = FakeDynamicClient()
    await run_handler(client, cluster_actor())
    deployment = client.objects[("Deployment", "team-a", "doubler")]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers if c["name"] == "asya-sidecar"] == ["asya:test"]


async def test_update_of_scaling_patches_the_scaled_object() -> None:
    client = FakeDynamicClient()
    await run_handler(client, cluster_actor(scaling=SCALING))
    first = client.condition("ScalingReady")["lastTransitionTime"]

    changed = cluster_actor(generation=2, scaling={**SCALING, "maxReplicas": 9})
    await run_handler(client, with_status(changed, client))

    scaled = client.objects[("ScaledObject", "team-a", "doubler")]
    assert scaled["spec"]["maxReplicaCount"] == 9
    assert client.last_status()["observedGeneration"] == 2
    # the condition stayed True, so its transition time did not move
    assert client.condition("ScalingReady")["lastTransitionTime"] == first
    assert client.condition("ScalingReady")["observedGeneration"] == 2


async def test_disabling_scaling_removes_the_scaled_object_and_fixes_replicas() -> None:
    client = FakeDynamicClient()
    await run_handler(client, cluster_actor(scaling=SCALING))
    disabled = cluster_actor(generation=2, workload={"replicas": 2})
    await run_handler(client, with_status(disabled, client))

    assert sorted(client.deleted) == [
        ("ScaledObject", "doubler"),
        ("TriggerAuthentication", "doubler-asya-rabbitmq"),
    ]
    assert client.objects[("Deployment", "team-a", "doubler")]["spec"]["replicas"] == 2
    assert "scaledObjectRef" not in client.last_status()
    assert client.condition("ScalingReady")["reason"] == "ScalingDisabled"


async def test_changing_the_workload_type_removes_the_old_workload() -> None:
    client = FakeDynamicClient()
    await run_handler(client, cluster_actor())
    await run_handler(
        client, with_status(cluster_actor(generation=2, workload={"type": "StatefulSet"}), client)
    )
    assert client.deleted == [("Deployment", "doubler")]
    assert ("StatefulSet", "team-a", "doubler") in client.objects
    assert client.last_status()["workloadRef"]["kind"] == "StatefulSet"


async def test_objects_not_owned_by_the_actor_are_never_pruned() -> None:
    client = FakeDynamicClient()
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "other",
            "namespace": "team-a",
            "labels": {"asya.io/actor": "doubler", "app.kubernetes.io/managed-by": "asya-operator"},
        },
    }
    client.objects[("Deployment", "team-a", "other")] = foreign
    await run_handler(client, cluster_actor(workload={"type": "StatefulSet"}))
    assert client.deleted == []


async def test_a_failing_apply_is_retried_and_the_workload_condition_is_false() -> None:
    client = FakeDynamicClient(failures={"Deployment": refused(500, "Internal Server Error")})
    with pytest.raises(kopf.TemporaryError):
        await run_handler(client, cluster_actor(scaling=SCALING))
    condition = client.condition("WorkloadReady")
    assert (condition["status"], condition["reason"]) == ("False", "WorkloadFailed")
    assert "Deployment doubler" in condition["message"]
    assert "ScaledObject" not in applied_kinds(client)


async def test_a_refused_apply_is_a_permanent_error_reported_on_the_status() -> None:
    client = FakeDynamicClient(failures={"Deployment": refused(422, "Unprocessable Entity")})
    with pytest.raises(kopf.PermanentError):
        await run_handler(client, cluster_actor())
    assert client.condition("WorkloadReady")["status"] == "False"


async def test_an_invalid_actor_is_a_permanent_error_with_the_reason_on_the_status() -> None:
    client = FakeDynamicClient()
    bad = cluster_actor(workload=template(container(), container("asya-sidecar")))
    with pytest.raises(kopf.PermanentError, match="asya-sidecar"):
        await run_handler(client, bad)
    assert client.apply_calls == []
    condition = client.condition("WorkloadReady")
    assert (condition["status"], condition["reason"]) == ("False", "WorkloadFailed")
    assert "is reserved for the sidecar" in condition["message"]


async def test_without_keda_the_workload_runs_and_scaling_is_not_ready() -> None:
    client = FakeDynamicClient(keda=False)
    with pytest.raises(kopf.TemporaryError) as caught:
        await run_handler(client, cluster_actor(scaling=SCALING))
    assert caught.value.delay == 60
    assert applied_kinds(client) == ["ConfigMap", "Deployment"]
    assert client.condition("WorkloadReady")["status"] == "True"
    scaling = client.condition("ScalingReady")
    assert (scaling["status"], scaling["reason"]) == ("False", "ScaledObjectFailed")
    assert scaling["message"] == KEDA_MISSING


async def test_a_scaled_object_kind_that_vanished_is_reported_as_keda_missing() -> None:
    client = FakeDynamicClient(failures={"ScaledObject": refused(404, "Not Found")})
    with pytest.raises(kopf.TemporaryError):
        await run_handler(client, cluster_actor(scaling=SCALING))
    assert client.condition("ScalingReady")["message"] == KEDA_MISSING
    assert client.condition("WorkloadReady")["status"] == "True"


async def test_a_refused_scaled_object_leaves_the_workload_ready() -> None:
    client = FakeDynamicClient(failures={"ScaledObject": refused(503, "Service Unavailable")})
    with pytest.raises(kopf.TemporaryError):
        await run_handler(client, cluster_actor(scaling=SCALING))
    assert client.condition("WorkloadReady")["status"] == "True"
    assert client.condition("ScalingReady")["reason"] == "ScaledObjectFailed"


async def test_the_replicas_timer_copies_workload_counts_into_the_status() -> None:
    client = FakeDynamicClient()
    body = cluster_actor()
    await run_handler(client, body)
    client.objects[("Deployment", "team-a", "doubler")]["status"] = {
        "replicas": 3,
        "readyReplicas": 2,
    }
    await operator.refresh_replicas(body=with_status(body, client), memo=memo_for(client))
    assert client.last_status()["replicas"] == 3
    assert client.last_status()["readyReplicas"] == 2


def test_the_registry_handles_create_update_resume_and_delete_of_async_actors() -> None:
    registry = operator.build_registry()
    handlers = registry._changing.get_all_handlers()  # kopf keeps no public listing
    reasons = {str(h.reason) for h in handlers if h.reason is not None}
    assert {"create", "update", "delete"} <= {r.split(".")[-1].lower() for r in reasons}
    assert any(h.initial for h in handlers)  # resume
    for handler in handlers:
        assert handler.selector.plural == "asyncactors"
        assert handler.selector.group == "asya.io"


# --- declaring the queue (the live broker test is tests/integration/k8s) -------------------


async def test_an_unreachable_broker_is_retried_and_the_workload_still_runs() -> None:
    client = FakeDynamicClient()
    client.add_secret("team-a", "rabbitmq-creds", {"pw": "guest"})
    body = cluster_actor(transport={"rabbitmq": {"host": "127.0.0.1", "port": free_port()}})
    with pytest.raises(kopf.TemporaryError, match="declaring queue test-doubler-queue"):
        await run_handler(client, body, declare_queues=True)
    assert "Deployment" in applied_kinds(client)
    assert client.condition("WorkloadReady")["status"] == "True"


async def test_a_missing_password_secret_is_retried() -> None:
    client = FakeDynamicClient()
    with pytest.raises(kopf.TemporaryError, match="rabbitmq-creds"):
        await run_handler(client, cluster_actor(), declare_queues=True)
