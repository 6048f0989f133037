"""Deadline enforcement: a job past its timeout becomes Failed, even if no actor answers.

Deadlines live in the database, so a job created before a restart (or by another replica) is
still timed out; the store's "not yet terminal" guard makes replicas sweeping together fail a
job once.
"""

from __future__ import annotations

import asyncio
import logging

from asya.gateway.models import utcnow
from asya.gateway.service import JobService
from asya.gateway.store import StoreUnavailable

logger = logging.getLogger(__name__)


async def sweep_once(service: JobService) -> int:
    """Fail every expired job; returns how many this call failed."""
    failed = 0
    for job in await service.store.expired_jobs(utcnow()):
        if await service.time_out(job):
            failed += 1
    return failed


async def run_sweeper(service: JobService, interval: float) -> None:
    """Sweep forever (cancel to stop); a database outage is logged and waited out."""
    while True:
        try:
            await sweep_once(service)
        except StoreUnavailable as exc:
            logger.warning("deadline sweep skipped: %s", exc)
        except Exception:
            logger.exception("deadline sweep failed")
        await asyncio.sleep(interval)
