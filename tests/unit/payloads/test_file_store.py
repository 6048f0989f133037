"""The local-folder store (``asya up``): a key from a message never leaves the folder, and the
per-job listing and deletion the retention uses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from asya.payloads import REF_FIELD, ClaimCheck, InvalidReference
from asya.payloads.stores import FileStore

HEX = "0123456789abcdef" * 2
HOSTILE_KEYS = [
    "../outside",
    f"../../{HEX}",
    f"job/../../{HEX}",
    "/etc/passwd",
    f"/tmp/{HEX}",
    f"job\x00/{HEX}",
    f"job/{HEX}\x00.txt",
    "",
    ".",
]


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "payloads")


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_hostile_key_is_refused_by_the_reference_check(tmp_path: Path, key: str) -> None:
    claim_check = ClaimCheck(FileStore(tmp_path), threshold=1)
    ref = {"store": "file", "key": key, "size": 1, "sha256": "0" * 64}
    message: dict[str, Any] = {"route": {"steps": ["a"], "current": 0}, "payload": None}
    with pytest.raises(InvalidReference):
        asyncio.run(claim_check.resolve({**message, REF_FIELD: ref}))


@pytest.mark.parametrize("key", [k for k in HOSTILE_KEYS if k not in ("", ".")])
def test_the_store_itself_never_reads_or_writes_outside_its_folder(
    store: FileStore, tmp_path: Path, key: str
) -> None:
    secret = tmp_path / "outside"
    secret.write_bytes(b"secret")
    with pytest.raises(ValueError, match="payload key"):
        store.get(key)
    with pytest.raises(ValueError, match="payload key"):
        store.exists(key)
    with pytest.raises(ValueError, match="payload key"):
        store.put(key, b"overwritten")
    assert secret.read_bytes() == b"secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]


@pytest.mark.parametrize("job", ["..", ".", "a/b", "a\x00b", ""])
def test_delete_job_refuses_anything_but_one_segment(store: FileStore, job: str) -> None:
    with pytest.raises(ValueError, match="invalid job segment"):
        store.delete_job(job)


def test_job_times_and_delete_job(store: FileStore) -> None:
    store.put(f"job-a/{HEX}", b"1")
    store.put(f"job-a/{'f' * 32}", b"2")
    store.put(f"job-b/{HEX}", b"3")
    old = time.time() - 100
    os.utime(store.root / "job-a" / HEX, (old, old))
    times = store.job_times()
    assert set(times) == {"job-a", "job-b"}
    assert times["job-a"] > old  # the newest object counts
    assert store.delete_job("job-a") == 2
    assert not (store.root / "job-a").exists()
    assert store.exists(f"job-b/{HEX}")
    assert store.delete_job("job-never") == 0
