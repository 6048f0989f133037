"""``asya queues apply`` against the machine's RabbitMQ, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asya.transports import open_transport
from asya.transports.pyamqp import PyAmqpTransport
from tests.helpers import FIXED_QUEUES, asya_command, child_env, free_port


def apply(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        asya_command("queues", "apply", *args),
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def cleanup(rabbitmq_url: str) -> AsyncIterator[tuple[list[str], list[str]]]:
    """Lists to fill with the queue and exchange names a test declares; deleted afterwards."""
    queues: list[str] = []
    exchanges: list[str] = []
    yield queues, exchanges
    for exchange in exchanges:
        async with open_transport(rabbitmq_url, exchange=exchange) as transport:
            assert isinstance(transport, PyAmqpTransport)
            for queue in queues:
                await transport.delete_queue(queue)
            await transport.delete_exchange()


def definitions(exchange: str, queues: list[str]) -> dict[str, object]:
    return {
        "rabbit_version": "3.10.8",
        "vhosts": [{"name": "/"}],
        "exchanges": [
            {
                "name": exchange,
                "vhost": "/",
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
        ],
        "queues": [
            {
                "name": queue,
                "vhost": "/",
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-max-length": 1000} if i == 0 else {},
            }
            for i, queue in enumerate(queues)
        ],
        "bindings": [
            {
                "source": exchange,
                "vhost": "/",
                "destination": queue,
                "destination_type": "queue",
                "routing_key": queue,
                "arguments": {},
            }
            for queue in queues
        ],
    }


async def test_applying_definitions_twice_declares_routable_queues(
    tmp_path: Path,
    unique_name: str,
    rabbitmq_url: str,
    cleanup: tuple[list[str], list[str]],
) -> None:
    queues = [f"{unique_name}-a", f"{unique_name}-b"]
    cleanup[0].extend(queues)
    cleanup[1].append(unique_name)
    file = tmp_path / "rabbitmq-definitions.json"
    file.write_text(json.dumps(definitions(unique_name, queues)))

    first = apply(str(file), "--url", rabbitmq_url)
    second = apply(str(file), "--url", rabbitmq_url)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert f"declared queue {queues[0]} (durable, x-max-length=1000)" in first.stdout
    assert f"declared exchange {unique_name} (topic, durable)" in second.stdout
    assert "1 exchange(s), 2 queue(s), 2 binding(s)" in second.stdout
    assert "guest:guest" not in first.stdout
    async with open_transport(rabbitmq_url, exchange=unique_name) as transport:
        for queue in queues:
            await transport.publish(queue, b"routable")
            assert await transport.depth(queue) == 1


async def test_applying_an_asya_yaml_declares_every_actor_queue_and_the_terminal_ones(
    tmp_path: Path,
    unique_name: str,
    rabbitmq_url: str,
    cleanup: tuple[list[str], list[str]],
) -> None:
    actors = [f"{unique_name}-doubler", f"{unique_name}-incrementer"]
    cleanup[0].extend(actors)  # the terminal queues' names are fixed: the run deletes them
    cleanup[1].append(unique_name)
    file = tmp_path / "asya.yaml"
    file.write_text(
        "actors:\n" + "".join(f"  - name: {name}\n    handler: handlers.work\n" for name in actors)
    )
    env = {"ASYA_RABBITMQ_URL": rabbitmq_url, "ASYA_TRANSPORT_URL": ""}

    for _ in range(2):
        result = apply(str(file), "--exchange", unique_name, env=env)
        assert result.returncode == 0, result.stderr
        for queue in (*actors, *FIXED_QUEUES):
            assert f"declared queue {queue} (durable)" in result.stdout
            assert f"binding {unique_name} -> queue {queue} (routing key '{queue}')" in (
                result.stdout
            )

    async with open_transport(rabbitmq_url, exchange=unique_name) as transport:
        for queue in actors:
            await transport.publish(queue, b"routable")
            assert await transport.depth(queue) == 1
        for queue in FIXED_QUEUES:
            await transport.depth(queue)  # exists (publishing would disturb other suites)


def test_an_unreachable_broker_exits_1_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({"queues": [{"name": "q"}]}))
    url = f"amqp://guest:hidden@127.0.0.1:{free_port()}/"

    result = apply(str(file), "--url", url)

    assert result.returncode == 1
    assert "could not apply" in result.stderr
    assert "hidden" not in result.stderr


async def test_a_queue_that_exists_with_other_arguments_exits_1_naming_it(
    tmp_path: Path,
    unique_name: str,
    rabbitmq_url: str,
    cleanup: tuple[list[str], list[str]],
) -> None:
    queue = f"{unique_name}-capped"
    cleanup[0].append(queue)
    cleanup[1].append(unique_name)
    file = tmp_path / "defs.json"
    first = definitions(unique_name, [queue])
    file.write_text(json.dumps(first))
    assert apply(str(file), "--url", rabbitmq_url).returncode == 0

    changed = definitions(unique_name, [queue])
    changed["queues"] = [{"name": queue, "vhost": "/", "arguments": {"x-max-length": 5}}]
    file.write_text(json.dumps(changed))
    result = apply(str(file), "--url", rabbitmq_url)

    assert result.returncode == 1
    assert queue in result.stderr
    assert "x-max-length" in result.stderr
