"""The reference a message carries in place of an offloaded payload, and its validation.

A reference arrives in a queue message, so it is untrusted: its key must have exactly the shape
this module writes (``<job>/<32 hex digits>``), which rules out ``..``, absolute paths and any
other prefix, and its store and bucket must be the ones this process is configured with.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

#: The top-level message field that holds the reference; ``payload`` is then ``null``.
#: Handlers only ever return ``payload``, so this field cannot collide with user data.
REF_FIELD = "payload_ref"

_JOB_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_KEY = re.compile(r"(?P<job>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})/[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: The key segment of payloads that belong to no job.
NO_JOB = "_nojob"


class InvalidReference(ValueError):
    """A ``payload_ref`` this process refuses to follow; the text says why."""


@dataclass(frozen=True, slots=True)
class PayloadRef:
    """Where an offloaded payload lives: ``key`` is relative to the store's root (bucket and
    prefix for S3, the folder for a file store)."""

    store: str  # "s3" or "file"
    key: str
    size: int
    sha256: str
    bucket: str | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"store": self.store}
        if self.bucket is not None:
            fields["bucket"] = self.bucket
        fields.update(key=self.key, size=self.size, sha256=self.sha256)
        return fields


def new_key(job_id: str | None) -> str:
    """A fresh key from the job id (when it is a safe path segment) and a random uuid."""
    segment = job_id if job_id and _JOB_SEGMENT.fullmatch(job_id) and ".." not in job_id else NO_JOB
    return f"{segment}/{uuid.uuid4().hex}"


def job_segment(key: str) -> str:
    """The job part of a key this module wrote."""
    return key.split("/", 1)[0]


def parse_ref(value: Any, *, store: str, bucket: str | None) -> PayloadRef:
    """Check an incoming reference against the configured store; ``InvalidReference`` if it
    is malformed or points anywhere else."""
    if not isinstance(value, dict):
        raise InvalidReference(f"{REF_FIELD} must be an object")
    kind, key = value.get("store"), value.get("key")
    size, digest = value.get("size"), value.get("sha256")
    if kind != store:
        raise InvalidReference(f"{REF_FIELD} names store {kind!r}; this actor uses {store!r}")
    if value.get("bucket") != bucket:
        raise InvalidReference(
            f"{REF_FIELD} names bucket {value.get('bucket')!r}; this actor uses {bucket!r}"
        )
    if not isinstance(key, str) or not _KEY.fullmatch(key) or ".." in key:
        raise InvalidReference(f"{REF_FIELD} has an invalid key {key!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidReference(f"{REF_FIELD} has an invalid size {size!r}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise InvalidReference(f"{REF_FIELD} has an invalid sha256 {digest!r}")
    return PayloadRef(store=store, key=key, size=size, sha256=digest, bucket=bucket)
