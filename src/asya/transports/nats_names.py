"""JetStream names for Asya's exchange and queues, shared by the NATS transport and the
operator's KEDA trigger (which must not import nats-py)."""

from __future__ import annotations

import hashlib
import re

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(name: str) -> str:
    """``name`` as a JetStream stream/consumer name (no dots, wildcards or spaces)."""
    cleaned = _UNSAFE_NAME.sub("_", name)
    if cleaned == name:
        return name
    return f"{cleaned}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def stream_name(exchange: str) -> str:
    """The stream that holds every queue of ``exchange``."""
    return safe_name(exchange)


def consumer_name(queue: str) -> str:
    """The durable consumer that every replica of ``queue``'s actor shares."""
    return safe_name(queue)
