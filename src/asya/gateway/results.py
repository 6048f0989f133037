"""Results that travel by reference (docs/reference/jobs.md#results-by-reference).

happy-end reports a payload that is in the payload store as its reference (``result_ref``). The
gateway checks it when the report arrives (a missing object fails the job with
``payload_missing``), keeps only the reference in the database, and reads the object whenever
it shows the result: ``GET /jobs/{id}``, the SSE final update, MCP tool results and tasks. A
result whose object is gone by then (deleted after ``ASYA_PAYLOAD_RETENTION``) is shown as
``result: null`` with ``error`` and ``error_details`` saying so; the job's status stays.

In the ``result`` column a reference is stored as ``{"$asya_payload_ref": ref}``. A result a
handler returned that could be mistaken for one (or for the escape itself), at the top level or
as an element of a top-level list, is stored as ``{"$asya_literal": result}``, so nothing a
handler returns is ever followed as a reference.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from asya.gateway import failures
from asya.gateway.models import Job, JobUpdate
from asya.gateway.store import StoreUnavailable
from asya.payloads import InvalidReference, PayloadMissing, PayloadStore, load_payload
from asya.payloads.reference import parse_ref

logger = logging.getLogger(__name__)

REF_KEY = "$asya_payload_ref"
LITERAL_KEY = "$asya_literal"
_MARKS = (REF_KEY, LITERAL_KEY)
PAYLOAD_MISSING = "payload_missing"


class ResultRefused(Exception):
    """A reported ``result_ref`` the gateway cannot use: the job (or branch) fails with it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.error = f"{code}: {message}"
        self.details = failures.details(
            code=code, message=message, type="PayloadMissing", severity="fatal"
        )


def _special(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and not value.keys().isdisjoint(_MARKS)


def stored_form(result: Any) -> Any:
    """``result`` as the ``result`` column keeps an inline result (escaped when needed)."""
    if _special(result) or (isinstance(result, list) and any(map(_special, result))):
        return {LITERAL_KEY: result}
    return result


def listed(stored: Any) -> Any:
    """A stored result as job listings show it, without reading the store: each reference is
    null there (``GET /jobs/{id}`` reads it)."""
    if _special(stored):
        return stored.get(LITERAL_KEY)
    if isinstance(stored, list) and any(map(_special, stored)):
        return [item.get(LITERAL_KEY) if _special(item) else item for item in stored]
    return stored


class JobResults:
    """Accepts reported results and shows stored ones; ``store`` is None without
    ``ASYA_PAYLOAD_STORE_URL`` (then every reference is refused or unreadable)."""

    def __init__(self, store: PayloadStore | None) -> None:
        self.store = store

    # -- a final report arrives ---------------------------------------------------------

    async def accept(self, result: Any, reference: Any) -> Any:
        """What to store for a succeeded report: the inline result, or the checked reference.

        Raises ResultRefused when the reference is unusable, StoreUnavailable when the store
        cannot answer now (the crew retries the report).
        """
        if reference is None:
            return stored_form(result)
        store = self._require_store()
        try:
            ref = parse_ref(reference, store=store.kind, bucket=store.bucket)
        except InvalidReference as exc:
            raise ResultRefused("msg_parsing_error", str(exc)) from None
        try:
            found = await asyncio.to_thread(store.exists, ref.key)
        except Exception as exc:
            raise StoreUnavailable(f"payload store unavailable: {exc}") from exc
        if not found:
            raise ResultRefused(
                PAYLOAD_MISSING, f"result object {ref.key!r} not found in the {ref.store} store"
            )
        return {REF_KEY: ref.to_json()}

    def _require_store(self) -> PayloadStore:
        if self.store is None:
            raise ResultRefused(
                PAYLOAD_MISSING,
                "the result travels by reference but the gateway has no ASYA_PAYLOAD_STORE_URL",
            )
        return self.store

    # -- a result is shown ----------------------------------------------------------------

    async def job(self, job: Job) -> Job:
        """``job`` with its real result; see the module for a result that is gone."""
        try:
            return dataclasses.replace(job, result=await self.shown(job.result))
        except ResultRefused as exc:
            logger.warning("job %s: result unavailable: %s", job.id, exc)
            return dataclasses.replace(job, result=None, error=exc.error, error_details=exc.details)

    async def update(self, update: JobUpdate) -> JobUpdate:
        """A (final) update with its real result, as :meth:`job`."""
        try:
            return dataclasses.replace(update, result=await self.shown(update.result))
        except ResultRefused as exc:
            return dataclasses.replace(
                update, result=None, error=exc.error, error_details=exc.details
            )

    async def shown(self, stored: Any) -> Any:
        """The result a stored value stands for: a trunk's result, or a fan-out job's list of
        its branches' results (each stored on its own)."""
        if _special(stored):
            return await self._unwrap(stored)
        if isinstance(stored, list) and any(map(_special, stored)):
            return list(
                await asyncio.gather(
                    *(self._unwrap(item) if _special(item) else _same(item) for item in stored)
                )
            )
        return stored

    async def _unwrap(self, stored: dict[str, Any]) -> Any:
        if LITERAL_KEY in stored:
            return stored[LITERAL_KEY]
        store = self._require_store()
        try:
            return await load_payload(store, stored[REF_KEY])
        except (InvalidReference, PayloadMissing) as exc:
            raise ResultRefused(
                PAYLOAD_MISSING, f"{exc} (deleted after ASYA_PAYLOAD_RETENTION, or never written)"
            ) from None
        except Exception as exc:
            raise StoreUnavailable(f"payload store unavailable: {exc}") from exc


async def _same(value: Any) -> Any:
    return value
