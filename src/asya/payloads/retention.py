"""Deleting offloaded payloads after ``ASYA_PAYLOAD_RETENTION``
(docs/reference/sidecar.md#payloads-by-reference).

The gateway knows when each job ended, so with a payload store it deletes a job's objects once
the job has been over for the retention, and never while it runs
(:func:`sweep_jobs_forever`). Objects no gateway can date (no job id, or a job it does not
know) go once their newest object is older than the retention. In a mesh without a gateway,
the terminal actors' sidecars sweep by the objects' age alone (:func:`sweep_forever`). A store
that fails is logged and tried again at the next round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from asya.payloads.stores import PayloadStore

logger = logging.getLogger(__name__)

#: ASYA_PAYLOAD_RETENTION's default: a day.
DEFAULT_RETENTION = 86400.0
#: At most this long between two sweeps (shorter for a short retention).
MAX_SWEEP_INTERVAL = 3600.0

#: For the job segments asked about: when each job ended (epoch seconds), None while it runs;
#: a segment missing from the answer is a job the caller does not know.
JobEnds = Callable[[list[str]], Awaitable[Mapping[str, float | None]]]


def sweep_interval(retention: float) -> float:
    return max(1.0, min(MAX_SWEEP_INTERVAL, retention / 4))


def expired_jobs(
    written: Mapping[str, float], ended: Mapping[str, float | None], now: float, retention: float
) -> list[str]:
    """The job segments of ``written`` (newest object's time) whose objects may be deleted."""
    cutoff = now - retention
    expired = []
    for job, newest in written.items():
        if job in ended:
            end = ended[job]
            if end is not None and end < cutoff:
                expired.append(job)
        elif newest < cutoff:
            expired.append(job)
    return expired


async def sweep_jobs_once(store: PayloadStore, retention: float, job_ends: JobEnds) -> int:
    """Delete the objects of every expired job; how many objects were deleted."""
    written = await asyncio.to_thread(store.job_times)
    ended = await job_ends(list(written)) if written else {}
    deleted = 0
    for job in expired_jobs(written, ended, time.time(), retention):
        deleted += await asyncio.to_thread(store.delete_job, job)
    return deleted


async def sweep_jobs_forever(store: PayloadStore, retention: float, job_ends: JobEnds) -> None:
    """:func:`sweep_jobs_once` now and then every :func:`sweep_interval` (cancel to stop)."""
    await _forever(lambda: sweep_jobs_once(store, retention, job_ends), retention)


async def sweep_forever(store: PayloadStore, retention: float) -> None:
    """Delete payloads older than ``retention``, now and then every :func:`sweep_interval`."""
    await _forever(lambda: asyncio.to_thread(store.delete_older_than, retention), retention)


async def _forever(sweep: Callable[[], Awaitable[int]], retention: float) -> None:
    while True:
        try:
            deleted = await sweep()
            if deleted:
                logger.info("deleted %d offloaded payloads (retention %.0f s)", deleted, retention)
        except Exception:
            logger.exception("payload retention sweep failed")
        await asyncio.sleep(sweep_interval(retention))
