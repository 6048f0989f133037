"""Publishing a new job's message to the first actor of its route
(docs/reference/message.md#fields).

The transport is opened at start but a broker that is down then does not stop the gateway:
``/ready`` reports it and each publish tries to connect again. ``ASYA_RABBITMQ_POOL_SIZE``
bounds the publishes in flight at once.

A confirmed publish holds its channel's lock until its frames reach the socket, so one channel
lets one publish through per event-loop round trip however many requests wait: under load that,
not the broker, caps job creation. The publisher therefore spreads publishes over several
transports ("lanes", each its own connection and confirming channel), always using the lane
with the fewest publishes in flight; confirms are awaited concurrently on every lane.

With a payload store, a message over ``ASYA_PAYLOAD_OFFLOAD_THRESHOLD`` (or one the transport
refuses as too large) carries its payload by reference, exactly as a sidecar's output does
(docs/reference/jobs.md#arguments-by-reference).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson

from asya.errors import TransportError
from asya.gateway.models import Job
from asya.payloads import ClaimCheck
from asya.transports.base import Transport

logger = logging.getLogger(__name__)


def job_message(job: Job) -> dict[str, Any]:
    """The first message of ``job``: its route as stored (``job_id`` and ``deadline`` set)."""
    return {"job_id": job.id, "route": job.route, "payload": job.payload}


class Publisher:
    def __init__(
        self,
        transports: Transport | Sequence[Transport],
        concurrency: int = 20,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        lanes = [transports] if isinstance(transports, Transport) else list(transports)
        if not lanes:
            raise ValueError("the publisher needs at least one transport")
        self.lanes = lanes
        self._in_flight = [0] * len(lanes)
        self._slots = asyncio.Semaphore(concurrency)
        self.claim_check = claim_check

    @property
    def transport(self) -> Transport:
        """The first lane (its name and health stand for all of them)."""
        return self.lanes[0]

    async def start(self) -> None:
        try:
            await asyncio.gather(*(lane.connect() for lane in self.lanes))
        except Exception as exc:
            logger.warning("broker not reachable at start (%s); will retry on publish", exc)

    async def publish(self, queue: str, message: dict[str, Any]) -> None:
        """Publish durably; raises ``TransportError`` on failure (``UnroutableError``, and
        ``MessageTooLargeError`` when the message does not fit even by reference or there is
        no store); a store that fails is a ``TransportError`` too."""
        body = orjson.dumps(message)
        async with self._slots:
            index = self._in_flight.index(min(self._in_flight))
            lane = self.lanes[index]
            self._in_flight[index] += 1
            try:
                await lane.connect()
                if self.claim_check is None:
                    await lane.publish(queue, body)
                else:
                    await self.claim_check.publish(body, partial(lane.publish, queue))
            except TransportError:
                raise
            except Exception as exc:
                raise TransportError(f"publish to {queue!r} failed: {exc}") from exc
            finally:
                self._in_flight[index] -= 1

    async def ping(self) -> None:
        """Raise when the broker does not answer (used by ``/ready``)."""
        for lane in self.lanes:
            await lane.connect()
            check = getattr(lane, "ping", None)
            if check is not None:
                await check()

    async def close(self) -> None:
        await asyncio.gather(*(lane.close() for lane in self.lanes), return_exceptions=True)
