"""Payloads by reference through a real Sidecar (memory transport, file store): the runtime
sees the real payload, the queue only the reference
(docs/reference/message.md#payload-reference)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from asya.payloads import REF_FIELD

from .conftest import Harness, make_message

pytestmark = pytest.mark.timeout(30)

BIG = {"blob": "z" * 300_000}


async def start(harness: Harness, tmp_path: Path, threshold: int = 256 * 1024) -> None:
    await harness.start(payload_store_url=f"file://{tmp_path}", payload_offload_threshold=threshold)


async def test_large_output_travels_by_reference_and_next_step_sees_the_payload(
    harness: Harness, tmp_path: Path
) -> None:
    await start(harness, tmp_path)
    await harness.send(make_message([harness.queue, "step-b"], payload=BIG, job_id="j1"))
    out_body = await harness.take_raw("step-b")
    assert len(out_body) < 2000
    out = orjson.loads(out_body)
    assert out["payload"] is None
    assert out[REF_FIELD]["key"].startswith("j1/")
    assert (tmp_path / out[REF_FIELD]["key"]).is_file()

    # The same message arriving back on this sidecar: its runtime gets the real payload.
    harness.runtime.requests.clear()
    await harness.send({**out, "route": {**out["route"], "current": 0}})
    await harness.take_raw("step-b")
    received = orjson.loads(harness.runtime.requests[0])
    assert received["payload"] == BIG
    assert REF_FIELD not in received


async def test_small_output_is_unchanged(harness: Harness, tmp_path: Path) -> None:
    await start(harness, tmp_path)
    await harness.send(make_message([harness.queue, "step-b"], payload={"small": 1}))
    out = await harness.take("step-b")
    assert out["payload"] == {"small": 1}
    assert REF_FIELD not in out
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


async def test_missing_object_is_an_error_end_payload_missing(
    harness: Harness, tmp_path: Path
) -> None:
    await start(harness, tmp_path, threshold=1000)
    await harness.send(make_message([harness.queue, "step-b"], payload=BIG, job_id="j2"))
    out = await harness.take("step-b")
    (tmp_path / out[REF_FIELD]["key"]).unlink()
    harness.runtime.requests.clear()
    await harness.send({**out, "route": {**out["route"], "current": 0}})
    failed = await harness.take("error-end")
    assert failed["error"] == "payload_missing"
    assert harness.runtime.requests == []


@pytest.mark.parametrize(
    "ref",
    [
        {"store": "file", "key": "../../etc/passwd", "size": 1, "sha256": "0" * 64},
        {"store": "s3", "bucket": "other", "key": f"j/{'a' * 32}", "size": 1, "sha256": "0" * 64},
    ],
)
async def test_hostile_reference_is_refused(
    harness: Harness, tmp_path: Path, ref: dict[str, object]
) -> None:
    await start(harness, tmp_path)
    await harness.send(make_message([harness.queue, "step-b"], payload=None) | {REF_FIELD: ref})
    failed = await harness.take("error-end")
    assert failed["error"] == "msg_parsing_error"
    assert harness.runtime.requests == []


async def test_reference_without_a_store_is_payload_missing(harness: Harness) -> None:
    await harness.start()
    ref = {"store": "file", "key": f"j/{'a' * 32}", "size": 1, "sha256": "0" * 64}
    await harness.send(make_message([harness.queue], payload=None) | {REF_FIELD: ref})
    failed = await harness.take("error-end")
    assert failed["error"] == "payload_missing"
