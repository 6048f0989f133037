"""Object stores for offloaded payloads: S3 (or MinIO, via boto3) and a local folder.

``ASYA_PAYLOAD_STORE_URL`` picks one: ``s3://bucket/prefix`` (credentials, region and
``AWS_ENDPOINT_URL`` from the standard AWS variables) or ``file:///path``. Calls block; the
async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from asya.envconfig import Env
from asya.errors import ConfigError


class PayloadStore(Protocol):
    """Keys are relative (``<job>/<uuid>``); the store adds its own root."""

    kind: str
    bucket: str | None

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes; None when it does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete_older_than(self, seconds: float) -> int:
        """Delete every object written more than ``seconds`` ago; how many were deleted."""

    def job_times(self) -> dict[str, float]:
        """Each job segment holding objects, with its newest object's time (epoch seconds)."""

    def delete_job(self, job: str) -> int:
        """Delete every object of one job segment; how many were deleted."""


def _job_key(job: str) -> str:
    """``job`` as one safe key segment (ValueError otherwise)."""
    if not job or "/" in job or "\x00" in job or job in (".", ".."):
        raise ValueError(f"invalid job segment {job!r}")
    return job


class FileStore:
    """One file per payload under ``root`` (``asya up`` uses ``.asya/payloads``)."""

    kind = "file"
    bucket: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        """The file of ``key``, which must stay inside the folder. References are validated
        before they get here (asya.payloads.reference); this is the last line of defence."""
        if "\x00" in key or key.startswith("/") or os.path.isabs(key):
            raise ValueError(f"invalid payload key {key!r}: absolute, or with a NUL")
        root = self.root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"payload key {key!r} leaves the store's folder")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a payload

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def job_times(self) -> dict[str, float]:
        times: dict[str, float] = {}
        if not self.root.is_dir():
            return times
        for job_dir in self.root.iterdir():
            if not job_dir.is_dir():
                continue
            for path in job_dir.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    written = path.stat().st_mtime
                    times[job_dir.name] = max(written, times.get(job_dir.name, written))
        return times

    def delete_job(self, job: str) -> int:
        folder = self._path(_job_key(job))
        deleted = 0
        if not folder.is_dir():
            return 0
        for path in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
        return deleted

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

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def job_times(self) -> dict[str, float]:
        times: dict[str, float] = {}
        for item in self._objects(self._prefix):
            job, slash, _ = item["Key"][len(self._prefix) :].partition("/")
            if slash:
                written = item["LastModified"].timestamp()
                times[job] = max(written, times.get(job, written))
        return times

    def delete_job(self, job: str) -> int:
        folder = f"{self._prefix}{_job_key(job)}/"
        return self._delete(item["Key"] for item in self._objects(folder))

    def _delete(self, keys: Iterable[str]) -> int:
        objects = [{"Key": key} for key in keys]
        for start in range(0, len(objects), 1000):  # DeleteObjects takes at most 1000 keys
            batch = objects[start : start + 1000]
            self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": batch})
        return len(objects)

    def delete_older_than(self, seconds: float) -> int:
        cutoff = time.time() - seconds
        return self._delete(
            item["Key"]
            for item in self._objects(self._prefix)
            if item["LastModified"].timestamp() < cutoff
        )


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


def store_url_from_env(env: Env) -> str | None:
    """``ASYA_PAYLOAD_STORE_URL`` checked (a ConfigError naming it), or None when it is unset."""
    url = env.get_optional_str("ASYA_PAYLOAD_STORE_URL")
    if url is not None:
        try:
            check_store_url(url)
        except ValueError as exc:
            raise ConfigError("ASYA_PAYLOAD_STORE_URL", str(exc)) from exc
    return url


def open_store(url: str) -> PayloadStore:
    """The store ``url`` names (see :func:`check_store_url`)."""
    check_store_url(url)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Store(parts.netloc, parts.path)
    return FileStore(Path(os.path.abspath(parts.path)))
