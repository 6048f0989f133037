"""aio-pika plumbing for the RabbitMQ transport: a reconnect pace that backs off, and the
translation of aio-pika/aiormq/socket failures into Asya's errors.

A failure is either an *outage* (connection lost or not there yet: worth waiting for) or a
*refusal* by the broker (missing entity, mismatched arguments, nacked publish: retrying the same
thing cannot help). The transport retries only the former.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import aiormq
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from asya.errors import BrokerRefused, TransportError, describe

FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)


class BackoffConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, with reconnect attempts spaced out over a long outage.

    aio-pika retries every ``reconnect_interval``; here the pause grows with the time the
    broker has been away (a quarter of it, from the configured interval up to 30 s), so a
    short restart is noticed at once and a long outage is not hammered.
    """

    MAX_INTERVAL = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._base_interval = 1.0
        self._down_since: float | None = None
        super().__init__(*args, **kwargs)

    @property
    def reconnect_interval(self) -> float:
        connected = getattr(self, "connected", None)
        if connected is None or connected.is_set():
            self._down_since = None
            return self._base_interval
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        grown = (now - self._down_since) / 4
        return min(max(self._base_interval, grown), max(self.MAX_INTERVAL, self._base_interval))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval = float(value)


# Refusals by the broker: retrying the same operation cannot help.
_REFUSALS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelLockedResource,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.DeliveryError,
    aiormq.exceptions.ProtocolSyntaxError,
    aiormq.exceptions.MethodNotImplemented,
)


_LOGIN_REFUSED = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
)


def is_outage(exc: BaseException | None) -> bool:
    """True for a lost or missing connection (worth waiting for), False for a refusal."""
    return isinstance(exc, FAILURES) and not isinstance(exc, _REFUSALS)


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn aio-pika/aiormq/socket failures into TransportError naming the operation."""
    try:
        yield
    except (TransportError, asyncio.CancelledError):
        raise
    except aiormq.exceptions.ChannelNotFoundEntity as exc:
        raise TransportError(f"{what}: {exc.args[-1] if exc.args else exc}") from exc
    except _LOGIN_REFUSED as exc:
        raise BrokerRefused(
            f"{what}: the broker refused the login (check the user and password in the URL)"
        ) from exc
    except FAILURES as exc:
        raise TransportError(f"{what}: {describe(exc)}") from exc
