"""py-amqp plumbing for the event-loop RabbitMQ transport: connecting, telling an outage from
a refusal, and a blocking connection in a worker thread for the rare operations that wait for
the broker's answer (declare, depth, purge, delete).

Those operations run off the event loop so that a slow or vanished broker never stalls the
deliveries in flight; the hot path (consume, publish, confirm, ack) never comes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import amqp
from amqp import exceptions as amqp_errors
from amqp.connection import NEGOTIATE_CAPABILITIES
from amqp.transport import TCPTransport

from asya.errors import BrokerRefused, TransportError, describe
from asya.transports._rabbitmq_common import RabbitMQSettings

T = TypeVar("T")

#: The connection is gone or not there yet: worth waiting for. A broker's refusal (a channel
#: error, access refused) is everything else in FAILURES.
OUTAGES: tuple[type[BaseException], ...] = (OSError, amqp_errors.RecoverableConnectionError)
FAILURES: tuple[type[BaseException], ...] = (OSError, amqp_errors.AMQPError)

HEARTBEAT = 60  # seconds, as aio-pika asks for


class ConnectionLost(TransportError):
    """The connection a publish or settle was riding on went away."""


class LoginRefused(amqp_errors.AMQPError):  # type: ignore[misc]
    """The broker refused the URL's user or password while connecting (not worth retrying)."""


def is_outage(exc: BaseException | None) -> bool:
    """True for a lost or missing connection, False for a refusal by the broker."""
    if isinstance(exc, ConnectionLost):
        return True
    if isinstance(exc, TransportError):
        exc = exc.__cause__
    return isinstance(exc, OUTAGES)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, amqp_errors.NotFound)


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn py-amqp/socket failures into TransportError naming the operation."""
    try:
        yield
    except (TransportError, asyncio.CancelledError):
        raise
    except LoginRefused as exc:
        raise BrokerRefused(
            f"{what}: the broker refused the login (check the user and password in the URL)"
        ) from exc
    except FAILURES as exc:
        raise TransportError(f"{what}: {describe(exc)}") from exc


def open_connection(settings: RabbitMQSettings, *, heartbeat: int = HEARTBEAT) -> amqp.Connection:
    """A connected py-amqp connection for ``settings.url`` (blocking: run it in a thread)."""
    parts = urlsplit(settings.url)
    secure = parts.scheme.lower() == "amqps"
    port = parts.port or (5671 if secure else 5672)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    options: dict[str, Any] = {
        "host": f"{parts.hostname or 'localhost'}:{port}",
        "userid": unquote(parts.username) if parts.username else "guest",
        "password": unquote(parts.password) if parts.password else "guest",
        "virtual_host": vhost,
        "heartbeat": heartbeat,
        "connect_timeout": settings.connect_timeout,
    }
    if secure:
        options["ssl"] = ssl.create_default_context()
    connection = amqp.Connection(**options)
    # No connection.blocked notices: with them announced, py-amqp reads the socket before
    # every publish to look for one (a system call per message); a blocked broker shows
    # here as a publish waiting for its confirm up to publish_timeout.
    connection.negotiate_capabilities = {**NEGOTIATE_CAPABILITIES, "connection.blocked": False}
    try:
        connection.connect()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            connection.collect()
        if isinstance(exc, amqp_errors.AccessRefused):  # during the handshake: the login
            raise LoginRefused(str(exc)) from exc
        raise
    return connection


def close_quietly(connection: amqp.Connection) -> None:
    """Close politely if the socket still works, else just drop it."""
    try:
        if connection.transport is not None and connection.transport.connected:
            connection.close()
    except Exception:
        pass
    finally:
        with contextlib.suppress(Exception):
            connection.collect()


class ControlConnection:
    """One blocking connection, used from worker threads one operation at a time.

    Each operation gets a fresh channel (a refused passive declare closes its channel); a
    failure that breaks the connection drops it, and the next operation connects again.
    """

    def __init__(self, settings: RabbitMQSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._connection: amqp.Connection | None = None

    async def run(self, what: str, operation: Callable[[amqp.Channel], T]) -> T:
        with translate(what):
            return await asyncio.to_thread(self._run, operation)

    def _run(self, operation: Callable[[amqp.Channel], T]) -> T:
        with self._lock:
            reused = self._connection is not None
            try:
                return self._run_once(operation)
            except OUTAGES:
                if not reused:
                    raise
            # the connection had died while idle (a broker restart): once more on a fresh one
            return self._run_once(operation)

    def _run_once(self, operation: Callable[[amqp.Channel], T]) -> T:
        if self._connection is None:
            # no heartbeats: nobody would tick them between operations
            self._connection = open_connection(self._settings, heartbeat=0)
        connection = self._connection
        try:
            channel = connection.channel()
            channel.auto_decode = False
            try:
                return operation(channel)
            finally:
                if channel.is_open:  # py-amqp reopens a channel the broker closed
                    channel.close()
        except amqp_errors.ChannelError:
            raise  # the broker closed only the channel; the connection is fine
        except BaseException:
            self._connection = None
            close_quietly(connection)
            raise

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            close_quietly(connection)


def would_block(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, BlockingIOError, ssl.SSLWantReadError))


class LoopChannel(amqp.Channel):  # type: ignore[misc]
    """A channel whose closing by the broker never blocks the caller.

    py-amqp reopens a channel the broker closed (waiting for the answer) and raises the error
    out of ``drain_events``; on the event loop that would stall every other delivery. Here the
    channel is torn down at once and ``on_broker_close`` receives the error.
    """

    on_broker_close: Callable[[BaseException], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Delivery tags handed out and not yet settled, and those acked but not yet sent
        #: (``_Link`` sends them once per loop turn, see ``_Link.write_acks``).
        self.unsettled: set[int] = set()
        self.acks: list[int] = []

    def _on_close(self, reply_code: int, reply_text: str, class_id: int, method_id: int) -> None:
        self.send_method(amqp.spec.Channel.CloseOk)
        error = amqp_errors.error_for_code(
            reply_code, reply_text, (class_id, method_id), amqp_errors.ChannelError
        )
        self.collect()
        if self.on_broker_close is not None:
            self.on_broker_close(error)

    def close_nowait(self) -> None:
        """Ask the broker to close the channel; its answer tears it down later."""
        if self.is_open and not getattr(self, "is_closing", False) and self.connection is not None:
            self.is_closing = True
            self.send_method(amqp.spec.Channel.Close, "BsBB", (0, "", 0, 0))


def read_ahead(connection: amqp.Connection) -> None:
    """Let py-amqp's reader take up to 64 KiB per system call instead of exactly what the
    next frame part needs (three calls per frame); it keeps what is over for the next frame.
    """
    transport = connection.transport
    if isinstance(transport, TCPTransport):  # the TLS transport reads through its SSL object
        recv = transport.sock.recv
        transport._quick_recv = lambda wanted: recv(max(wanted, 65536))
