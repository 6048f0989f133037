"""Fixtures: this run's exchange and queues on the real RabbitMQ, and one actor per handler.

The queues come from ``rabbitmq-definitions.json`` (the shape RabbitMQ exports), renamed with
a per-run prefix and bound to a per-run exchange, so concurrent runs never see each other's
messages. All actors start once, in parallel, and stop when this suite ends (package scope); the
fault tests start their own processes (they kill them). Everything declared is deleted at the
end.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox, rabbitmq_queue_names
from tests.integration.sidecar_vs_runtime.harness import (
    SUITE_DIR,
    Mesh,
    Processes,
    SuiteConfig,
    wait_consuming,
)

log = logging.getLogger(__name__)

DEFINITIONS = SUITE_DIR / "rabbitmq-definitions.json"
TERMINAL_QUEUES = ("happy-end", "error-end")


@dataclass(frozen=True)
class ActorSpec:
    """One suite actor: ``handlers.<handler>`` on queue ``test-<name>-queue``."""

    handler: str
    env: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # extra `asya actor` flags (they mirror the env vars)


# The sidecar's timeout for the timeout actor (the handler sleeps longer).
TIMEOUT_ACTOR_TIMEOUT = "2s"
# ASYA_MAX_MESSAGE_SIZE of the size-limit actor.
SIZE_LIMIT_BYTES = 4096
# ASYA_MAX_RETRIES of the oom-retry actor.
OOM_RETRY_MAX_RETRIES = 1

ACTORS: dict[str, ActorSpec] = {
    "echo": ActorSpec("echo"),
    "error": ActorSpec("error"),
    "oom": ActorSpec("oom", {"ASYA_MAX_RETRIES": "0"}),
    "cuda-oom": ActorSpec("cuda_oom", {"ASYA_MAX_RETRIES": "0"}),
    "timeout": ActorSpec("timeout", flags=("--timeout", TIMEOUT_ACTOR_TIMEOUT)),
    "fanout": ActorSpec("fanout"),
    "empty-response": ActorSpec("empty_response"),
    "large-payload": ActorSpec("large_payload"),
    "unicode": ActorSpec("unicode"),
    "null-values": ActorSpec("null_values"),
    "conditional": ActorSpec("conditional", {"ASYA_RUNTIME_TIMEOUT": "10s"}),
    "nested-data": ActorSpec("nested_data"),
    "route-extender": ActorSpec("route_extender_message", flags=("--mode", "message")),
    "size-limit": ActorSpec("echo", {"ASYA_MAX_MESSAGE_SIZE": str(SIZE_LIMIT_BYTES)}),
    "oom-retry": ActorSpec(
        "flaky_oom_message",
        {
            "ASYA_HANDLER_ARG_TYPE": "envelope",  # the original names for message mode
            "ASYA_MAX_RETRIES": str(OOM_RETRY_MAX_RETRIES),
            "ASYA_RETRY_BACKOFF": "1s",
        },
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this suite's fault tests after its other tests: they restart the broker."""
    faults = [item for item in items if item.path.parent == SUITE_DIR and "fault" in item.path.stem]
    if faults:
        rest = [item for item in items if item not in faults]
        last_ours = max(
            (i for i, item in enumerate(rest) if item.path.parent == SUITE_DIR), default=-1
        )
        items[:] = rest[: last_ours + 1] + faults + rest[last_ours + 1 :]


@pytest.fixture(scope="package")
def suite(
    run_id: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SuiteConfig]:
    socket_dir = Path(tempfile.mkdtemp(prefix=f"asya-sc-{run_id}-", dir="/tmp"))
    config = SuiteConfig(
        rabbitmq_url=rabbitmq_url,
        exchange=f"asya-test-{run_id}-sc",
        prefix=f"asya-test-{run_id}-sc-",
        log_dir=tmp_path_factory.mktemp("sidecar_vs_runtime-logs"),
        socket_dir=socket_dir,
    )
    log.info("sidecar_vs_runtime: exchange %s, process logs in %s", config.exchange, config.log_dir)
    yield config
    shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def broker(suite: SuiteConfig) -> Iterator[Broker]:
    """The run's exchange and the queues of ``rabbitmq-definitions.json``, deleted afterwards."""
    client = Broker(suite.rabbitmq_url, suite.exchange)
    client.open()
    definitions = json.loads(DEFINITIONS.read_text())
    try:
        for queue in definitions["queues"]:
            client.declare_queue(suite.q(queue["name"]))
        yield client
    finally:
        client.stop_watching()
        # Queues the sidecars made on their own (retry delays) carry the run's exchange name.
        leftovers = {name for name in rabbitmq_queue_names() if suite.exchange in name}
        for name in sorted(leftovers | {suite.q(q["name"]) for q in definitions["queues"]}):
            client.delete_queue(name)
        client.delete_exchange()
        client.close()


@pytest.fixture(scope="package")
def happy_end(broker: Broker, suite: SuiteConfig) -> Inbox:
    return broker.watch(suite.happy_end)


@pytest.fixture(scope="package")
def error_end(broker: Broker, suite: SuiteConfig) -> Inbox:
    return broker.watch(suite.error_end)


@pytest.fixture(scope="package")
def actors(suite: SuiteConfig, broker: Broker) -> Iterator[dict[str, str]]:
    """Every suite actor running (started in parallel); maps actor name to its queue."""
    defined = {queue["name"] for queue in json.loads(DEFINITIONS.read_text())["queues"]}
    undefined = sorted({f"test-{name}-queue" for name in ACTORS} - defined)
    assert not undefined, f"add {undefined} to {DEFINITIONS.name}"
    processes = Processes(suite)
    queues = {name: suite.q(f"test-{name}-queue") for name in ACTORS}
    try:
        started = time.monotonic()
        procs = {
            queues[name]: processes.actor(
                name, spec.handler, queues[name], suite.env(spec.env), *spec.flags
            )
            for name, spec in ACTORS.items()
        }
        wait_consuming(broker, procs, timeout=100)
        log.info("%d actors consuming after %.1f s", len(procs), time.monotonic() - started)
        yield queues
    finally:
        processes.stop_all()


@pytest.fixture
def mesh(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, error_end: Inbox, actors: dict[str, str]
) -> Mesh:
    """The running suite: send messages, read happy-end and error-end."""
    return Mesh(suite, broker, happy_end, error_end)


@pytest.fixture
def procs(suite: SuiteConfig) -> Iterator[Processes]:
    """Processes a single test starts (and kills); all stopped when it ends."""
    processes = Processes(suite)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def tid() -> str:
    """A unique id a test puts in its messages to find them in the terminal queues."""
    return f"t-{uuid.uuid4().hex}"
