"""asya.yaml → AsyncActors, the tools ConfigMap and the crew (asya.k8s.mesh), all schema-valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asya.k8s.mesh import (
    Broker,
    MeshExportError,
    MeshObjects,
    MeshOptions,
    mesh_objects,
    resource_name,
)
from asya.k8s.render import render
from asya.up.config import load_config, parse_config
from tests.helpers import REPO_ROOT
from tests.unit.k8s.schemas import validate_object

EXAMPLES = [
    REPO_ROOT / "examples" / name / "asya.yaml" for name in ("quickstart", "document-pipeline")
]


def from_text(tmp_path: Path, text: str, image: str | None = "reg/app:1") -> MeshObjects:
    (tmp_path / "routes.yaml").write_text("tools: []\n")
    config = parse_config(text, tmp_path / "asya.yaml", "asya.yaml", {})
    return mesh_objects(config, MeshOptions(image=image))


def by_queue(objects: MeshObjects) -> dict[str, dict[str, Any]]:
    return {obj["spec"]["queueName"]: obj for obj in objects.actors}


def env_of(entries: list[dict[str, str]]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in entries}


def runtime_of(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["workload"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_object_of_an_example_and_everything_the_operator_makes_of_it_is_valid(
    path: Path,
) -> None:
    config = load_config(path, {})
    objects = mesh_objects(config, MeshOptions(image="registry.example.com/app:1"))
    assert [o["spec"]["queueName"] for o in objects.actors] == [a.name for a in config.actors]
    for obj in objects.all():
        validate_object(obj)
        if obj["kind"] == "AsyncActor":
            for child in render(obj):
                validate_object(child)


def test_the_document_pipeline_keeps_handler_mode_timeout_scaling_and_env() -> None:
    config = load_config(EXAMPLES[1], {})
    actors = by_queue(mesh_objects(config, MeshOptions(image="reg/doc:2")))
    summarize = actors["doc-summarize"]["spec"]
    assert summarize["scaling"] == {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 3,
        "queueLength": 2,
        "pollingInterval": 1,
        "cooldownPeriod": 5,
    }
    assert summarize["timeout"]["processing"] == 30
    assert "replicas" not in summarize["workload"]
    runtime = runtime_of(actors["doc-summarize"])
    assert runtime["image"] == "reg/doc:2"
    assert env_of(runtime["env"]) == {
        "ASYA_HANDLER": "handlers.summarize",
        "ASYA_HANDLER_MODE": "payload",
        "SUMMARY_SECONDS": "1",
    }
    assert env_of(summarize["sidecar"]["env"])["SUMMARY_SECONDS"] == "1"
    split = actors["doc-split"]
    assert env_of(runtime_of(split)["env"])["ASYA_HANDLER_MODE"] == "message"
    assert split["spec"]["workload"]["replicas"] == 1
    assert "scaling" not in split["spec"]


def test_the_scaled_object_follows_the_files_scaling_rule() -> None:
    config = load_config(EXAMPLES[1], {})
    actor = by_queue(mesh_objects(config, MeshOptions(image="reg/doc:2")))["doc-summarize"]
    scaled = next(o for o in render(actor) if o["kind"] == "ScaledObject")
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 3)
    assert scaled["spec"]["cooldownPeriod"] == 5
    assert scaled["spec"]["triggers"][0]["metadata"]["queueName"] == "doc-summarize"
    assert scaled["spec"]["triggers"][0]["metadata"]["value"] == "2"


def test_an_actors_image_field_wins_over_the_option(tmp_path: Path) -> None:
    objects = from_text(
        tmp_path,
        "actors:\n  - {name: a, handler: m.f, image: own/a:3}\n  - {name: b, handler: m.g}\n",
    )
    actors = by_queue(objects)
    assert runtime_of(actors["a"])["image"] == "own/a:3"
    assert runtime_of(actors["b"])["image"] == "reg/app:1"


def test_asya_up_accepts_the_image_field() -> None:
    config = parse_config(
        "actors: [{name: a, handler: m.f, image: x:1}]", Path("/t/asya.yaml"), "f"
    )
    assert config.actors[0].image == "x:1"


def test_actors_without_an_image_are_each_named(tmp_path: Path) -> None:
    text = "actors:\n  - {name: a, handler: m.f}\n  - {name: b, handler: m.g, image: x:1}\n"
    with pytest.raises(MeshExportError) as caught:
        from_text(tmp_path, text, image=None)
    assert caught.value.problems == [
        "actors[0] (a): no image: set image: on the actor or pass --image"
    ]


def test_crew_matches_deploy_crew_and_is_marked_standard() -> None:
    objects = mesh_objects(load_config(EXAMPLES[0], {}), MeshOptions(image="x:1"))
    assert objects.standard_crew
    for obj in objects.crew:
        name = obj["metadata"]["name"]
        assert obj == yaml.safe_load((REPO_ROOT / "deploy" / "crew" / f"{name}.yaml").read_text())


def test_without_a_gateway_the_crew_reports_nowhere(tmp_path: Path) -> None:
    objects = from_text(tmp_path, "actors: [{name: a, handler: m.f}]\n")
    assert not objects.standard_crew
    for obj in objects.crew:
        assert "ASYA_GATEWAY_URL" not in env_of(runtime_of(obj)["env"])


def test_crew_false_gives_no_crew(tmp_path: Path) -> None:
    objects = from_text(tmp_path, "crew: false\nactors: [{name: a, handler: m.f}]\n")
    assert objects.crew == ()


def test_the_tools_configmap_holds_the_tools_file_as_deploy_gateway_names_it() -> None:
    config = load_config(EXAMPLES[0], {})
    tools = mesh_objects(config, MeshOptions(image="x:1")).tools
    assert tools is not None
    assert tools["metadata"]["name"] == "asya-gateway-tools"
    assert config.gateway is not None
    assert tools["data"]["tools.yaml"] == config.gateway.tools.read_text()
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "gateway" / "deployment.yaml").read_text())
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tools", "configMap": {"name": "asya-gateway-tools"}} in volumes


def test_no_gateway_means_no_configmap_and_no_gateway_url(tmp_path: Path) -> None:
    objects = from_text(tmp_path, "actors: [{name: a, handler: m.f}]\n")
    assert objects.tools is None
    assert "sidecar" not in objects.actors[0]["spec"]


def test_a_bad_tools_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text("tools: [{description: no name}]\n")
    config = parse_config(
        "gateway: {tools: routes.yaml}\nactors: [{name: a, handler: m.f}]\n",
        tmp_path / "asya.yaml",
        "asya.yaml",
        {},
    )
    with pytest.raises(MeshExportError, match=r"gateway\.tools .*every tool needs a non-empty"):
        mesh_objects(config, MeshOptions(image="x:1"))


def test_a_broker_the_cluster_can_reach_is_kept_a_local_one_is_replaced() -> None:
    assert Broker.from_transport("sqlite:///.asya/queues.db") == Broker()
    assert Broker.from_transport("amqp://guest:guest@localhost:5672/") == Broker()
    remote = Broker.from_transport("amqp://ml:secret@rabbit.mq.svc:5673/")
    assert (remote.host, remote.port, remote.username) == ("rabbit.mq.svc", 5673, "ml")
    assert "secret" not in str(remote.transport())


def test_a_remote_broker_makes_the_crew_non_standard(tmp_path: Path) -> None:
    objects = from_text(
        tmp_path, "transport: amqp://u:p@rabbit.prod:5672/\nactors: [{name: a, handler: m.f}]\n"
    )
    assert not objects.standard_crew
    for obj in [*objects.actors, *objects.crew]:
        assert obj["spec"]["transport"]["rabbitmq"]["host"] == "rabbit.prod"


def test_an_sqs_mesh_stays_on_sqs_and_its_actors_and_crew_validate(tmp_path: Path) -> None:
    objects = from_text(
        tmp_path,
        "transport: sqs://?region=eu-west-1&prefix=ml-\nactors: [{name: a, handler: m.f}]\n",
    )
    assert not objects.standard_crew
    for obj in [*objects.actors, *objects.crew]:
        assert obj["spec"]["transport"] == {
            "type": "sqs",
            "sqs": {"region": "eu-west-1", "queuePrefix": "ml-"},
        }
        for rendered in render(obj):
            validate_object(rendered)


def test_an_sqs_mesh_without_a_region_is_refused_for_kubernetes(tmp_path: Path) -> None:
    with pytest.raises(MeshExportError, match="names no region"):
        from_text(tmp_path, "transport: sqs://\nactors: [{name: a, handler: m.f}]\n")


def test_exchange_and_crew_queue_names_reach_the_sidecars(tmp_path: Path) -> None:
    text = (
        "exchange: ml\nenv: {ASYA_STEP_HAPPY_END: done}\n"
        "actors: [{name: a, handler: m.f, env: {MODEL: small}}]\n"
    )
    objects = from_text(tmp_path, text)
    sidecar = env_of(objects.actors[0]["spec"]["sidecar"]["env"])
    assert sidecar["ASYA_RABBITMQ_EXCHANGE"] == "ml"
    assert sidecar["ASYA_STEP_HAPPY_END"] == "done"
    assert sidecar["MODEL"] == "small"
    assert [c["spec"]["queueName"] for c in objects.crew] == ["done", "error-end"]
    assert not objects.standard_crew


def test_queue_names_become_kubernetes_names() -> None:
    assert resource_name("Doc_Parse.v2") == "doc-parse-v2"
    assert resource_name("x" * 80) == "x" * 63


def test_two_queues_with_one_kubernetes_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MeshExportError, match=r"actors\[1\] \(doc\.parse\).*'doc-parse'"):
        from_text(
            tmp_path, "actors: [{name: doc_parse, handler: m.f}, {name: doc.parse, handler: m.g}]\n"
        )


def test_an_env_var_that_clashes_with_the_operator_is_refused_now(tmp_path: Path) -> None:
    text = "actors: [{name: a, handler: m.f, env: {ASYA_SOCKET_PATH: /tmp/x.sock}}]\n"
    with pytest.raises(MeshExportError, match=r"actors\[0\] \(a\): .*ASYA_SOCKET_PATH"):
        from_text(tmp_path, text)


def test_timeouts_round_up_to_whole_seconds(tmp_path: Path) -> None:
    objects = from_text(tmp_path, "actors: [{name: a, handler: m.f, timeout: 1500ms}]\n")
    assert objects.actors[0]["spec"]["timeout"] == {"processing": 2, "gracefulShutdown": 12}
