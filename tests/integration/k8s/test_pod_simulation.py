"""The rendered pod, run as Kubernetes would run it, minus Kubernetes.

The handler container's command runs the ConfigMap's runtime file from a folder standing in for
the /opt/asya mount; the sidecar gets its rendered environment with the Secret resolved and the
``$(VAR)`` references expanded as the kubelet does. A message published to the actor's queue
on the machine's RabbitMQ must come out of happy-end processed, and the rendered probes must
pass against the live containers. This proves the names and values the operator writes are the
ones the runtime and the sidecar read.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from asya.k8s.render import RenderOptions, render
from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until
from tests.unit.k8s.factories import actor, container, template

pytestmark = pytest.mark.services

HANDLERS = "def double(payload):\n    return {'value': payload['value'] * 2}\n"
SECRETS = {("rabbitmq-creds", "pw"): "guest"}
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def container_env(
    spec: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]
) -> dict[str, str]:
    """A container's environment as the kubelet builds it: Secrets resolved, $(VAR) expanded
    from the variables defined earlier in the list ($$ is a literal $)."""
    env: dict[str, str] = {}
    for entry in spec.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        else:

            def expand(match: re.Match[str]) -> str:
                if match.group(0) == "$$":
                    return "$"
                return env.get(match.group(1), match.group(0))

            value = _REFERENCE.sub(expand, entry.get("value", ""))
        env[entry["name"]] = value
    return env


def test_kubelet_style_expansion_uses_only_earlier_variables() -> None:
    spec = {
        "env": [
            {"name": "A", "value": "x$(B)"},
            {"name": "B", "value": "b"},
            {"name": "C", "value": "$(B)-$$(B)"},
        ]
    }
    assert container_env(spec, {}) == {"A": "x$(B)", "B": "b", "C": "b-$(B)"}


def bare_python() -> str:
    """A Python without the asya package (the system one when recent enough), like a user image."""
    system = Path("/usr/bin/python3")
    if system.exists():
        probe = [str(system), "-c", "import sys; print(sys.version_info >= (3, 11))"]
        if (
            subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()
            == "True"
        ):
            return str(system)
    return sys.executable


@pytest.fixture
def workdir() -> Iterator[Path]:
    # short: the socket path must stay under the 107-character limit of AF_UNIX
    path = Path(tempfile.mkdtemp(prefix="asya-pod-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _cleanup(url: str, queues: list[str], exchange: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


async def _wait_declared(url: str, exchange: str, queues: list[str]) -> None:
    """Until the sidecar has declared its exchange and queues (it may report healthy before)."""
    connection = await aio_pika.connect(url)
    async with connection, asyncio.timeout(30):
        while True:
            channel = await connection.channel()
            try:
                await channel.get_exchange(exchange)
                for queue in queues:
                    await channel.get_queue(queue)
                return
            except aio_pika.exceptions.ChannelClosed:
                await asyncio.sleep(0.1)
            finally:
                if not channel.is_closed:
                    await channel.close()


async def _publish_and_receive(
    url: str, exchange: str, queue: str, happy_end: str, body: dict[str, Any]
) -> dict[str, Any]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange)
        await target.publish(aio_pika.Message(json.dumps(body).encode()), routing_key=queue)
        results = await channel.get_queue(happy_end)
        async with asyncio.timeout(30):
            while True:
                message = await results.get(fail=False)
                if message is not None:
                    await message.ack()
                    result: dict[str, Any] = json.loads(message.body)
                    return result
                await asyncio.sleep(0.1)


def test_rendered_pod_processes_a_message_end_to_end(
    workdir: Path, rabbitmq_url: str, unique_name: str
) -> None:
    queue, happy, error = unique_name, f"{unique_name}-happy", f"{unique_name}-error"
    metrics_port = free_port()
    spec_actor = actor(
        queueName=queue,
        transport={"rabbitmq": {"host": "127.0.0.1", "port": 5672, "username": "guest"}},
        socket={"path": str(workdir / "sockets" / "app.sock")},
        timeout={"processing": 10},
        sidecar={
            "metricsPort": metrics_port,
            "env": [
                {"name": "ASYA_RABBITMQ_EXCHANGE", "value": unique_name},
                {"name": "ASYA_STEP_HAPPY_END", "value": happy},
                {"name": "ASYA_STEP_ERROR_END", "value": error},
            ],
        },
        workload=template(
            container(env=[{"name": "ASYA_HANDLER", "value": "handlers.double"}], workingDir="/app")
        ),
    )
    objects = {o["kind"]: o for o in render(spec_actor, RenderOptions())}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    runtime_spec = next(c for c in pod["containers"] if c["name"] == "handler")
    sidecar_spec = next(c for c in pod["containers"] if c["name"] == "asya-sidecar")

    # the volumes: the ConfigMap mount, the socket emptyDir, the user's code
    mount = workdir / "opt-asya"
    mount.mkdir()
    (mount / "asya_runtime.py").write_text(
        objects["ConfigMap"]["data"]["asya_runtime.py"], encoding="utf-8"
    )
    (workdir / "sockets").mkdir()
    app = workdir / "app"
    app.mkdir()
    (app / "handlers.py").write_text(HANDLERS)

    command = [
        str(mount / Path(arg).name) if arg.startswith("/opt/asya/") else arg
        for arg in runtime_spec["command"]
    ]
    assert command[0] == "python"
    runtime_env = {"PATH": "/usr/bin:/bin", **container_env(runtime_spec, SECRETS)}
    runtime = subprocess.Popen([bare_python(), *command[1:]], cwd=app, env=runtime_env)
    sidecar_env = child_env(container_env(sidecar_spec, SECRETS))
    assert sidecar_spec["command"] == ["asya", "sidecar"]
    sidecar = subprocess.Popen(asya_command("sidecar"), env=sidecar_env)
    try:
        probe = runtime_spec["readinessProbe"]["exec"]["command"]
        wait_until(
            lambda: subprocess.run(probe, check=False).returncode == 0,
            timeout=30,
            what="the runtime's readiness probe (socket exists)",
        )
        health = (
            f"http://127.0.0.1:{metrics_port}{sidecar_spec['readinessProbe']['httpGet']['path']}"
        )

        def sidecar_healthy() -> bool:
            try:
                return httpx.get(health, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(sidecar_healthy, timeout=30, what="the sidecar's readiness probe")
        asyncio.run(_wait_declared(rabbitmq_url, unique_name, [queue, happy, error]))
        message = {"route": {"steps": [queue], "current": 0}, "payload": {"value": 21}}
        result = asyncio.run(_publish_and_receive(rabbitmq_url, unique_name, queue, happy, message))
        assert result["payload"] == {"value": 42}
        assert runtime.poll() is None
        assert sidecar.poll() is None
    finally:
        stop_process(sidecar)
        stop_process(runtime)
        asyncio.run(_cleanup(rabbitmq_url, [queue, happy, error], unique_name))
