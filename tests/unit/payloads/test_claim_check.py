"""Claim-check on the file store: offload over the threshold, resolve, and refuse bad refs."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from asya.payloads import REF_FIELD, ClaimCheck, InvalidReference, PayloadMissing, open_store
from asya.payloads.stores import FileStore, check_store_url

BIG = "x" * 5000


def message(payload: Any, job_id: str = "job-1") -> dict[str, Any]:
    return {"job_id": job_id, "route": {"steps": ["a", "b"], "current": 1}, "payload": payload}


@pytest.fixture
def claim_check(tmp_path: Path) -> ClaimCheck:
    return ClaimCheck(FileStore(tmp_path), threshold=1000)


def offload(claim_check: ClaimCheck, msg: dict[str, Any]) -> dict[str, Any]:
    body = asyncio.run(claim_check.offload(orjson.dumps(msg)))
    result: dict[str, Any] = orjson.loads(body)
    return result


def test_round_trip_restores_the_payload_and_drops_the_reference(
    claim_check: ClaimCheck, tmp_path: Path
) -> None:
    sent = offload(claim_check, message({"text": BIG}))
    assert sent["payload"] is None
    ref = sent[REF_FIELD]
    assert ref["store"] == "file"
    assert ref["key"].startswith("job-1/")
    assert ref["size"] == len(orjson.dumps({"text": BIG}))
    assert (tmp_path / ref["key"]).is_file()
    assert asyncio.run(claim_check.resolve(sent)) == message({"text": BIG})


def test_small_payload_and_messages_without_reference_pass_unchanged(
    claim_check: ClaimCheck,
) -> None:
    small = message("tiny", job_id="j") | {"other": BIG}
    assert offload(claim_check, small) == small
    assert asyncio.run(claim_check.resolve(small)) is small


def test_unsafe_job_id_never_reaches_the_key(claim_check: ClaimCheck) -> None:
    sent = offload(claim_check, message(BIG, job_id="../../etc"))
    assert sent[REF_FIELD]["key"].startswith("_nojob/")


@pytest.mark.parametrize(
    "change",
    [
        {"key": "../../etc/passwd"},
        {"key": "/etc/passwd"},
        {"key": "job-1/../../x/0123456789abcdef0123456789abcdef"},
        {"key": "other-prefix/job-1/0123456789abcdef0123456789abcdef"},
        {"store": "s3"},
        {"bucket": "someone-elses"},
        {"size": -1},
        {"sha256": "nope"},
    ],
)
def test_hostile_references_are_refused(claim_check: ClaimCheck, change: dict[str, Any]) -> None:
    sent = offload(claim_check, message(BIG))
    sent[REF_FIELD] = {**sent[REF_FIELD], **change}
    with pytest.raises(InvalidReference):
        asyncio.run(claim_check.resolve(sent))


def test_missing_or_altered_object_is_payload_missing(
    claim_check: ClaimCheck, tmp_path: Path
) -> None:
    sent = offload(claim_check, message(BIG))
    path = tmp_path / sent[REF_FIELD]["key"]
    path.write_bytes(path.read_bytes().replace(b"x", b"y"))
    with pytest.raises(PayloadMissing, match="does not match"):
        asyncio.run(claim_check.resolve(sent))
    path.unlink()
    with pytest.raises(PayloadMissing, match="not found"):
        asyncio.run(claim_check.resolve(sent))


def test_retention_deletes_only_old_objects(claim_check: ClaimCheck, tmp_path: Path) -> None:
    old = offload(claim_check, message(BIG, job_id="old"))[REF_FIELD]["key"]
    new = offload(claim_check, message(BIG, job_id="new"))[REF_FIELD]["key"]
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / old, (two_days_ago, two_days_ago))
    assert claim_check.store.delete_older_than(86400) == 1
    assert not (tmp_path / "old").exists()
    assert (tmp_path / new).is_file()


@pytest.mark.parametrize("url", ["s3://", "file://relative", "http://x/y", "file://host/p"])
def test_store_urls_are_checked(url: str) -> None:
    with pytest.raises(ValueError, match="invalid store URL"):
        check_store_url(url)


def test_file_url_opens_a_file_store(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    assert isinstance(store, FileStore)
    assert store.root == tmp_path
