"""Queue transports behind one small protocol (:mod:`asya.transports.base`).

``open_transport(url)`` picks the implementation from the URL scheme:

* ``amqp://`` / ``amqps://`` → RabbitMQ (needs the ``asya[rabbitmq]`` extra; imported lazily)
* ``sqlite:///relative/queues.db`` or ``sqlite:////absolute/queues.db`` → one SQLite file
  (query options: ``lease``, ``busy_timeout``, ``poll_min``, ``poll_max`` as durations,
  ``synchronous``)
* ``memory://name`` → an in-process broker; transports on the same name share queues
* ``nats://host:port`` / ``tls://…`` → NATS JetStream (``asya[nats]``; query options
  ``ack_wait``, ``publish_timeout``, ``connect_timeout``, ``reconnect_interval``,
  ``pull_expires`` as durations)
* ``sqs://`` → Amazon SQS (needs the ``asya[sqs]`` extra); the standard AWS variables give the
  region, credentials and ``AWS_ENDPOINT_URL``; query options ``prefix``, ``region``,
  ``endpoint``, ``wait`` and ``visibility`` (durations), ``max_message_size``, ``threads``
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from asya.envconfig import to_seconds
from asya.transports.base import IncomingMessage, Subscription, Transport

__all__ = ["IncomingMessage", "Subscription", "Transport", "open_transport", "redact_url"]

_SQLITE_DURATIONS = ("lease", "busy_timeout", "poll_min", "poll_max")
_RABBITMQ_OPTIONS = ("publish_timeout", "reconnect_interval", "connect_timeout")
_SQS_TEXT = ("prefix", "region", "endpoint")
_SQS_DURATIONS = ("wait", "visibility")
_SQS_COUNTS = ("max_message_size", "threads")


def open_transport(url: str, *, exchange: str = "asya", **options: Any) -> Transport:
    """An unconnected Transport for ``url`` (use ``async with`` or ``connect()``/``close()``).

    ``options`` tune the backend (they override the URL's query options); a malformed URL or
    an unknown option raises ValueError naming it.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("amqp", "amqps"):
        return _open_rabbitmq(url, exchange, options)
    if scheme == "sqlite":
        return _open_sqlite(url, options)
    if scheme == "memory":
        return _open_memory(url, options)
    if scheme in ("nats", "tls"):
        return _open_nats(url, exchange, options)
    if scheme == "sqs":
        return _open_sqs(url, options)
    raise ValueError(
        f"unsupported transport URL {redact_url(url)!r}: "
        "use amqp://…, nats://…, sqs://, sqlite:///path or memory://"
    )


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _check_options(options: Mapping[str, Any], allowed: tuple[str, ...], kind: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {kind} transport option(s) {', '.join(unknown)}; "
            f"known: {', '.join(allowed) or 'none'}"
        )


def _duration(name: str, value: Any) -> float:
    try:
        return to_seconds(value)
    except ValueError as exc:
        raise ValueError(f"transport option {name}: {exc}") from None


def _open_rabbitmq(url: str, exchange: str, options: dict[str, Any]) -> Transport:
    _check_options(options, _RABBITMQ_OPTIONS, "rabbitmq")
    if not exchange:
        raise ValueError("the RabbitMQ exchange name must not be empty")
    from asya.transports._rabbitmq_common import RabbitMQSettings

    try:
        from asya.transports.pyamqp import PyAmqpTransport
    except ImportError as exc:
        raise ImportError(
            f"the RabbitMQ transport needs py-amqp: pip install 'asya[rabbitmq]' ({exc})"
        ) from exc

    timings = {name: _duration(name, value) for name, value in options.items()}
    return PyAmqpTransport(RabbitMQSettings(url=url, exchange=exchange, **timings))


def _open_sqlite(url: str, options: dict[str, Any]) -> Transport:
    from asya.transports.sqlite import SqliteSettings, SqliteTransport

    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError(
            f"sqlite URL {url!r} has a host: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    raw_path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw_path or raw_path.endswith("/") or raw_path == ":memory:":
        raise ValueError(f"sqlite URL {url!r} must name a database file")
    merged: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(options)
    _check_options(merged, (*_SQLITE_DURATIONS, "synchronous"), "sqlite")
    values: dict[str, Any] = {
        name: _duration(name, value) for name, value in merged.items() if name != "synchronous"
    }
    if "synchronous" in merged:
        values["synchronous"] = str(merged["synchronous"])
    return SqliteTransport(SqliteSettings(path=Path(raw_path), **values))


def _open_memory(url: str, options: dict[str, Any]) -> Transport:
    _check_options(options, (), "memory")
    from asya.transports.memory import MemoryTransport

    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/") or "default"
    return MemoryTransport(name)


def _open_nats(url: str, exchange: str, options: dict[str, Any]) -> Transport:
    try:
        from asya.transports.nats import NatsSettings, NatsTransport
    except ImportError as exc:
        raise ImportError(
            f"the NATS transport needs nats-py: pip install 'asya[nats]' ({exc})"
        ) from exc

    parts = urlsplit(url)
    merged: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(options)
    allowed = (
        "ack_wait",
        "publish_timeout",
        "connect_timeout",
        "reconnect_interval",
        "pull_expires",
    )
    _check_options(merged, allowed, "nats")
    timings = {name: _duration(name, value) for name, value in merged.items()}
    plain_url = parts._replace(query="").geturl()
    return NatsTransport(NatsSettings(url=plain_url, exchange=exchange, **timings))


def _open_sqs(url: str, options: dict[str, Any]) -> Transport:
    parts = urlsplit(url)
    if parts.netloc or parts.path.strip("/"):
        raise ValueError(
            f"sqs URL {url!r} names a host or path: use sqs:// with ?region=…&prefix=… "
            "(or the AWS_REGION and AWS_ENDPOINT_URL variables)"
        )
    merged: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(options)
    _check_options(merged, (*_SQS_TEXT, *_SQS_DURATIONS, *_SQS_COUNTS), "sqs")
    values: dict[str, Any] = {}
    for name, value in merged.items():
        if name in _SQS_DURATIONS:
            values[name] = _duration(name, value)
        elif name in _SQS_COUNTS:
            try:
                values[name] = int(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"transport option {name}: not a whole number: {value!r}"
                ) from None
        elif name == "prefix" or value:
            values[name] = str(value)
    try:
        from asya.transports.sqs import SqsSettings, SqsTransport
    except ImportError as exc:
        raise ImportError(
            f"the SQS transport needs boto3: pip install 'asya[sqs]' ({exc})"
        ) from exc
    return SqsTransport(SqsSettings(**values))
