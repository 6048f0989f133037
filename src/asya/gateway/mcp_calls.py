"""The wait-mode MCP calls in flight on this replica, so ``notifications/cancelled`` can reach them.

On the stateless transport a client's ``notifications/cancelled`` arrives as a POST of its own,
naming only the JSON-RPC id of the call it abandons. Ids are chosen by each client (the SDKs
count from 0 or 1), so an id alone does not say whose call it is: a call is known by the id
together with what else the two POSTs share, namely the ``Mcp-Session-Id`` header (absent on
the stateless transport), the credential (``Authorization``, kept only as a hash) and the
client's address. A notification that matches no call, or several, cancels nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

SESSION_HEADER = "mcp-session-id"
CANCELLED_METHOD = "notifications/cancelled"

#: (session id, credential hash, client address, JSON-RPC id as JSON: ``1`` and ``"1"`` differ)
CallKey = tuple[str, str, str, str]


def call_key(headers: Mapping[str, str], client_host: str | None, request_id: Any) -> CallKey:
    """What identifies one client's request among the calls this replica waits on."""
    credential = headers.get("authorization", "")
    fingerprint = hashlib.sha256(credential.encode()).hexdigest() if credential else ""
    return (
        headers.get(SESSION_HEADER, ""),
        fingerprint,
        client_host or "",
        orjson.dumps(request_id).decode(),
    )


def cancelled_request_id(message: Any) -> Any | None:
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


class WaitingCalls:
    """Wait-mode ``tools/call`` requests in flight here, each with the job it follows."""

    def __init__(self) -> None:
        self._jobs: dict[CallKey, list[str]] = {}

    def __len__(self) -> int:
        return sum(len(job_ids) for job_ids in self._jobs.values())

    @contextlib.contextmanager
    def track(self, key: CallKey, job_id: str) -> Iterator[None]:
        """Known as waiting on ``job_id`` while the block runs."""
        self._jobs.setdefault(key, []).append(job_id)
        try:
            yield
        finally:
            job_ids = self._jobs[key]
            job_ids.remove(job_id)
            if not job_ids:
                del self._jobs[key]

    def job_for(self, key: CallKey) -> str | None:
        """The job of the one call known by ``key``; None when there is none, or several."""
        job_ids = self._jobs.get(key, [])
        return job_ids[0] if len(job_ids) == 1 else None
