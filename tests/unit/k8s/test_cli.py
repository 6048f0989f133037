"""`asya k8s render FILE` and `asya k8s crd`, run as a user would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT, RUNTIME_FILE, asya_command, child_env
from tests.unit.k8s.factories import actor

EXAMPLES = sorted((REPO_ROOT / "examples" / "kubernetes").glob("*.yaml"))


def run_asya(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        asya_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        check=False,
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_render_prints_the_objects_of_an_example(path: Path) -> None:
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "ConfigMap"
    assert {"Deployment", "StatefulSet", "Job"} & set(kinds)


def test_rendered_yaml_keeps_the_runtime_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "actor.yaml"
    path.write_text(yaml.safe_dump(actor()))
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 0, result.stderr
    config_map = next(yaml.safe_load_all(result.stdout))
    assert config_map["data"]["asya_runtime.py"].encode("utf-8") == RUNTIME_FILE.read_bytes()


def test_render_handles_several_actors_and_passes_other_kinds_through(tmp_path: Path) -> None:
    second = actor(metadata={"name": "incrementer"}, queueName="test-incrementer-queue")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "rabbitmq-creds"},
        "stringData": {"pw": "x"},
    }
    path = tmp_path / "actors.yaml"
    path.write_text(yaml.safe_dump_all([actor(), secret, second]))
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 0, result.stderr
    names = [(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(result.stdout)]
    assert ("Deployment", "doubler") in names
    assert ("Deployment", "incrementer") in names
    assert ("Secret", "rabbitmq-creds") in names


def test_render_reads_standard_input() -> None:
    result = run_asya("k8s", "render", "-", stdin=yaml.safe_dump(actor()))
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


def test_render_puts_actors_without_a_namespace_into_the_one_given() -> None:
    obj = actor()
    del obj["metadata"]["namespace"]
    result = run_asya("k8s", "render", "-n", "ml", "-", stdin=yaml.safe_dump(obj))
    assert result.returncode == 0, result.stderr
    assert {o["metadata"]["namespace"] for o in yaml.safe_load_all(result.stdout)} == {"ml"}


def test_an_invalid_actor_exits_non_zero_naming_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(actor(scaling={"minReplicas": -1, "maxReplicas": 0})))
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "invalid AsyncActor 'doubler'" in result.stderr
    assert "spec.scaling.minReplicas" in result.stderr
    assert "spec.scaling.maxReplicas" in result.stderr


def test_a_clash_with_the_sidecar_exits_non_zero_with_the_field(tmp_path: Path) -> None:
    obj = actor()
    obj["spec"]["workload"]["template"]["spec"]["containers"][0]["name"] = "asya-sidecar"
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump(obj))
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 1
    assert "containers[0].name: 'asya-sidecar' is reserved" in result.stderr


def test_a_file_that_is_not_yaml_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec: [unclosed\n")
    result = run_asya("k8s", "render", str(path))
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr


def test_a_missing_file_exits_with_a_usage_error() -> None:
    result = run_asya("k8s", "render", "/nonexistent/actor.yaml")
    assert result.returncode == 2
    assert "/nonexistent/actor.yaml" in result.stderr


def test_crd_command_prints_the_custom_resource_definition() -> None:
    result = run_asya("k8s", "crd")
    assert result.returncode == 0, result.stderr
    crd = yaml.safe_load(result.stdout)
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "asyncactors.asya.io"
