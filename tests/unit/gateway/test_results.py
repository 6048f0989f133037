"""Results by reference in the gateway: what is stored for a report, what clients are shown,
and that nothing a handler returns is ever followed as a reference."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from asya.gateway.models import SUCCEEDED, Job, utcnow
from asya.gateway.results import JobResults, ResultRefused, listed, stored_form
from asya.payloads import REF_FIELD, ClaimCheck
from asya.payloads.stores import FileStore

BIG = {"blob": "x" * 5000}


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path)


def reference(store: FileStore, payload: Any, job_id: str = "job-1") -> dict[str, Any]:
    message = {"job_id": job_id, "route": {"steps": ["a"], "current": 1}, "payload": payload}
    body = asyncio.run(ClaimCheck(store, threshold=1).offload(orjson.dumps(message)))
    ref: dict[str, Any] = orjson.loads(body)[REF_FIELD]
    return ref


def job(result: Any) -> Job:
    now = utcnow()
    return Job(
        "job-1", "tool", SUCCEEDED, {}, None, result, None, None, None, None, 100.0, None, 1, 1,
        now, now,
    )  # fmt: skip


def test_a_reference_is_stored_small_and_shown_as_the_real_payload(store: FileStore) -> None:
    results = JobResults(store)
    stored = asyncio.run(results.accept(None, reference(store, BIG)))
    assert len(orjson.dumps(stored)) < 400
    assert asyncio.run(results.job(job(stored))).result == BIG
    assert listed(stored) is None  # listings do not read the store


def test_a_fan_out_result_mixes_inline_and_referenced_branches(store: FileStore) -> None:
    results = JobResults(store)
    by_ref = asyncio.run(results.accept(None, reference(store, BIG)))
    inline = asyncio.run(results.accept({"small": 1}, None))
    assert asyncio.run(results.shown([by_ref, inline, None])) == [BIG, {"small": 1}, None]


@pytest.mark.parametrize(
    "value",
    [
        {"$asya_payload_ref": {"store": "file", "key": "x/y", "size": 1, "sha256": "0" * 64}},
        {"$asya_literal": 1},
        [{"$asya_payload_ref": {}}, 2],
        {"$asya_payload_ref": 1, "other": 2},
        [1, {"a": 2}],
        None,
    ],
)
def test_a_handler_result_that_looks_like_a_reference_comes_back_unchanged(
    store: FileStore, value: Any
) -> None:
    results = JobResults(store)
    stored = asyncio.run(results.accept(value, None))
    assert asyncio.run(results.shown(stored)) == value
    assert listed(stored) == value
    assert stored_form(value) == stored


def test_a_report_whose_object_is_missing_fails_with_payload_missing(store: FileStore) -> None:
    ref = reference(store, BIG)
    (store.root / ref["key"]).unlink()
    with pytest.raises(ResultRefused) as refused:
        asyncio.run(JobResults(store).accept(None, ref))
    assert refused.value.details["code"] == "payload_missing"


def test_a_reference_without_a_gateway_store_or_to_elsewhere_is_refused(
    store: FileStore, tmp_path: Path
) -> None:
    ref = reference(store, BIG)
    with pytest.raises(ResultRefused, match="ASYA_PAYLOAD_STORE_URL"):
        asyncio.run(JobResults(None).accept(None, ref))
    for hostile in ({**ref, "key": "../../etc/passwd"}, {**ref, "store": "s3"}):
        with pytest.raises(ResultRefused, match="msg_parsing_error"):
            asyncio.run(JobResults(store).accept(None, hostile))


def test_a_result_gone_after_the_retention_is_shown_as_an_error_not_a_crash(
    store: FileStore,
) -> None:
    results = JobResults(store)
    ref = reference(store, BIG)
    stored = asyncio.run(results.accept(None, ref))
    store.delete_job("job-1")
    original = job(stored)
    shown = asyncio.run(results.job(original))
    assert shown.status == SUCCEEDED
    assert shown.result is None
    assert str(shown.error).startswith("payload_missing: ")
    assert (shown.error_details or {})["code"] == "payload_missing"
    assert dataclasses.replace(shown, result=stored, error=None, error_details=None) == original
