"""Object stores for offloaded payloads: S3 (or MinIO, via boto3) and a local folder.

``ASYA_PAYLOAD_STORE_URL`` picks one: ``s3://bucket/prefix`` (credentials, region and
``AWS_ENDPOINT_URL`` from the standard AWS variables) or ``file:///path``. Calls block; the
async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit


class PayloadStore(Protocol):
    """Keys are relative (``<job>/<uuid>``); the store adds its own root."""

    kind: str
    bucket: str | None

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes; None when it does not exist."""

    def delete_older_than(self, seconds: float) -> int:
        """Delete every object written more than ``seconds`` ago; how many were deleted."""


class FileStore:
    """One file per payload under ``root`` (``asya up`` uses ``.asya/payloads``)."""

    kind = "file"
    bucket: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a payload

    def get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def delete_older_than(self, seconds: float) -> int:
        cutoff = time.time() - seconds
        deleted = 0
        if not self.root.is_dir():
            return 0
        for job_dir in self.root.iterdir():
            if not job_dir.is_dir():
                continue
            for path in job_dir.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        deleted += 1
            with contextlib.suppress(OSError):
                job_dir.rmdir()  # only when empty
        return deleted


class S3Store:
    """Objects ``s3://bucket/<prefix>/<key>``; the bucket must exist."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        self.bucket: str | None = bucket
        self._bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        if client is None:
            import boto3  # only when configured: the sidecar runs without the s3 extra

            client = boto3.session.Session().client("s3")
        self._client = client

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self._prefix + key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        except self._client.exceptions.NoSuchKey:
            return None
        data: bytes = answer["Body"].read()
        return data

    def delete_older_than(self, seconds: float) -> int:
        cutoff = time.time() - seconds
        paginator = self._client.get_paginator("list_objects_v2")
        deleted = 0
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            old = [
                {"Key": item["Key"]}
                for item in page.get("Contents", [])
                if item["LastModified"].timestamp() < cutoff
            ]
            if old:
                self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": old})
                deleted += len(old)
        return deleted


def check_store_url(url: str) -> None:
    """ValueError when ``url`` is not ``s3://bucket[/prefix]`` or ``file:///absolute/path``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"invalid store URL {url!r}: expected s3://bucket/prefix")
    elif parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"invalid store URL {url!r}: expected file:///absolute/path")
    else:
        raise ValueError(f"invalid store URL {url!r}: use s3://bucket/prefix or file:///path")


def open_store(url: str) -> PayloadStore:
    """The store ``url`` names (see :func:`check_store_url`)."""
    check_store_url(url)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Store(parts.netloc, parts.path)
    return FileStore(Path(os.path.abspath(parts.path)))
