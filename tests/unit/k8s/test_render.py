"""Rendering an AsyncActor into Kubernetes objects (pure: no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from asya.k8s.crd import InvalidActorError
from asya.k8s.render import RenderOptions, render
from tests.helpers import RUNTIME_FILE
from tests.unit.k8s.factories import actor, container, template
from tests.unit.k8s.schemas import validate_object

SCALING = {
    "enabled": True,
    "minReplicas": 1,
    "maxReplicas": 7,
    "queueLength": 3,
    "pollingInterval": 4,
    "cooldownPeriod": 45,
}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [item for item in items if item["name"] == name]
    assert len(matches) == 1, f"{name} not found once in {[i['name'] for i in items]}"
    return matches[0]


def env_of(container_: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_["env"]}


def render_error(obj: dict[str, Any]) -> str:
    with pytest.raises(InvalidActorError) as caught:
        render(obj)
    return str(caught.value)


# --- the objects -----------------------------------------------------------------------------


def test_scaling_actor_renders_config_map_trigger_auth_deployment_and_scaled_object() -> None:
    kinds = [o["kind"] for o in render(actor(scaling=SCALING))]
    assert kinds == ["ConfigMap", "TriggerAuthentication", "Deployment", "ScaledObject"]


def test_without_scaling_there_is_no_scaled_object_and_replicas_come_from_the_workload() -> None:
    objects = by_kind(render(actor(workload={"replicas": 3})))
    assert set(objects) == {"ConfigMap", "Deployment"}
    assert objects["Deployment"]["spec"]["replicas"] == 3


def test_with_scaling_the_autoscaler_owns_replicas() -> None:
    deployment = by_kind(render(actor(scaling=SCALING, workload={"replicas": 3})))["Deployment"]
    assert "replicas" not in deployment["spec"]


def test_config_map_holds_the_runtime_file_byte_for_byte() -> None:
    config_map = by_kind(render(actor()))["ConfigMap"]
    assert config_map["data"]["asya_runtime.py"].encode("utf-8") == RUNTIME_FILE.read_bytes()


def test_every_object_carries_the_standard_labels_and_the_actor_namespace() -> None:
    for obj in render(actor(scaling=SCALING)):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "doubler"
        assert labels["app.kubernetes.io/part-of"] == "asya"
        assert labels["app.kubernetes.io/managed-by"] == "asya-operator"
        assert labels["app.kubernetes.io/component"]
        assert obj["metadata"]["namespace"] == "team-a"


def test_every_child_is_owned_by_the_actor_when_it_has_a_uid() -> None:
    objects = render(actor(metadata={"uid": "1234-abcd"}, scaling=SCALING))
    for obj in objects:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "asya.io/v1alpha1",
            "kind": "AsyncActor",
            "name": "doubler",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_an_actor_read_from_a_file_has_no_uid_so_no_owner_references() -> None:
    assert all("ownerReferences" not in o["metadata"] for o in render(actor(scaling=SCALING)))


# --- the pod ---------------------------------------------------------------------------------


def test_user_container_runs_the_mounted_runtime_with_its_own_handler() -> None:
    pod = pod_spec(by_kind(render(actor()))["Deployment"])
    runtime = named(pod["containers"], "handler")
    assert runtime["command"] == ["python", "/opt/asya/asya_runtime.py"]
    assert runtime["image"] == "python:3.11-slim"
    env = env_of(runtime)
    assert env["ASYA_HANDLER"] == "handlers.double"
    assert env["ASYA_SOCKET_PATH"] == "/var/run/asya/asya-runtime.sock"
    assert env["ASYA_RUNTIME_TIMEOUT"] == "300s"
    mount = named(runtime["volumeMounts"], "asya-runtime")
    assert mount == {"name": "asya-runtime", "mountPath": "/opt/asya", "readOnly": True}
    volume = named(pod["volumes"], "asya-runtime")
    assert volume["configMap"]["name"] == "doubler-asya-runtime"


def test_the_container_named_asya_runtime_is_the_handler_even_when_not_first() -> None:
    helper = {"name": "metrics-exporter", "image": "prom/statsd-exporter"}
    pod = pod_spec(
        by_kind(render(actor(workload=template(helper, container("asya-runtime")))))["Deployment"]
    )
    assert "command" not in named(pod["containers"], "metrics-exporter")
    assert named(pod["containers"], "asya-runtime")["command"][0] == "python"


def test_sidecar_is_configured_from_the_spec_and_the_transport() -> None:
    obj = actor(
        timeout={"processing": 42, "gracefulShutdown": 50},
        sidecar={"image": "registry/asya:1.2", "metricsPort": 9200},
    )
    pod = pod_spec(by_kind(render(obj))["Deployment"])
    sidecar = named(pod["containers"], "asya-sidecar")
    assert sidecar["command"] == ["asya", "sidecar"]
    assert sidecar["image"] == "registry/asya:1.2"
    env = env_of(sidecar)
    assert env["ASYA_QUEUE_NAME"] == "test-doubler-queue"
    assert env["ASYA_RUNTIME_TIMEOUT"] == "42s"
    assert (
        env["ASYA_SOCKET_PATH"] == env_of(named(pod["containers"], "handler"))["ASYA_SOCKET_PATH"]
    )
    assert env["ASYA_METRICS_ADDR"] == ":9200"
    assert named(sidecar["ports"], "metrics")["containerPort"] == 9200
    assert pod["terminationGracePeriodSeconds"] == 50


def test_broker_password_comes_from_the_secret_and_is_expanded_into_the_url() -> None:
    sidecar = named(pod_spec(by_kind(render(actor()))["Deployment"])["containers"], "asya-sidecar")
    names = [e["name"] for e in sidecar["env"]]
    password = named(sidecar["env"], "ASYA_RABBITMQ_PASSWORD")
    assert password["valueFrom"] == {"secretKeyRef": {"name": "rabbitmq-creds", "key": "pw"}}
    url = named(sidecar["env"], "ASYA_RABBITMQ_URL")["value"]
    assert url == (
        "amqp://$(ASYA_RABBITMQ_USERNAME):$(ASYA_RABBITMQ_PASSWORD)@rabbitmq.messaging.svc:5673/"
    )
    # $(VAR) expands only variables defined earlier in the list
    assert names.index("ASYA_RABBITMQ_PASSWORD") < names.index("ASYA_RABBITMQ_URL")
    assert names.index("ASYA_RABBITMQ_USERNAME") < names.index("ASYA_RABBITMQ_URL")
    assert named(sidecar["env"], "ASYA_RABBITMQ_USERNAME")["value"] == "asya"


def test_sidecar_image_defaults_to_the_operator_setting() -> None:
    objects = render(actor(), RenderOptions(sidecar_image="example.org/asya:9"))
    sidecar = named(pod_spec(by_kind(objects)["Deployment"])["containers"], "asya-sidecar")
    assert sidecar["image"] == "example.org/asya:9"


def test_runtime_and_sidecar_share_the_socket_folder_through_an_empty_dir() -> None:
    pod = pod_spec(by_kind(render(actor(socket={"path": "/run/sockets/x.sock"})))["Deployment"])
    assert named(pod["volumes"], "asya-socket") == {"name": "asya-socket", "emptyDir": {}}
    for name in ("handler", "asya-sidecar"):
        mount = named(named(pod["containers"], name)["volumeMounts"], "asya-socket")
        assert mount["mountPath"] == "/run/sockets"


def test_probes_check_the_runtime_socket_and_the_sidecar_health_endpoint() -> None:
    pod = pod_spec(by_kind(render(actor()))["Deployment"])
    runtime = named(pod["containers"], "handler")
    assert runtime["readinessProbe"]["exec"]["command"] == [
        "test",
        "-S",
        "/var/run/asya/asya-runtime.sock",
    ]
    sidecar = named(pod["containers"], "asya-sidecar")
    for probe in ("readinessProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/health", "port": "metrics"}


def test_probes_the_user_wrote_are_kept() -> None:
    own = {"httpGet": {"path": "/ready", "port": 8000}}
    pod = pod_spec(
        by_kind(render(actor(workload=template(container(readinessProbe=own)))))["Deployment"]
    )
    assert named(pod["containers"], "handler")["readinessProbe"] == own


def test_sidecar_without_metrics_gets_no_http_probes() -> None:
    obj = actor(sidecar={"env": [{"name": "ASYA_METRICS_ENABLED", "value": "false"}]})
    sidecar = named(pod_spec(by_kind(render(obj))["Deployment"])["containers"], "asya-sidecar")
    assert "readinessProbe" not in sidecar
    assert "livenessProbe" not in sidecar


def test_gpu_resources_node_selector_and_tolerations_are_kept() -> None:
    resources = {"limits": {"nvidia.com/gpu": 2, "memory": "32Gi"}, "requests": {"cpu": "4"}}
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    obj = actor(
        workload=template(
            container(resources=resources), nodeSelector={"gpu": "h100"}, tolerations=[toleration]
        )
    )
    pod = pod_spec(by_kind(render(obj))["Deployment"])
    assert named(pod["containers"], "handler")["resources"] == resources
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"] == [toleration]
    assert "nvidia.com/gpu" not in str(named(pod["containers"], "asya-sidecar"))


def test_user_env_volumes_and_mounts_are_kept_alongside_asyas() -> None:
    user = container(
        env=[
            {"name": "ASYA_HANDLER", "value": "h.f"},
            {"name": "MODEL", "value": "small"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
        ],
        volumeMounts=[{"name": "models", "mountPath": "/models"}],
    )
    obj = actor(
        workload=template(user, volumes=[{"name": "models", "emptyDir": {}}]),
        sidecar={"env": [{"name": "ASYA_MAX_RETRIES", "value": "3"}]},
    )
    pod = pod_spec(by_kind(render(obj))["Deployment"])
    runtime = named(pod["containers"], "handler")
    env = env_of(runtime)
    assert env["MODEL"] == "small"
    assert env["TOKEN"] == {"secretKeyRef": {"name": "t", "key": "k"}}
    assert env["ASYA_HANDLER"] == "h.f"
    assert named(runtime["volumeMounts"], "models")["mountPath"] == "/models"
    assert named(pod["volumes"], "models") == {"name": "models", "emptyDir": {}}
    assert env_of(named(pod["containers"], "asya-sidecar"))["ASYA_MAX_RETRIES"] == "3"


def test_user_labels_and_annotations_on_the_pod_are_kept() -> None:
    obj = actor(
        workload={"template": {"metadata": {"labels": {"team": "ml"}, "annotations": {"a": "b"}}}}
    )
    metadata = by_kind(render(obj))["Deployment"]["spec"]["template"]["metadata"]
    assert metadata["labels"]["team"] == "ml"
    assert metadata["labels"]["asya.io/actor"] == "doubler"
    assert metadata["annotations"]["a"] == "b"


def test_an_env_var_repeating_the_operators_value_is_accepted() -> None:
    user = container(
        env=[
            {"name": "ASYA_HANDLER", "value": "h.f"},
            {"name": "ASYA_RUNTIME_TIMEOUT", "value": "300s"},
        ]
    )
    env = [
        e["name"]
        for e in named(
            pod_spec(by_kind(render(actor(workload=template(user))))["Deployment"])["containers"],
            "handler",
        )["env"]
    ]
    assert env.count("ASYA_RUNTIME_TIMEOUT") == 1


# --- workload types --------------------------------------------------------------------------


def test_stateful_set_gets_its_volume_claim_templates_and_a_service_name() -> None:
    claim = {
        "metadata": {"name": "cache"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    objects = by_kind(
        render(
            actor(
                scaling=SCALING, workload={"type": "StatefulSet", "volumeClaimTemplates": [claim]}
            )
        )
    )
    statefulset = objects["StatefulSet"]
    assert statefulset["apiVersion"] == "apps/v1"
    assert statefulset["spec"]["volumeClaimTemplates"] == [claim]
    assert statefulset["spec"]["serviceName"] == "doubler"
    assert objects["ScaledObject"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "doubler",
    }


def test_job_runs_replicas_in_parallel_with_a_native_sidecar() -> None:
    objects = by_kind(render(actor(workload={"type": "Job", "replicas": 4})))
    assert set(objects) == {"ConfigMap", "Job"}
    job = objects["Job"]
    assert job["apiVersion"] == "batch/v1"
    assert job["spec"]["parallelism"] == 4
    pod = pod_spec(job)
    assert pod["restartPolicy"] == "OnFailure"
    assert [c["name"] for c in pod["containers"]] == ["handler"]
    sidecar = named(pod["initContainers"], "asya-sidecar")
    assert sidecar["restartPolicy"] == "Always"


def test_scaled_object_follows_the_scaling_spec() -> None:
    scaled = by_kind(render(actor(scaling=SCALING)))["ScaledObject"]
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "doubler",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 7)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (4, 45)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["value"] == "3"
    assert trigger["metadata"]["queueName"] == "test-doubler-queue"
    assert trigger["metadata"]["host"] == "amqp://rabbitmq.messaging.svc:5673"
    assert trigger["authenticationRef"] == {"name": "doubler-asya-rabbitmq"}


def test_trigger_authentication_reads_the_password_secret() -> None:
    auth = by_kind(render(actor(scaling=SCALING)))["TriggerAuthentication"]
    assert auth["metadata"]["name"] == "doubler-asya-rabbitmq"
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "rabbitmq-creds", "key": "pw"}
    ]
    (username,) = auth["spec"]["env"]
    assert username["parameter"] == "username"
    assert username["containerName"] == "asya-sidecar"


# --- refused specs ---------------------------------------------------------------------------


def test_a_user_container_named_like_the_sidecar_is_an_error() -> None:
    message = render_error(actor(workload=template(container(), container("asya-sidecar"))))
    assert "containers[1].name: 'asya-sidecar' is reserved" in message


def test_a_user_command_on_the_runtime_container_is_an_error() -> None:
    message = render_error(actor(workload=template(container(command=["python", "app.py"]))))
    assert "containers[0].command" in message


def test_a_runtime_container_without_a_handler_is_an_error() -> None:
    bare = {"name": "handler", "image": "python:3.11-slim"}
    assert "ASYA_HANDLER is required" in render_error(actor(workload=template(bare)))


def test_an_env_var_that_contradicts_the_spec_is_an_error_naming_the_spec_field() -> None:
    user = container(
        env=[
            {"name": "ASYA_HANDLER", "value": "h.f"},
            {"name": "ASYA_SOCKET_PATH", "value": "/tmp/other.sock"},
        ]
    )
    message = render_error(actor(workload=template(user)))
    assert "ASYA_SOCKET_PATH is set by the operator from spec.socket.path" in message


def test_a_sidecar_env_var_that_contradicts_the_spec_is_an_error() -> None:
    message = render_error(actor(sidecar={"env": [{"name": "ASYA_QUEUE_NAME", "value": "x"}]}))
    assert "spec.sidecar.env[0]: ASYA_QUEUE_NAME" in message


def test_a_user_volume_named_like_asyas_is_an_error() -> None:
    obj = actor(workload=template(container(), volumes=[{"name": "asya-socket", "emptyDir": {}}]))
    assert "volumes[0].name: 'asya-socket' is reserved" in render_error(obj)


def test_a_user_mount_on_the_runtime_folder_is_an_error() -> None:
    user = container(volumeMounts=[{"name": "code", "mountPath": "/opt/asya"}])
    assert "mountPath: '/opt/asya' is reserved" in render_error(actor(workload=template(user)))


def test_a_grace_period_in_the_template_that_contradicts_the_spec_is_an_error() -> None:
    obj = actor(workload=template(container(), terminationGracePeriodSeconds=5))
    assert "spec.timeout.gracefulShutdown" in render_error(obj)


def test_a_deployment_with_restart_policy_never_is_an_error() -> None:
    obj = actor(workload=template(container(), restartPolicy="Never"))
    assert "restartPolicy" in render_error(obj)


def _without_queue_name() -> dict[str, Any]:
    obj = actor()
    del obj["spec"]["queueName"]
    return obj


INVALID = {
    "negative-min-replicas": (actor(scaling={"minReplicas": -1}), "spec.scaling.minReplicas"),
    "max-below-min": (
        actor(scaling={"minReplicas": 4, "maxReplicas": 2}),
        "maxReplicas must be greater than or equal to scaling.minReplicas",
    ),
    "unknown-workload-type": (actor(workload={"type": "CronJob"}), "spec.workload.type"),
    "sidecar-name-clash": (
        actor(workload=template(container("asya-sidecar"))),
        "'asya-sidecar' is reserved",
    ),
    "missing-queue-name": (_without_queue_name(), "'queueName' is a required property"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_specs_are_refused_with_a_message_naming_the_problem(case: str) -> None:
    obj, expected = INVALID[case]
    message = render_error(obj)
    assert message.startswith("invalid AsyncActor 'doubler'")
    assert expected in message


# --- schemas ---------------------------------------------------------------------------------

RENDER_CASES = {
    "deployment-scaling": actor(scaling=SCALING),
    "deployment-fixed": actor(workload={"replicas": 2}),
    "statefulset": actor(
        scaling=SCALING,
        workload={
            "type": "StatefulSet",
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "cache"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    ),
    "job": actor(workload={"type": "Job", "replicas": 3}),
    "gpu": actor(
        metadata={"uid": "u-1"},
        scaling=SCALING,
        workload=template(container(resources={"limits": {"nvidia.com/gpu": 1}})),
    ),
    "sidecar-resources": actor(
        sidecar={"resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "128Mi"}}}
    ),
}


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_every_rendered_object_validates_against_kubernetes_and_keda_schemas(case: str) -> None:
    for obj in render(RENDER_CASES[case]):
        validate_object(obj)


NATS_TRANSPORT = {
    "type": "nats",
    "nats": {
        "url": "nats://nats.messaging.svc:4222",
        "monitoringEndpoint": "nats.messaging.svc:8222",
    },
}


def test_a_nats_actor_scales_on_its_jetstream_consumer_without_trigger_auth() -> None:
    objects = by_kind(render(actor(scaling=SCALING, transport=NATS_TRANSPORT)))
    assert list(objects) == ["ConfigMap", "Deployment", "ScaledObject"]
    (trigger,) = objects["ScaledObject"]["spec"]["triggers"]
    assert trigger == {
        "type": "nats-jetstream",
        "metadata": {
            "natsServerMonitoringEndpoint": "nats.messaging.svc:8222",
            "account": "$G",
            "stream": "asya",
            "consumer": "test-doubler-queue",
            "lagThreshold": "3",
        },
    }
    validate_object(objects["ScaledObject"])


def test_a_nats_actor_sidecar_gets_the_transport_url_and_no_rabbitmq_secret() -> None:
    workload = by_kind(render(actor(transport=NATS_TRANSPORT)))["Deployment"]
    env = env_of(named(pod_spec(workload)["containers"], "asya-sidecar"))
    assert env["ASYA_TRANSPORT_URL"] == "nats://nats.messaging.svc:4222"
    assert not {"ASYA_RABBITMQ_URL", "ASYA_RABBITMQ_PASSWORD"} & set(env)


# --- SQS ------------------------------------------------------------------------------------

SQS = {"type": "sqs", "sqs": {"region": "eu-west-1", "queuePrefix": "prod-"}}


def test_an_sqs_actor_scales_on_its_queue_with_the_aws_sqs_queue_trigger() -> None:
    objects = by_kind(render(actor(scaling=SCALING, transport=SQS)))
    (trigger,) = objects["ScaledObject"]["spec"]["triggers"]
    assert trigger == {
        "type": "aws-sqs-queue",
        "metadata": {
            "queueURL": "prod-test-doubler-queue",
            "queueLength": "3",
            "awsRegion": "eu-west-1",
        },
        "authenticationRef": {"name": "doubler-asya-sqs"},
    }
    auth = objects["TriggerAuthentication"]
    assert auth["metadata"]["name"] == "doubler-asya-sqs"
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}


def test_an_sqs_sidecar_gets_an_sqs_url_and_no_rabbitmq_credentials() -> None:
    transport = {**SQS, "sqs": {**SQS["sqs"], "endpoint": "http://localstack:4566"}}
    deployment = by_kind(render(actor(transport=transport)))["Deployment"]
    env = env_of(named(pod_spec(deployment)["containers"], "asya-sidecar"))
    assert env["ASYA_TRANSPORT_URL"] == "sqs://?region=eu-west-1&prefix=prod-"
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert not {"ASYA_RABBITMQ_URL", "ASYA_RABBITMQ_PASSWORD"} & set(env)


def test_an_sqs_transport_without_its_settings_is_refused() -> None:
    assert "transport.sqs is required when transport.type is sqs" in render_error(
        actor(transport={"type": "sqs"})
    )


def test_sqs_objects_validate_against_kubernetes_and_keda_schemas() -> None:
    for obj in render(actor(scaling=SCALING, transport=SQS)):
        validate_object(obj)
