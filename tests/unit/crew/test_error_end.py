from __future__ import annotations

import json

import pytest

from asya.crew.error_end import ErrorEnd, describe_error, error_details_of
from asya.crew.settings import CrewSettings, S3Settings
from tests.unit.crew.conftest import FakeGateway, S3Server


def error_message(job_id: str | None = "job-e") -> dict[str, object]:
    message: dict[str, object] = {
        "error": "processing_error",
        "error_details": {
            "message": "boom",
            "type": "ValueError",
            "traceback": "Traceback ...",
            "severity": "fatal",
        },
        "original_message": json.dumps({"route": {"steps": ["errq"], "current": 0}}),
        "route": {"steps": ["errq"], "current": 0, "metadata": {}},
        "payload": {"should_fail": True},
        "failed_step": "errq",
        "attempts": 1,
    }
    if job_id is not None:
        message["job_id"] = job_id
    return message


def test_error_end_reports_the_code_and_message_as_the_error_with_its_details(
    gateway: FakeGateway,
) -> None:
    crew = ErrorEnd(CrewSettings(gateway_url=gateway.url))

    assert crew.handle(error_message()) == []

    (request,) = gateway.requests
    assert request.path == "/jobs/job-e/final"
    assert request.body == {
        "status": "failed",
        "error": "processing_error: boom",
        "error_details": {
            "code": "processing_error",
            "message": "boom",
            "type": "ValueError",
            "traceback": "Traceback ...",
            "failed_step": "errq",
            "branch": None,
            "attempts": 1,
            "severity": "fatal",
        },
        "metadata": {},
    }


def test_error_details_of_a_fanned_out_message_name_its_branch_and_null_missing_parts() -> None:
    branch = [{"index": 2, "count": 5}]

    details = error_details_of({"error": "unroutable_error", "branch": branch, "attempts": True})

    assert details == {
        "code": "unroutable_error",
        "message": None,
        "type": None,
        "traceback": None,
        "failed_step": None,
        "branch": branch,
        "attempts": None,
        "severity": None,
    }


def test_error_end_of_a_fan_out_branch_reports_the_branch(gateway: FakeGateway) -> None:
    branch = [{"index": 2, "count": 5}, {"index": 0, "count": 4}]
    message = {**error_message(), "branch": branch}

    ErrorEnd(CrewSettings(gateway_url=gateway.url)).handle(message)

    (request,) = gateway.requests
    assert request.body["branch"] == branch
    assert request.body["error_details"]["branch"] == branch


def test_error_end_details_are_null_where_the_message_says_nothing(
    gateway: FakeGateway,
) -> None:
    message = {"job_id": "job-n", "error": "msg_parsing_error", "original_message": "{"}

    ErrorEnd(CrewSettings(gateway_url=gateway.url)).handle(message)

    details = gateway.requests[0].body["error_details"]
    assert details["code"] == "msg_parsing_error"
    assert details["type"] is None
    assert details["traceback"] is None
    assert details["branch"] is None
    assert "branch" not in gateway.requests[0].body


def test_error_end_persists_under_the_errors_prefix_and_failed_step(
    gateway: FakeGateway, s3: S3Server
) -> None:
    settings = CrewSettings(
        gateway_url=gateway.url,
        s3=S3Settings(bucket=s3.bucket, endpoint=s3.endpoint, access_key="t", secret_key="t"),
    )

    ErrorEnd(settings).handle(error_message("job-x"))

    (obj,) = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert obj["Key"].startswith("asya-errors/")
    assert obj["Key"].endswith("/errq/job-x.json")
    stored = json.loads(s3.client().get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read())
    assert stored == error_message("job-x")
    assert gateway.requests[0].body["metadata"] == {"s3_uri": f"s3://{s3.bucket}/{obj['Key']}"}


def test_error_end_drops_a_message_without_job_id(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    assert ErrorEnd(CrewSettings(gateway_url=gateway.url)).handle(error_message(None)) == []

    assert gateway.requests == []
    assert "processing_error: boom" in caplog.text


def test_describe_error_tolerates_missing_details() -> None:
    assert describe_error({"error": "timeout_error"}) == "timeout_error"
    assert describe_error({"error_details": "broken"}) == "unknown_error"
    assert (
        describe_error({"error": "timeout_error", "error_details": {"message": "Runtime timeout"}})
        == "timeout_error: Runtime timeout"
    )


def test_error_end_drops_a_message_that_is_not_an_object(gateway: FakeGateway) -> None:
    crew = ErrorEnd(CrewSettings(gateway_url=gateway.url))

    assert crew.handle("garbage") == []  # type: ignore[arg-type]

    assert gateway.requests == []


def test_error_details_of_a_poison_message_say_how_many_deliveries_never_finished() -> None:
    message = {
        "error": "poison_message",
        "error_details": {"message": "parked", "deliveries": 5, "last_error": None},
    }
    details = error_details_of(message)
    assert details["code"] == "poison_message"
    assert (details["deliveries"], details["last_error"]) == (5, None)
    assert "deliveries" not in error_details_of({"error": "processing_error"})
