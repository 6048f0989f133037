"""Publishing a new job's message to the first actor of its route (SPEC §2 shape).

The transport is opened at start but a broker that is down then does not stop the gateway:
``/ready`` reports it and each publish tries to connect again. ``ASYA_RABBITMQ_POOL_SIZE``
bounds the publishes in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from asya.errors import TransportError
from asya.transports.base import Transport

logger = logging.getLogger(__name__)


def job_message(
    job_id: str, steps: list[str], payload: Any, deadline: str | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"job_id": job_id}
    if deadline is not None:
        metadata["deadline"] = deadline
    return {
        "job_id": job_id,
        "route": {"steps": list(steps), "current": 0, "metadata": metadata},
        "payload": payload,
    }


class Publisher:
    def __init__(self, transport: Transport, pool_size: int = 20) -> None:
        self.transport = transport
        self._slots = asyncio.Semaphore(pool_size)

    async def start(self) -> None:
        try:
            await self.transport.connect()
        except Exception as exc:
            logger.warning("broker not reachable at start (%s); will retry on publish", exc)

    async def publish(self, queue: str, message: dict[str, Any]) -> None:
        """Publish durably; raises ``TransportError`` (incl. unroutable) on failure."""
        body = orjson.dumps(message)
        async with self._slots:
            try:
                await self.transport.connect()
                await self.transport.publish(queue, body)
            except TransportError:
                raise
            except Exception as exc:
                raise TransportError(f"publish to {queue!r} failed: {exc}") from exc

    async def ping(self) -> None:
        """Raise when the broker does not answer (used by ``/ready``)."""
        await self.transport.connect()
        check = getattr(self.transport, "ping", None)
        if check is not None:
            await check()

    async def close(self) -> None:
        await self.transport.close()
