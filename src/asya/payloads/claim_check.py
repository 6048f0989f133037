"""Offloading a message's payload to a store, and resolving it back (the claim-check pattern).

Publishers (sidecars, and the gateway for a job's first message) send through
:meth:`ClaimCheck.publish`, which offloads only bodies over the threshold (one length check on
the hot path) or refused as too large; the sidecar calls :meth:`ClaimCheck.resolve` only for
messages that carry a reference, so messages under the threshold cost nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from asya.errors import MessageTooLargeError
from asya.message import Message, decode_json, encode_json, job_id_of
from asya.payloads.reference import REF_FIELD, PayloadRef, new_key, parse_ref
from asya.payloads.stores import PayloadStore

#: ASYA_PAYLOAD_OFFLOAD_THRESHOLD's default: bodies larger than this carry their payload by
#: reference (SQS's default message size limit).
DEFAULT_THRESHOLD = 256 * 1024
#: A payload this small stays inline even in a large message (its bulk is elsewhere).
MIN_OFFLOAD_BYTES = 1024


class PayloadMissing(Exception):
    """The referenced object is gone (retention, a wiped store) or does not match its
    reference: the job fails with ``payload_missing``."""


class ClaimCheck:
    def __init__(self, store: PayloadStore, threshold: int) -> None:
        self.store = store
        self.threshold = threshold

    async def publish(self, body: bytes, send: Callable[[bytes], Awaitable[None]]) -> bytes:
        """Send ``body`` with ``send``, its payload by reference when the body is over the
        threshold or the transport refuses it as too large; the body that was sent.

        ``MessageTooLargeError`` when even the reference does not fit, or the payload is too
        small to move.
        """
        if len(body) > self.threshold:
            body = await self.offload(body)
        try:
            await send(body)
        except MessageTooLargeError:
            # Over the broker's limit though under the threshold (SQS counts attributes and
            # base64 too): by reference after all.
            smaller = await self.offload(body)
            if smaller is body:
                raise
            body = smaller
            await send(body)
        return body

    async def offload(self, body: bytes) -> bytes:
        """``body`` with its payload stored and replaced by a reference (unchanged when it has
        no payload worth moving, or already carries a reference)."""
        message = decode_json(body)
        if not isinstance(message, dict) or "payload" not in message or REF_FIELD in message:
            return body
        data = encode_json(message["payload"])
        if len(data) < MIN_OFFLOAD_BYTES:
            return body
        key = new_key(job_id_of(message))
        await asyncio.to_thread(self.store.put, key, data)
        ref = PayloadRef(
            store=self.store.kind,
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            bucket=self.store.bucket,
        )
        message["payload"] = None
        message[REF_FIELD] = ref.to_json()
        return encode_json(message)

    async def resolve(self, message: Message) -> Message:
        """``message`` with its referenced payload back in place (itself when it has none).

        Raises ``InvalidReference`` for a reference that points outside this store and
        ``PayloadMissing`` when the object is absent or altered.
        """
        if REF_FIELD not in message:
            return message
        payload = await load_payload(self.store, message[REF_FIELD])
        return {**_without_ref(message), "payload": payload}


async def load_payload(store: PayloadStore, reference: Any) -> Any:
    """The payload an untrusted ``reference`` points at in ``store``; ``InvalidReference`` or
    ``PayloadMissing`` when it cannot be had."""
    ref = parse_ref(reference, store=store.kind, bucket=store.bucket)
    data = await asyncio.to_thread(store.get, ref.key)
    return _checked_payload(ref, data)


def _without_ref(message: Message) -> dict[str, Any]:
    return {name: value for name, value in message.items() if name != REF_FIELD}


def _checked_payload(ref: PayloadRef, data: bytes | None) -> Any:
    if data is None:
        raise PayloadMissing(f"payload object {ref.key!r} not found in the {ref.store} store")
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise PayloadMissing(f"payload object {ref.key!r} does not match its size or sha256")
    return decode_json(data)
