from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from asya.crew import happy_end
from asya.crew.happy_end import HappyEnd, last_step
from asya.crew.settings import CrewSettings, S3Settings
from asya.crew.storage import object_key
from tests.unit.crew.conftest import FakeGateway, S3Server


def finished_message(job_id: str | None = "job-1") -> dict[str, object]:
    message: dict[str, object] = {
        "route": {"steps": ["doubler", "incrementer"], "current": 2, "metadata": {}},
        "payload": {"value": 25},
        "trace": "kept",
    }
    if job_id is not None:
        message["job_id"] = job_id
    return message


def s3_settings(s3: S3Server, **overrides: str) -> S3Settings:
    return S3Settings(
        bucket=s3.bucket,
        endpoint=s3.endpoint,
        access_key="test",
        secret_key="test",
        **overrides,
    )


def test_happy_end_reports_the_payload_as_the_result(gateway: FakeGateway) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url))

    assert crew.handle(finished_message()) == []

    assert len(gateway.requests) == 1
    request = gateway.requests[0]
    assert request.path == "/jobs/job-1/final"
    assert request.body == {"status": "succeeded", "result": {"value": 25}, "metadata": {}}
    assert "authorization" not in request.headers


def test_happy_end_of_a_fan_out_branch_reports_the_branch(gateway: FakeGateway) -> None:
    branch = [{"index": 1, "count": 3}]
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url))

    crew.handle({**finished_message(), "branch": branch})

    assert gateway.requests[0].body == {
        "status": "succeeded",
        "result": {"value": 25},
        "branch": branch,
        "metadata": {},
    }


def test_happy_end_sends_no_branch_for_the_trunk(gateway: FakeGateway) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url))

    crew.handle({**finished_message(), "branch": []})

    assert "branch" not in gateway.requests[0].body


def test_happy_end_sends_the_gateway_token_as_a_bearer_token(gateway: FakeGateway) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url, gateway_token="s3cret"))

    crew.handle(finished_message())

    assert gateway.requests[0].headers["authorization"] == "Bearer s3cret"


def test_happy_end_takes_the_job_id_from_route_metadata_when_missing_at_top_level(
    gateway: FakeGateway,
) -> None:
    message = finished_message(job_id=None)
    message["route"] = {"steps": ["echo"], "current": 1, "metadata": {"job_id": "from-meta"}}

    HappyEnd(CrewSettings(gateway_url=gateway.url)).handle(message)

    assert [r.path for r in gateway.requests] == ["/jobs/from-meta/final"]


def test_happy_end_drops_a_message_without_job_id_and_reports_nothing(
    gateway: FakeGateway, s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url, s3=s3_settings(s3)))

    assert crew.handle(finished_message(job_id=None)) == []

    assert gateway.requests == []
    assert "without job_id" in caplog.text
    buckets = [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    assert s3.bucket not in buckets


def test_happy_end_persists_the_message_to_s3_under_the_dated_step_key(
    gateway: FakeGateway, s3: S3Server
) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url, s3=s3_settings(s3)))
    before = datetime.now(UTC)

    crew.handle(finished_message("job-42"))

    after = datetime.now(UTC)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    expected = {
        f"asya-results/{moment:%Y-%m-%d}/{moment:%H}/incrementer/job-42.json"
        for moment in (before, after)
    }
    assert len(keys) == 1
    assert keys[0] in expected
    stored = json.loads(s3.client().get_object(Bucket=s3.bucket, Key=keys[0])["Body"].read())
    assert stored == finished_message("job-42")
    assert gateway.requests[0].body == {
        "status": "succeeded",
        "result": {"value": 25},
        "metadata": {"s3_uri": f"s3://{s3.bucket}/{keys[0]}"},
    }


def test_happy_end_keeps_each_branch_of_a_job_as_its_own_object(
    gateway: FakeGateway, s3: S3Server
) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url, s3=s3_settings(s3)))

    for index in range(2):
        crew.handle({**finished_message("job-7"), "branch": [{"index": index, "count": 2}]})

    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"])
    assert [key.rsplit("/", 1)[1] for key in keys] == ["job-7.0-2.json", "job-7.1-2.json"]


def test_happy_end_honours_a_custom_results_prefix(gateway: FakeGateway, s3: S3Server) -> None:
    settings = CrewSettings(gateway_url=gateway.url, s3=s3_settings(s3, results_prefix="out/"))

    HappyEnd(settings).handle(finished_message("job-7"))

    (obj,) = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert obj["Key"].startswith("out/")
    assert obj["Key"].endswith("/incrementer/job-7.json")


def test_happy_end_without_a_gateway_only_persists(s3: S3Server) -> None:
    crew = HappyEnd(CrewSettings(s3=s3_settings(s3)))

    assert crew.handle(finished_message("job-9")) == []

    (obj,) = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert obj["Key"].endswith("/incrementer/job-9.json")


def test_last_step_is_the_final_step_of_a_finished_route() -> None:
    assert last_step({"route": {"steps": ["a", "b"], "current": 2}}) == "b"


def test_last_step_is_the_current_step_when_it_returned_nothing() -> None:
    assert last_step({"route": {"steps": ["a", "b"], "current": 0}}) == "a"


def test_last_step_is_unknown_without_steps() -> None:
    assert last_step({"route": {"steps": [], "current": 0}}) == "unknown"
    assert last_step({"payload": 1}) == "unknown"


def test_module_handler_reads_its_settings_from_the_environment_once(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYA_GATEWAY_URL", gateway.url + "/")
    monkeypatch.setenv("ASYA_GATEWAY_TOKEN", "tok")
    monkeypatch.delenv("ASYA_S3_BUCKET", raising=False)
    happy_end._worker_instance.cache_clear()
    try:
        happy_end.handle(finished_message("a"))
        monkeypatch.setenv("ASYA_GATEWAY_TOKEN", "changed")
        happy_end.handle(finished_message("b"))
    finally:
        happy_end._worker_instance.cache_clear()

    assert [r.path for r in gateway.requests] == ["/jobs/a/final", "/jobs/b/final"]
    assert {r.headers["authorization"] for r in gateway.requests} == {"Bearer tok"}


def test_object_key_uses_utc_date_and_hour() -> None:
    local = datetime(2026, 1, 2, 6, 30, tzinfo=timezone(timedelta(hours=5)))  # 01:30 UTC

    assert object_key("p/", local, "step", "id") == "p/2026-01-02/01/step/id.json"


def test_happy_end_drops_a_message_that_is_not_an_object(gateway: FakeGateway) -> None:
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url))

    assert crew.handle(["not", "a", "message"]) == []  # type: ignore[arg-type]

    assert gateway.requests == []
