"""`asya k8s render asya.yaml` and `asya k8s export asya.yaml -o DIR`, run as a user would; the
exported folder builds with `kubectl kustomize` into valid objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from asya.k8s.kustomize import BaseNotFoundError, Bases
from tests.helpers import REPO_ROOT
from tests.unit.k8s.schemas import validate_object
from tests.unit.k8s.test_cli import run_asya
from tests.unit.k8s.test_deploy import kubectl

QUICKSTART = REPO_ROOT / "examples" / "quickstart" / "asya.yaml"
DOCUMENTS = REPO_ROOT / "examples" / "document-pipeline" / "asya.yaml"


def kustomize(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def export(source: Path, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_asya("k8s", "export", str(source), "-o", str(folder), *options)


def names(objects: list[dict[str, Any]], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == kind}


def test_render_of_an_asya_yaml_prints_actors_tools_and_crew() -> None:
    result = run_asya("k8s", "render", str(QUICKSTART), "--image", "reg/quick:1", "-n", "ml")
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "asya-gateway-tools"),
        ("AsyncActor", "test-doubler-queue"),
        ("AsyncActor", "test-incrementer-queue"),
        ("AsyncActor", "happy-end"),
        ("AsyncActor", "error-end"),
    ]
    for obj in objects:
        assert obj["metadata"]["namespace"] == "ml"
        validate_object(obj)


def test_render_of_an_asya_yaml_without_an_image_names_each_actor() -> None:
    result = run_asya("k8s", "render", str(QUICKSTART))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "actors[0] (test-doubler-queue): no image" in result.stderr
    assert "actors[1] (test-incrementer-queue): no image" in result.stderr


def test_an_invalid_asya_yaml_lists_its_problems_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "asya.yaml"
    path.write_text("actors:\n  - name: a\n    handler: nodots\n")
    result = run_asya("k8s", "render", str(path), "--image", "x:1")
    assert result.returncode == 1
    assert f"{path}:3: actors[0].handler" in result.stderr


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n", "Secret 'db' (v1)"),
        ("model: bert\nbatch: 4\n", "a mapping with keys model, batch"),
        ("- 1\n- 2\n", "a list of 2 items"),
        ("", "nothing (the file is empty)"),
    ],
)
def test_input_that_is_neither_exits_1_naming_what_it_found(text: str, found: str) -> None:
    result = run_asya("k8s", "render", "-", stdin=text)
    assert result.returncode == 1
    assert "neither AsyncActors" in result.stderr
    assert found in result.stderr
    assert result.stdout == ""


def test_a_stray_non_object_beside_actors_is_named(tmp_path: Path) -> None:
    actor = (REPO_ROOT / "examples" / "kubernetes" / "echo-deployment.yaml").read_text()
    result = run_asya("k8s", "render", "-", stdin=actor + "\n---\nfoo: 1\n")
    assert result.returncode == 1
    assert "not a Kubernetes object: a mapping with keys foo" in result.stderr


def test_export_builds_with_kustomize_into_valid_objects(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    result = export(DOCUMENTS, folder, "--image", "reg/doc:1", "-n", "ml")
    assert result.returncode == 0, result.stderr
    objects = kustomize(folder)
    for obj in objects:
        validate_object(obj)
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "ml", obj["metadata"]["name"]
    assert names(objects, "AsyncActor") == {
        "doc-parse",
        "doc-split",
        "doc-keywords",
        "doc-summarize",
        "happy-end",
        "error-end",
    }
    assert {"asya-operator", "asya-gateway"} <= names(objects, "Deployment")
    assert names(objects, "CustomResourceDefinition") == {"asyncactors.asya.io"}
    (tools,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert tools["data"]["tools.yaml"] == (DOCUMENTS.parent / "gateway-routes.yaml").read_text()


def test_export_ties_the_folder_to_deploys_bases(tmp_path: Path) -> None:
    """The structure kustomize relies on, checked without kubectl."""
    folder = tmp_path / "out"
    assert export(QUICKSTART, folder, "--image", "x:1").returncode == 0
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    bases = [r for r in kustomization["resources"] if not r.endswith(".yaml")]
    assert [Path(b).name for b in bases] == ["crd", "operator", "gateway", "crew"]
    for base in bases:
        resolved = (folder / base).resolve()
        assert resolved.parent == REPO_ROOT / "deploy"
        assert (resolved / "kustomization.yaml").is_file()
    files = [r for r in kustomization["resources"] if r.endswith(".yaml")]
    assert files == ["actors/test-doubler-queue.yaml", "actors/test-incrementer-queue.yaml"]
    for relative in [*files, *(p["path"] for p in kustomization["patches"])]:
        for obj in yaml.safe_load_all((folder / relative).read_text()):
            validate_object(obj)


def test_export_writes_its_own_crew_when_deploys_would_not_fit(tmp_path: Path) -> None:
    source = tmp_path / "asya.yaml"
    source.write_text(
        "transport: amqp://u:p@rabbit.prod:5672/\nactors: [{name: a, handler: m.f}]\n"
    )
    folder = tmp_path / "out"
    result = export(source, folder, "--image", "x:1", "--base", str(REPO_ROOT / "deploy"))
    assert result.returncode == 0, result.stderr
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert "crew/happy-end.yaml" in resources
    assert not any(r.endswith("/gateway") or r.endswith("/crew") for r in resources)
    objects = kustomize(folder)
    crew = [o for o in objects if o["metadata"]["name"] in ("happy-end", "error-end")]
    assert {o["spec"]["transport"]["rabbitmq"]["host"] for o in crew} == {"rabbit.prod"}


def test_export_points_at_a_remote_base_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    remote = "github.com/acme/asya//deploy?ref=v0.1.0"
    assert export(QUICKSTART, folder, "--image", "x:1", "--base", remote).returncode == 0
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert resources[:2] == [
        "github.com/acme/asya//deploy/crd?ref=v0.1.0",
        "github.com/acme/asya//deploy/operator?ref=v0.1.0",
    ]


def test_export_without_a_deploy_folder_asks_for_base(tmp_path: Path) -> None:
    source = tmp_path / "asya.yaml"
    source.write_text("actors: [{name: a, handler: m.f, image: x:1}]\n")
    with pytest.raises(BaseNotFoundError, match="no deploy/ folder"):
        Bases.resolve(None, tmp_path / "out", tmp_path)


def test_export_refuses_an_asyncactor_file(tmp_path: Path) -> None:
    result = export(REPO_ROOT / "deploy" / "crew" / "happy-end.yaml", tmp_path / "out")
    assert result.returncode == 1
    assert "not an asya.yaml" in result.stderr
    assert "AsyncActor 'happy-end'" in result.stderr
    assert not (tmp_path / "out").exists()
