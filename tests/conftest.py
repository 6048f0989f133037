"""Fixtures shared by every suite.

Services are the machine's real ones (docs/contributing.md#services; ``make test`` starts any that
is down). Every
run uses names of its own — a RabbitMQ exchange/queue prefix, a fresh PostgreSQL database — and
removes them afterwards, so concurrent runs on one machine never collide. The queues whose names
asya fixes (``tests.helpers.FIXED_QUEUES``) are deleted at the end of the run that made them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asya.logconfig import LEVELS
from tests.helpers import FIXED_QUEUES, delete_idle_rabbitmq_queues, missing_rabbitmq_queues

RABBITMQ_URL = os.environ.get("ASYA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("ASYA_TEST_NATS_URL", "nats://127.0.0.1:4222")
POSTGRES_ADMIN_URL = os.environ.get(
    "ASYA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_CREATED_FIXED_QUEUES = pytest.StashKey[list[str]]()
TESTS_DIR = Path(__file__).parent
# Integration suites with a package- or session-scoped mesh of processes.
SHARED_MESH_SUITES = {"sidecar_vs_runtime", "gateway_vs_actors", "claim_check", "traces", "console"}


def pytest_configure(config: pytest.Config) -> None:
    # ASYA_LOG_LEVEL is honoured by the suites (docs/contributing.md#services): it sets the level of
    # the records that
    # pytest captures and shows for a failing test; child processes inherit the variable.
    level = (os.environ.get("ASYA_LOG_LEVEL") or "INFO").upper()
    logging.getLogger().setLevel(level if level in LEVELS else "INFO")
    logging.getLogger("asyncio").setLevel(logging.WARNING)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n N --dist loadgroup`` (docs/contributing.md#tests): each integration
    module runs on one worker, and so does each suite whose processes the whole suite shares,
    so that no worker starts what another already runs."""
    for item in items:
        if not item.path.is_relative_to(TESTS_DIR / "integration"):
            continue
        parts = item.path.relative_to(TESTS_DIR).parts
        group = parts[1] if parts[1] in SHARED_MESH_SUITES else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionstart(session: pytest.Session) -> None:
    # In the controlling process only (not in pytest-xdist's workers): it starts before and
    # finishes after every test of the run.
    if hasattr(session.config, "workerinput") or not _port_answers(5672):
        return
    with contextlib.suppress(Exception):  # a broker that refuses us fails the tests, not this
        session.config.stash[_CREATED_FIXED_QUEUES] = missing_rabbitmq_queues(
            RABBITMQ_URL, FIXED_QUEUES
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the fixed-name queues this run made on the shared RabbitMQ, unless another run
    uses them by now (they hold a message or have a consumer)."""
    created = session.config.stash.get(_CREATED_FIXED_QUEUES, [])
    if created and _port_answers(5672):
        with contextlib.suppress(Exception):
            delete_idle_rabbitmq_queues(RABBITMQ_URL, created)


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run, used to prefix every shared name."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def unique_name(run_id: str) -> str:
    """A name unique to one test (queue prefix, database suffix, ...)."""
    return f"asya-test-{run_id}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The machine's RabbitMQ; fails loudly (never skips) when it does not answer."""
    if not _port_answers(5672):
        pytest.fail(
            "RabbitMQ does not answer on 127.0.0.1:5672: run `make services` "
            "(docs/contributing.md#services)",
            pytrace=False,
        )
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The machine's NATS server (with JetStream); fails loudly when it does not answer."""
    if not _port_answers(4222):
        pytest.fail(
            "NATS does not answer on 127.0.0.1:4222: run `make services` "
            "(docs/contributing.md#services)",
            pytrace=False,
        )
    return NATS_URL


@pytest.fixture(scope="session")
def postgres_url(run_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run (``postgresql://…``), dropped afterwards."""
    import asyncio

    import asyncpg

    if not _port_answers(5432):
        pytest.fail(
            "PostgreSQL does not answer on 127.0.0.1:5432: run `make services` "
            "(docs/contributing.md#services)",
            pytrace=False,
        )
    name = f"asya_test_{run_id}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqs_url() -> Iterator[str]:
    """An ``sqs://`` URL on moto's SQS server, started for this run as a process of its own.

    Short long-polls and visibility keep the tests quick; the fake credentials are set only
    where none are (child processes inherit them).
    """
    from tests.helpers import free_port

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server did not start on port {port}", pytrace=False)
            time.sleep(0.1)
        yield f"sqs://?endpoint=http://127.0.0.1:{port}&region=us-east-1&wait=1s&visibility=3s"
    finally:
        process.terminate()
        process.wait(10)


MCP_NODE = Path(__file__).resolve().parent / "mcp_node"
#: The commands the MCP tests run from tests/mcp_node/package-lock.json.
MCP_NODE_BINS = ("conformance", "mcp-inspector")


@pytest.fixture(scope="session")
def mcp_node() -> Path:
    """tests/mcp_node with its npm packages: ``npm ci`` when a command is missing (``make
    install`` runs it too); skips when node or npm is not installed."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    bins = MCP_NODE / "node_modules" / ".bin"
    if not all((bins / name).exists() for name in MCP_NODE_BINS):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MCP_NODE, check=True)
    return MCP_NODE
