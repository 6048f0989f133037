"""``GET /jobs/{id}/diagnosis``: why a job may not be moving
(docs/reference/gateway-api.md#diagnosis).

Clients cannot see the broker; the gateway can. For a job that is not terminal it asks the
transport how many consumers the queue the job waits on has: the first queue of its route until
an actor reports, then the step that reported last. Transports that cannot tell (SQLite, memory)
answer ``consumers: null`` and no problem is claimed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asya.gateway.models import Job
from asya.transports.base import Transport

logger = logging.getLogger(__name__)

_BROKER_TIMEOUT = 3.0


def waiting_queue(job: Job) -> str:
    steps: list[str] = job.route["steps"]
    return job.current_step or steps[0]


async def diagnose(job: Job, transport: Transport) -> dict[str, Any]:
    """``{job_id, status, queue, consumers, depth, problem}``; ``problem`` is a sentence or None."""
    queue = waiting_queue(job)
    answer: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status,
        "queue": queue,
        "consumers": None,
        "depth": None,
        "problem": None,
    }
    if job.terminal:
        return answer
    try:
        async with asyncio.timeout(_BROKER_TIMEOUT):
            await transport.connect()
            consumers = await transport.consumers(queue)
            depth = await transport.depth(queue) if consumers is not None else None
    except Exception as exc:  # the broker's own errors vary by transport; report, never 500
        logger.info("diagnosis of job %s: cannot ask the broker: %s", job.id, exc)
        reason = str(exc) or type(exc).__name__
        answer["problem"] = f"cannot ask the broker about queue '{queue}': {reason}"
        return answer
    answer["consumers"] = consumers
    answer["depth"] = depth
    if consumers == 0:
        answer["problem"] = f"no actor is consuming queue '{queue}'"
    return answer
