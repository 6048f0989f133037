"""The one place where a delivery is acked or nacked.

``settling(delivery)`` wraps the processing of one delivery: when the block finishes it acks
(every publish was confirmed) unless the block asked for a requeue; when the block raises or is
cancelled the delivery is nacked with requeue, so a bug or a broker hiccup never loses a message.
"""

from __future__ import annotations

import asyncio
import logging

from asya.transports.base import IncomingMessage

logger = logging.getLogger(__name__)


class Settlement:
    """What the processing block decided: ack (default) or requeue untouched."""

    __slots__ = ("requeue",)

    def __init__(self) -> None:
        self.requeue = False


class settling:
    """``async with settling(delivery) as settlement:`` (a class: cheaper per message than a
    generator-based context manager on the sidecar's hot path)."""

    __slots__ = ("_delivery", "_settlement")

    def __init__(self, delivery: IncomingMessage) -> None:
        self._delivery = delivery
        self._settlement = Settlement()

    async def __aenter__(self) -> Settlement:
        return self._settlement

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is None:
            await _settle(self._delivery, requeue=self._settlement.requeue)
        else:
            await asyncio.shield(_settle(self._delivery, requeue=True))


async def _settle(delivery: IncomingMessage, *, requeue: bool) -> None:
    try:
        if requeue:
            await delivery.nack(requeue=True)
        else:
            await delivery.ack()
    except Exception:
        # The broker will redeliver an unsettled message when the channel closes.
        logger.exception("could not %s a delivery", "nack" if requeue else "ack")
