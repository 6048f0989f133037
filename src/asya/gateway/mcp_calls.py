"""Wait-mode MCP calls in flight on every replica, so ``notifications/cancelled`` can reach them.

On the stateless transport a client's ``notifications/cancelled`` arrives as a POST of its own,
naming only the JSON-RPC id of the call it abandons, and behind a load balancer it may reach
another replica than the one holding the call. Ids are chosen by each client (the SDKs count
from 0 or 1), so an id alone does not say whose call it is: a call is known by the id together
with what else the two POSTs share, namely the ``Mcp-Session-Id`` header (absent on the
stateless transport), the credential (``Authorization``) and the client's address. A digest of
the four is kept in the job store while the call waits (``mcp_waiting_calls``), so whichever
replica receives the notification finds the job; one that matches no waiting call, or several,
cancels nothing (docs/reference/gateway-api.md#mcp-cancellation).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from asya.gateway.schema import OPEN_JOB, jobs, mcp_waiting_calls
from asya.gateway.store import JobStore, StoreUnavailable

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
CANCELLED_METHOD = "notifications/cancelled"
#: How long the end of a call may take to remove its row, also when its client went away.
REMOVE_LIMIT = 10.0


def call_key(headers: Mapping[str, str], client_host: str | None, request_id: str | int) -> str:
    """What identifies one client's request, as 64 hex digits whatever the parts' sizes.

    The JSON-RPC id keeps its type (``1`` and ``"1"`` differ); the credential is never stored.
    """
    parts = [
        headers.get(SESSION_HEADER, ""),
        headers.get("authorization", ""),
        client_host or "",
        request_id,
    ]
    # stdlib json: it writes any int the SDK parsed, and escapes lone surrogates
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def cancelled_request_id(message: Any) -> str | int | None:
    """The ``requestId`` a ``notifications/cancelled`` body names, or None for any other body."""
    if not isinstance(message, dict) or "id" in message:
        return None
    if message.get("method") != CANCELLED_METHOD:
        return None
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return None
    return request_id


@dataclass
class WaitingCall:
    """One call while it waits; ``abandoned`` once it has ended, if its client cancelled it."""

    abandoned: bool = False


class WaitingCalls:
    """Wait-mode ``tools/call`` requests in flight on any replica, each with the job it follows."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    @contextlib.asynccontextmanager
    async def track(self, key: str, job_id: str) -> AsyncIterator[WaitingCall]:
        """Known to every replica as waiting on ``job_id`` while the block runs."""
        call = WaitingCall()
        stored = await self._add(key, job_id)
        try:
            yield call
        finally:
            if stored:
                with anyio.move_on_after(REMOVE_LIMIT, shield=True):
                    call.abandoned = await self._remove(key, job_id)

    async def claim(self, key: str) -> str | None:
        """The job of the one open call known by ``key``, marked as abandoned by its client;
        None when there is none, or several."""
        calls = mcp_waiting_calls

        async def work(conn: AsyncConnection) -> str | None:
            async with conn.begin():
                open_calls = (
                    sa.select(calls.c.job_id)
                    .join(jobs, jobs.c.id == calls.c.job_id)
                    .where(calls.c.call_key == key, OPEN_JOB)
                    .limit(2)
                )
                found = (await conn.execute(open_calls)).all()
                if len(found) != 1:
                    return None
                mark = (
                    calls.update()
                    .where(calls.c.call_key == key, calls.c.job_id == found[0].job_id)
                    .values(cancelled=True)
                    .returning(calls.c.job_id)
                )
                job_id: str | None = (await conn.execute(mark)).scalar()
                return job_id

        return await self._store.run(work)

    async def _add(self, key: str, job_id: str) -> bool:
        async def work(conn: AsyncConnection) -> None:
            async with conn.begin():
                await conn.execute(mcp_waiting_calls.insert(), {"call_key": key, "job_id": job_id})

        try:
            await self._store.run(work)
        except StoreUnavailable as exc:  # the call goes on; only its cancel will not be found
            logger.warning("job %s: waiting call not recorded: %s", job_id, exc)
            return False
        return True

    async def _remove(self, key: str, job_id: str) -> bool:
        """Forget the call; whether its client had cancelled it."""
        calls = mcp_waiting_calls
        remove = (
            calls.delete()
            .where(calls.c.call_key == key, calls.c.job_id == job_id)
            .returning(calls.c.cancelled)
        )

        async def work(conn: AsyncConnection) -> bool:
            async with conn.begin():
                return bool((await conn.execute(remove)).scalar())

        try:
            return await self._store.run(work)
        except StoreUnavailable as exc:  # the row stays; it ends with its job
            logger.warning("job %s: waiting call not removed: %s", job_id, exc)
            return False
