"""deploy/: every kustomize base and the overlay build, and every object in them is valid."""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from asya.k8s.api import CHILD_KINDS
from asya.k8s.render import render
from tests.helpers import REPO_ROOT
from tests.unit.k8s.schemas import validate_object

DEPLOY = REPO_ROOT / "deploy"
BASES = ["crd", "operator", "gateway", "crew", "examples"]
OVERLAY = "overlays/local"


@functools.cache
def kubectl() -> str:
    """The kubectl binary; installs Debian's kubernetes-client when missing and possible."""
    found = shutil.which("kubectl")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "kubernetes-client"],
            capture_output=True,
            timeout=300,
            check=False,
        )
        found = shutil.which("kubectl")
    if found is None:
        pytest.skip(
            "kubectl is not installed and could not be installed (apt-get "
            "kubernetes-client); the kustomize builds cannot be checked"
        )
    return found


@functools.cache
def build(path: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize deploy/{path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("path", [*BASES, OVERLAY])
def test_kustomize_builds_and_every_object_is_valid(path: str) -> None:
    objects = build(path)
    assert objects
    for obj in objects:
        validate_object(obj)


def test_the_overlay_brings_every_base_into_one_namespace() -> None:
    objects = build(OVERLAY)
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "ClusterRole", "Deployment", "Job", "AsyncActor"} <= kinds
    for obj in objects:
        if obj["kind"] not in (
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "Namespace",
        ):
            assert obj["metadata"]["namespace"] == "asya", obj["metadata"]["name"]
    binding = find(objects, "ClusterRoleBinding", "asya-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "asya-operator", "namespace": "asya"}
    ]


def test_the_overlay_provides_every_secret_its_objects_read() -> None:
    objects = build(OVERLAY)
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    refs: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                refs.append((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            if "passwordSecretRef" in node:
                refs.append((node["passwordSecretRef"]["name"], node["passwordSecretRef"]["key"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([o for o in objects if o["kind"] != "CustomResourceDefinition"])
    assert refs
    for name, key in refs:
        assert name in secrets, f"Secret {name} is not in the overlay"
        assert key in secrets[name]["data"], f"Secret {name} has no key {key}"


def _rules() -> list[dict[str, Any]]:
    return find(build("operator"), "ClusterRole", "asya-operator")["rules"]


def _allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in _rules()
    )


def test_operator_rbac_grants_no_wildcards() -> None:
    for rule in _rules():
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]


@pytest.mark.parametrize(("api_version", "kind"), CHILD_KINDS)
def test_operator_rbac_covers_apply_and_prune_of_every_child_kind(
    api_version: str, kind: str
) -> None:
    group = api_version.rpartition("/")[0]
    resource = kind.lower() + "s"
    for verb in ("create", "patch", "list", "delete"):
        assert _allowed(group, resource, verb), f"{verb} {resource}.{group}"


def test_operator_rbac_covers_watching_actors_and_writing_their_status() -> None:
    for verb in ("get", "list", "watch", "patch"):
        assert _allowed("asya.io", "asyncactors", verb)
    assert _allowed("asya.io", "asyncactors/status", "patch")
    assert _allowed("", "secrets", "get")
    assert not _allowed("", "secrets", "list")
    assert _allowed("", "events", "create")


def test_operator_runs_asya_operator_as_a_non_root_single_replica() -> None:
    deployment = find(build("operator"), "Deployment", "asya-operator")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == "asya-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["command"] == ["asya", "operator"]


def test_gateway_reads_its_settings_from_the_spec_variables() -> None:
    objects = build("gateway")
    pod = find(objects, "Deployment", "asya-gateway")["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    assert gateway["command"] == ["asya", "gateway"]
    env = env_of(gateway)
    assert env["ASYA_GATEWAY_PORT"] == "8080"
    assert env["ASYA_CONFIG_PATH"] == "/etc/asya/tools.yaml"
    assert env["ASYA_DATABASE_URL"] == {"secretKeyRef": {"name": "asya-gateway-db", "key": "url"}}
    assert env["ASYA_RABBITMQ_URL"].startswith("amqp://")
    tools = find(objects, "ConfigMap", "asya-gateway-tools")
    mount = gateway["volumeMounts"][0]
    assert mount["mountPath"] == "/etc/asya"
    assert "tools.yaml" in tools["data"]
    assert yaml.safe_load(tools["data"]["tools.yaml"])["tools"]
    service = find(objects, "Service", "asya-gateway")
    assert service["spec"]["selector"].items() <= pod_labels(objects).items()


def pod_labels(objects: list[dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = find(objects, "Deployment", "asya-gateway")["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def test_gateway_migration_job_runs_asya_gateway_migrate() -> None:
    job = find(build("gateway"), "Job", "asya-gateway-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["asya", "gateway", "migrate"]
    assert "ASYA_DATABASE_URL" in env_of(migrate)


@pytest.mark.parametrize("role", ["happy-end", "error-end"])
def test_crew_actors_run_terminal_message_mode_handlers_without_validation(role: str) -> None:
    crew = find(build("crew"), "AsyncActor", role)
    assert crew["spec"]["queueName"] == role
    runtime = crew["spec"]["workload"]["template"]["spec"]["containers"][0]
    env = env_of(runtime)
    assert env["ASYA_HANDLER_MODE"] == "message"
    assert env["ASYA_ENABLE_VALIDATION"] == "false"
    module, _, function = env["ASYA_HANDLER"].rpartition(".")
    assert module == f"asya.crew.{role.replace('-', '_')}"
    assert callable(getattr(importlib.import_module(module), function))
    assert env_of({"env": crew["spec"]["sidecar"]["env"]})["ASYA_IS_TERMINAL"] == "true"


def test_quickstart_pipeline_is_doubler_then_incrementer_matching_the_gateway_tool() -> None:
    actors = {o["metadata"]["name"]: o for o in build("examples") if o["kind"] == "AsyncActor"}
    queues = [actors[name]["spec"]["queueName"] for name in ("test-doubler", "test-incrementer")]
    tools = yaml.safe_load(
        find(build("gateway"), "ConfigMap", "asya-gateway-tools")["data"]["tools.yaml"]
    )
    assert queues in [tool["route"] for tool in tools["tools"]]


def test_quickstart_handlers_compute_ten_to_twenty_five() -> None:
    namespace: dict[str, Any] = {}
    exec((DEPLOY / "examples" / "handlers.py").read_text(), namespace)
    doubled = namespace["pipeline_doubler"]({"value": 10})
    assert namespace["pipeline_incrementer"](doubled) == {"value": 25}


@pytest.mark.parametrize("path", ["crew", "examples", OVERLAY])
def test_actors_in_deploy_render_into_valid_objects(path: str) -> None:
    actors = [o for o in build(path) if o["kind"] == "AsyncActor"]
    assert actors
    for actor in actors:
        for obj in render(actor):
            validate_object(obj)


def test_dockerfile_builds_a_non_root_image_with_every_extra() -> None:
    lines = [line.strip() for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()]
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install") and '".[all]"' in line for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
