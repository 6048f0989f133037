"""The AsyncActor CRD: a valid Kubernetes object, and the checks it makes on actors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from asya.k8s.crd import RULES, InvalidActorError, cel_rules, crd_manifest, crd_yaml, load_actor
from tests.helpers import REPO_ROOT
from tests.unit.k8s.factories import actor, container, template
from tests.unit.k8s.schemas import KUBERNETES_VERSION

DEPLOY_CRD = REPO_ROOT / "deploy" / "crd" / "asyncactors.asya.io.yaml"


def problems_of(obj: dict[str, Any]) -> str:
    with pytest.raises(InvalidActorError) as caught:
        load_actor(obj)
    return "\n".join(caught.value.problems)


def test_crd_is_a_valid_kubernetes_1_30_custom_resource_definition() -> None:
    kubernetes_validate.validate(crd_manifest(), KUBERNETES_VERSION, strict=True)


def test_crd_names_the_resource_as_the_spec_says() -> None:
    spec = crd_manifest()["spec"]
    assert crd_manifest()["metadata"]["name"] == "asyncactors.asya.io"
    assert spec["group"] == "asya.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "AsyncActor"
    assert spec["names"]["shortNames"] == ["asya"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns_show_queue_workload_readiness_replicas_and_age() -> None:
    columns = {
        c["name"]: c["jsonPath"]
        for c in crd_manifest()["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Queue"] == ".spec.queueName"
    assert columns["Workload"] == ".spec.workload.type"
    assert "WorkloadReady" in columns["Ready"]
    assert columns["Replicas"] == ".status.replicas"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_deploy_crd_is_the_crd_the_package_ships() -> None:
    assert DEPLOY_CRD.read_text(encoding="utf-8") == crd_yaml()


def test_every_cel_rule_has_a_python_equivalent() -> None:
    declared = {(path, message) for path, _, message in cel_rules()}
    assert declared == {(path, message) for message, (path, _) in RULES.items()}


def test_defaults_are_filled_in_as_the_api_server_would() -> None:
    loaded = load_actor(actor())
    spec = loaded["spec"]
    assert spec["scaling"] == {
        "enabled": False,
        "minReplicas": 0,
        "maxReplicas": 50,
        "pollingInterval": 10,
        "cooldownPeriod": 60,
        "queueLength": 5,
    }
    assert spec["workload"]["type"] == "Deployment"
    assert spec["workload"]["replicas"] == 1
    assert spec["timeout"] == {"processing": 300, "gracefulShutdown": 30}
    assert spec["socket"]["maxSize"] == 104857600
    assert spec["sidecar"]["imagePullPolicy"] == "IfNotPresent"


def test_defaults_never_replace_values_the_user_set() -> None:
    loaded = load_actor(actor(scaling={"enabled": True, "maxReplicas": 3}))
    assert loaded["spec"]["scaling"]["maxReplicas"] == 3
    assert loaded["spec"]["scaling"]["minReplicas"] == 0


def test_negative_min_replicas_is_refused() -> None:
    assert "spec.scaling.minReplicas" in problems_of(actor(scaling={"minReplicas": -1}))


def test_max_replicas_below_min_replicas_is_refused() -> None:
    problems = problems_of(actor(scaling={"minReplicas": 5, "maxReplicas": 2}))
    assert "maxReplicas must be greater than or equal to scaling.minReplicas" in problems


def test_unknown_workload_type_is_refused_naming_the_allowed_ones() -> None:
    problems = problems_of(actor(workload={"type": "DaemonSet"}))
    assert "spec.workload.type" in problems
    assert "Deployment" in problems
    assert "StatefulSet" in problems
    assert "Job" in problems


def test_missing_queue_name_is_refused() -> None:
    obj = actor()
    del obj["spec"]["queueName"]
    assert "'queueName' is a required property" in problems_of(obj)


def test_a_misspelt_field_is_refused_rather_than_ignored() -> None:
    problems = problems_of(actor(scaling={"maxReplica": 3}))
    assert "maxReplica" in problems
    assert "spec.scaling" in problems


def test_scaling_a_job_is_refused() -> None:
    problems = problems_of(actor(scaling={"enabled": True}, workload={"type": "Job"}))
    assert "not supported for workload.type Job" in problems


def test_volume_claim_templates_need_a_stateful_set() -> None:
    problems = problems_of(actor(workload={"volumeClaimTemplates": [{"metadata": {"name": "d"}}]}))
    assert "only allowed with workload.type StatefulSet" in problems


def test_a_template_without_containers_is_refused() -> None:
    problems = problems_of(actor(workload={"template": {"spec": {"containers": []}}}))
    assert "spec.workload.template.spec.containers" in problems


def test_every_problem_is_reported_at_once() -> None:
    obj = actor(scaling={"minReplicas": -1, "pollingInterval": 0}, timeout={"processing": 0})
    problems = problems_of(obj)
    assert "minReplicas" in problems
    assert "pollingInterval" in problems
    assert "processing" in problems


def test_a_wrong_kind_is_refused() -> None:
    obj = actor()
    obj["kind"] = "AsyncActr"
    assert "expected apiVersion asya.io/v1alpha1 and kind AsyncActor" in problems_of(obj)


def test_a_socket_path_needs_its_own_folder() -> None:
    assert "spec.socket.path" in problems_of(actor(socket={"path": "/app.sock"}))


def _sample_actors() -> list[tuple[str, dict[str, Any]]]:
    files = [
        *sorted((REPO_ROOT / "examples" / "kubernetes").glob("*.yaml")),
        *sorted((REPO_ROOT / "deploy" / "examples").glob("*.yaml")),
        *sorted((REPO_ROOT / "deploy" / "crew").glob("*.yaml")),
    ]
    samples = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "AsyncActor":
                samples.append((str(Path(path).relative_to(REPO_ROOT)), doc))
    return samples


SAMPLES = _sample_actors()


def test_there_are_sample_actors_for_every_workload_type() -> None:
    types = {doc["spec"]["workload"].get("type", "Deployment") for _, doc in SAMPLES}
    assert types == {"Deployment", "StatefulSet", "Job"}


@pytest.mark.parametrize(("path", "doc"), SAMPLES, ids=[p for p, _ in SAMPLES])
def test_sample_actor_validates_against_the_crd(path: str, doc: dict[str, Any]) -> None:
    load_actor(doc)


def test_a_user_container_with_gpu_limits_is_accepted() -> None:
    gpu = container(resources={"limits": {"nvidia.com/gpu": 1}})
    load_actor(actor(workload=template(gpu)))
