"""Choosing and configuring a transport from its URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asya.transports import open_transport, redact_url
from asya.transports.memory import MemoryTransport
from asya.transports.sqlite import SqliteTransport
from tests.helpers import child_env


def test_amqp_urls_open_rabbitmq_with_the_given_exchange() -> None:
    from asya.transports.pyamqp import PyAmqpTransport

    for url in ("amqp://guest:guest@localhost:5672/", "amqps://user:pw@broker/vhost"):
        transport = open_transport(url, exchange="mesh", publish_timeout="5s")
        assert isinstance(transport, PyAmqpTransport)
        assert transport.name == "rabbitmq"
        assert transport.settings.exchange == "mesh"
        assert transport.settings.publish_timeout == 5.0


def test_sqlite_url_with_three_slashes_is_relative_and_four_is_absolute() -> None:
    relative = open_transport("sqlite:///.asya/queues.db")
    absolute = open_transport("sqlite:////var/lib/asya/queues.db")
    assert isinstance(relative, SqliteTransport)
    assert isinstance(absolute, SqliteTransport)
    assert relative.settings.path == Path(".asya/queues.db")
    assert absolute.settings.path == Path("/var/lib/asya/queues.db")


def test_sqlite_options_come_from_the_query_and_keywords_override_them() -> None:
    transport = open_transport("sqlite:///q.db?lease=45s&poll_max=100ms&synchronous=full")
    assert isinstance(transport, SqliteTransport)
    assert transport.settings.lease == 45.0
    assert transport.settings.poll_max == 0.1
    assert transport.settings.synchronous == "full"
    overridden = open_transport("sqlite:///q.db?lease=45s", lease=2)
    assert isinstance(overridden, SqliteTransport)
    assert overridden.settings.lease == 2.0
    assert overridden.settings.path == Path("q.db")


def test_memory_url_names_its_broker() -> None:
    named = open_transport("memory://pipeline")
    default = open_transport("memory://")
    assert isinstance(named, MemoryTransport)
    assert isinstance(default, MemoryTransport)
    assert named.broker.name == "pipeline"
    assert default.broker.name == "default"


@pytest.mark.parametrize(
    ("url", "options", "complaint"),
    [
        ("redis://localhost", {}, "unsupported transport URL"),
        ("localhost:5672", {}, "unsupported transport URL"),
        ("sqlite://host/q.db", {}, "has a host"),
        ("sqlite:///", {}, "must name a database file"),
        ("sqlite:///:memory:", {}, "must name a database file"),
        ("sqlite:///q.db?lease=soon", {}, "lease"),
        ("sqlite:///q.db?lease=0s", {}, "lease must be positive"),
        ("sqlite:///q.db?speed=fast", {}, "unknown sqlite transport option"),
        ("sqlite:///q.db?synchronous=maybe", {}, "synchronous"),
        ("amqp://localhost/", {"lease": "1s"}, "unknown rabbitmq transport option"),
        ("amqp://localhost/", {"publish_timeout": "-1"}, "publish_timeout"),
        ("memory://x", {"lease": 1}, "unknown memory transport option"),
    ],
)
def test_bad_urls_and_options_are_refused_with_a_clear_message(
    url: str, options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_transport(url, **options)


def test_an_empty_exchange_name_is_refused() -> None:
    with pytest.raises(ValueError, match="exchange"):
        open_transport("amqp://localhost/", exchange="")


def test_refusing_a_url_never_shows_its_password() -> None:
    with pytest.raises(ValueError, match="unsupported") as raised:
        open_transport("redis://user:topsecret@host/")
    assert "topsecret" not in str(raised.value)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("amqp://guest:guest@localhost:5672/") == "amqp://guest:***@localhost:5672/"
    assert redact_url("amqp://localhost/") == "amqp://localhost/"
    assert redact_url("sqlite:///q.db") == "sqlite:///q.db"


def test_core_transports_work_without_the_rabbitmq_clients_installed(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['aio_pika'] = None; sys.modules['aiormq'] = None\n"
        "sys.modules['amqp'] = None\n"
        "from asya.transports import open_transport\n"
        f"open_transport('sqlite:///{tmp_path}/q.db'); open_transport('memory://')\n"
        "try:\n    open_transport('amqp://localhost/')\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "needs py-amqp: pip install 'asya[rabbitmq]'" in result.stdout


def test_nats_url_opens_jetstream_with_query_options_and_names_from_the_exchange() -> None:
    from asya.transports.nats import NatsTransport

    transport = open_transport(
        "nats://127.0.0.1:4222?ack_wait=2m", exchange="ns.prod", pull_expires="1s"
    )
    assert isinstance(transport, NatsTransport)
    assert transport.settings.url == "nats://127.0.0.1:4222"
    assert (transport.settings.ack_wait, transport.settings.pull_expires) == (120.0, 1.0)
    assert transport.stream.startswith("ns_prod_")  # no dots in a stream name
    assert transport.subject("resize") == "ns.prod.resize"
    with pytest.raises(ValueError, match="lease"):
        open_transport("nats://127.0.0.1:4222?lease=1s")
