"""What both RabbitMQ clients share: settings and the delay-queue layout (no client imported).

Delayed publish (retries) must survive the publisher's restart, so the delay lives in the
broker: the message waits in ``asya-delay.<exchange>.<queue>.<ms>`` whose ``x-message-ttl``
dead-letters it back to the exchange with routing key = the target queue. ``x-expires`` removes
a delay queue left unused for its delay plus a minute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

DELAY_QUEUE_SPARE_MS = 60_000  # an idle delay queue outlives its last message by this much


@dataclass(frozen=True)
class RabbitMQSettings:
    url: str
    exchange: str = "asya"
    publish_timeout: float = 30.0
    reconnect_interval: float = 1.0
    connect_timeout: float = 10.0


def delay_ms(delay: float) -> int:
    return max(1, round(delay * 1000))


def delay_queue_name(exchange: str, queue: str, delay: float) -> str:
    """The holding queue for messages to ``queue`` delayed by ``delay`` seconds."""
    name = f"asya-delay.{exchange}.{queue}.{delay_ms(delay)}"
    if len(name.encode()) <= 255:  # AMQP's limit on queue names
        return name
    digest = hashlib.sha256(f"{exchange}\0{queue}".encode()).hexdigest()[:16]
    return f"asya-delay.{digest}.{delay_ms(delay)}"


def delay_queue_arguments(exchange: str, queue: str, delay: float) -> dict[str, Any]:
    """The holding queue's arguments: dead-letter to ``queue`` after ``delay``."""
    ms = delay_ms(delay)
    return {
        "x-message-ttl": ms,
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": queue,
        "x-expires": ms + DELAY_QUEUE_SPARE_MS,
    }
