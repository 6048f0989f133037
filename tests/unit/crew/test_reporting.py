from __future__ import annotations

import pytest

from asya.crew.happy_end import HappyEnd
from asya.crew.reporting import GatewayReporter, ReportError, ReportRejected
from asya.crew.settings import CrewSettings
from asya.errors import ConfigError
from tests.helpers import free_port
from tests.unit.crew.conftest import FakeGateway

BODY = {"status": "succeeded", "result": 1, "metadata": {}}


def reporter(url: str, **kwargs: object) -> tuple[GatewayReporter, list[float]]:
    sleeps: list[float] = []
    return (
        GatewayReporter(url, attempts=3, backoff=0.1, sleep=sleeps.append, **kwargs),  # type: ignore[arg-type]
        sleeps,
    )


def test_report_retries_a_failing_gateway_with_backoff_then_succeeds(
    gateway: FakeGateway,
) -> None:
    gateway.statuses = [503, 502]
    client, sleeps = reporter(gateway.url)

    assert client.report_final("j", BODY) is True

    assert len(gateway.requests) == 3
    assert sleeps == [0.1, 0.2]


def test_report_raises_when_the_gateway_stays_down(gateway: FakeGateway) -> None:
    gateway.statuses = [503, 503, 503]
    client, _ = reporter(gateway.url)

    with pytest.raises(ReportError, match="after 3 attempts: HTTP 503"):
        client.report_final("j", BODY)

    assert len(gateway.requests) == 3


def test_report_raises_when_the_gateway_cannot_be_reached() -> None:
    client, sleeps = reporter(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ReportError, match="ConnectError"):
        client.report_final("j", BODY)

    assert len(sleeps) == 2


def test_report_for_an_unknown_job_is_final_and_does_not_raise(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.statuses = [404]
    client, sleeps = reporter(gateway.url)

    assert client.report_final("ghost", BODY) is False

    assert len(gateway.requests) == 1
    assert sleeps == []
    assert "does not know job ghost" in caplog.text


def test_report_refused_for_a_bad_token_raises_without_retrying(gateway: FakeGateway) -> None:
    gateway.statuses = [401]
    client, sleeps = reporter(gateway.url, token="wrong")

    with pytest.raises(ReportRejected, match="HTTP 401"):
        client.report_final("j", BODY)

    assert len(gateway.requests) == 1
    assert sleeps == []


def test_a_handler_whose_gateway_stays_down_raises_so_the_sidecar_retries(
    gateway: FakeGateway,
) -> None:
    gateway.statuses = [500, 500]
    crew = HappyEnd(CrewSettings(gateway_url=gateway.url, report_attempts=2, report_backoff=0.01))

    with pytest.raises(ReportError):
        crew.handle({"job_id": "j", "route": {"steps": ["a"], "current": 1}, "payload": 1})


def test_settings_default_to_no_gateway_and_no_s3() -> None:
    settings = CrewSettings.from_env({})

    assert settings == CrewSettings()
    assert settings.s3 is None


def test_settings_read_s3_with_default_prefixes() -> None:
    settings = CrewSettings.from_env(
        {"ASYA_S3_BUCKET": "b", "ASYA_S3_ENDPOINT": "http://minio:9000", "ASYA_GATEWAY_URL": "x/"}
    )

    assert settings.gateway_url == "x"
    assert settings.s3 is not None
    assert settings.s3.endpoint == "http://minio:9000"
    assert (settings.s3.results_prefix, settings.s3.errors_prefix) == (
        "asya-results/",
        "asya-errors/",
    )


def test_settings_name_the_variable_with_a_bad_value() -> None:
    with pytest.raises(ConfigError, match="ASYA_CREW_REPORT_ATTEMPTS"):
        CrewSettings.from_env({"ASYA_CREW_REPORT_ATTEMPTS": "0"})
    with pytest.raises(ConfigError, match="ASYA_CREW_REPORT_BACKOFF"):
        CrewSettings.from_env({"ASYA_CREW_REPORT_BACKOFF": "soon"})


def test_a_job_id_with_url_characters_stays_one_path_segment(gateway: FakeGateway) -> None:
    client, _ = reporter(gateway.url)

    assert client.report_final("a/b?c=1&d%2 e#f", BODY) is True

    assert [r.path for r in gateway.requests] == ["/jobs/a%2Fb%3Fc%3D1%26d%252%20e%23f/final"]
