"""The one place where a delivery is acked or nacked.

``settling(delivery)`` wraps the processing of one delivery: when the block finishes it acks
(every publish was confirmed) unless the block asked for a requeue; when the block raises or is
cancelled the delivery is nacked with requeue, so a bug or a broker hiccup never loses a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asya.transports.base import IncomingMessage

logger = logging.getLogger(__name__)


class Settlement:
    """What the processing block decided: ack (default) or requeue untouched."""

    __slots__ = ("requeue",)

    def __init__(self) -> None:
        self.requeue = False


@asynccontextmanager
async def settling(delivery: IncomingMessage) -> AsyncIterator[Settlement]:
    settlement = Settlement()
    try:
        yield settlement
    except BaseException:
        await asyncio.shield(_settle(delivery, requeue=True))
        raise
    await _settle(delivery, requeue=settlement.requeue)


async def _settle(delivery: IncomingMessage, *, requeue: bool) -> None:
    try:
        if requeue:
            await delivery.nack(requeue=True)
        else:
            await delivery.ack()
    except Exception:
        # The broker will redeliver an unsettled message when the channel closes.
        logger.exception("could not %s a delivery", "nack" if requeue else "ack")
