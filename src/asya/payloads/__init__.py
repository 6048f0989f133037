"""Payloads by reference (claim-check): large payloads travel through an object store, and the
queue message carries a small reference in their place
(docs/reference/message.md#payload-reference).
"""

from asya.payloads.claim_check import ClaimCheck, PayloadMissing, load_payload
from asya.payloads.reference import REF_FIELD, InvalidReference
from asya.payloads.stores import PayloadStore, open_store

__all__ = [
    "REF_FIELD",
    "ClaimCheck",
    "InvalidReference",
    "PayloadMissing",
    "PayloadStore",
    "load_payload",
    "open_store",
]
