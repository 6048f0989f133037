"""Deleting offloaded payloads after ``ASYA_PAYLOAD_RETENTION``.

The terminal actors' sidecars (happy-end, error-end) run this: every job ends there, and a mesh
has few of them. An object's age counts, not its job's state, so the retention must exceed the
longest job (docs/reference/sidecar.md#payloads-by-reference). A store that fails is logged and
tried again at the next round.
"""

from __future__ import annotations

import asyncio
import logging

from asya.payloads.stores import PayloadStore

logger = logging.getLogger(__name__)

#: At most this long between two sweeps (shorter for a short retention).
MAX_SWEEP_INTERVAL = 3600.0


def sweep_interval(retention: float) -> float:
    return max(1.0, min(MAX_SWEEP_INTERVAL, retention / 4))


async def sweep_forever(store: PayloadStore, retention: float) -> None:
    """Delete expired payloads now and then every :func:`sweep_interval` (cancel to stop)."""
    while True:
        try:
            deleted = await asyncio.to_thread(store.delete_older_than, retention)
            if deleted:
                logger.info("deleted %d offloaded payloads older than %.0f s", deleted, retention)
        except Exception:
            logger.exception("payload retention sweep failed")
        await asyncio.sleep(sweep_interval(retention))
