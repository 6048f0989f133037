"""A 20 MiB payload through three actors and a fan-out of 4, on RabbitMQ and on SQS: on the
queue only references travel, every handler sees the full payload, and a missing object fails
the job cleanly. On SQS, an output over the queue's limit without a store is a clear error."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from asya.payloads import REF_FIELD

from .conftest import PREFIX, OffloadMesh

pytestmark = pytest.mark.timeout(300)

MIB = 1024 * 1024
STARTUP = 90.0  # the first message waits for the actors to start


def test_20_mib_payload_through_three_actors_and_a_fan_out_of_4(
    offload_mesh: OffloadMesh,
) -> None:
    mesh = offload_mesh
    tag = f"t-{uuid.uuid4().hex}"
    blob = hashlib.sha256(tag.encode()).hexdigest() * (20 * MIB // 64)
    mesh.send(["first", "fanout", "last"], {"tag": tag, "count": 4, "blob": blob}, job_id=tag)

    finished = mesh.happy_end.wait_for(tag, count=4, timeout=STARTUP + 120)
    indexes = set()
    for received in finished:
        assert len(received.body) < 4096  # the reference, not 20 MiB
        assert received.data["payload"] is None
        assert received.data[REF_FIELD]["key"].startswith(f"{tag}/")
        resolved = asyncio.run(mesh.claim_check.resolve(received.data))
        assert resolved["payload"]["blob"] == blob
        indexes.add(resolved["payload"]["index"])
    assert indexes == {0, 1, 2, 3}
    assert mesh.error_end.matching(tag) == []
    stored = mesh.s3.list_objects_v2(Bucket=mesh.bucket, Prefix=f"{PREFIX}/{tag}/")
    assert stored["KeyCount"] == 1 + 1 + 4 + 4  # the input, first's output, fanout's 4, last's 4


def test_missing_object_fails_the_job_with_payload_missing(offload_mesh: OffloadMesh) -> None:
    mesh = offload_mesh
    tag = f"t-{uuid.uuid4().hex}"
    ref = {
        "store": "s3",
        "bucket": mesh.bucket,
        "key": f"{tag}/{uuid.uuid4().hex}",
        "size": 10,
        "sha256": "0" * 64,
    }
    mesh.send(["first", "last"], None, job_id=tag, **{REF_FIELD: ref})
    [failed] = mesh.error_end.expect(tag, timeout=STARTUP)
    assert failed["error"] == "payload_missing"


def test_reference_to_another_bucket_is_refused(offload_mesh: OffloadMesh) -> None:
    mesh = offload_mesh
    tag = f"t-{uuid.uuid4().hex}"
    ref = {
        "store": "s3",
        "bucket": "someone-elses-bucket",
        "key": f"{tag}/{uuid.uuid4().hex}",
        "size": 10,
        "sha256": "0" * 64,
    }
    mesh.send(["first"], None, job_id=tag, **{REF_FIELD: ref})
    [failed] = mesh.error_end.expect(tag, timeout=STARTUP)
    assert failed["error"] == "msg_parsing_error"
    assert "someone-elses-bucket" in failed["error_details"]["message"]


def test_an_output_over_the_sqs_limit_without_a_store_goes_to_error_end_saying_why(
    offload_mesh: OffloadMesh,
) -> None:
    """SQS refuses bodies over 256 KiB: an actor without ASYA_PAYLOAD_STORE_URL whose handler
    returns 300 KiB sends the job to error-end with ``message_too_large`` (and the input, which
    fits) instead of retrying a publish that can never succeed."""
    mesh = offload_mesh
    if mesh.transport != "sqs":
        pytest.skip("only SQS caps the size of a message")
    tag = f"t-{uuid.uuid4().hex}"
    mesh.send(["bare-grow", "last"], {"tag": tag, "size_kb": 300}, job_id=tag)
    [failed] = mesh.error_end.expect(tag, timeout=STARTUP)
    assert failed["error"] == "message_too_large"
    assert "ASYA_PAYLOAD_STORE_URL" in failed["error_details"]["message"]
    assert failed["payload"] is None  # the output that did not fit
    assert tag in failed["original_message"]
    assert mesh.happy_end.matching(tag) == []
    assert "retry" not in mesh.log("bare-grow").lower()
