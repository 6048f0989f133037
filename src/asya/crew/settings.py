"""Crew settings, read once per runtime worker from the ``ASYA_*`` environment
(docs/reference/crew.md#environment).

The crew runs inside a runtime worker, so there is no CLI to pass flags through: everything is
an environment variable, parsed here into frozen dataclasses so a bad value fails loudly (with
the variable's name) on the first message rather than half-way through a report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from asya.envconfig import Env

DEFAULT_RESULTS_PREFIX = "asya-results/"
DEFAULT_ERRORS_PREFIX = "asya-errors/"


@dataclass(frozen=True)
class S3Settings:
    """Where outcomes are persisted; present only when ``ASYA_S3_BUCKET`` is set."""

    bucket: str
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    results_prefix: str = DEFAULT_RESULTS_PREFIX
    errors_prefix: str = DEFAULT_ERRORS_PREFIX


@dataclass(frozen=True)
class CrewSettings:
    """Everything a happy-end or error-end worker needs."""

    gateway_url: str | None = None
    gateway_token: str | None = None
    report_attempts: int = 3
    report_backoff: float = 0.5
    http_timeout: float = 10.0
    s3: S3Settings | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CrewSettings:
        env = Env(os.environ if environ is None else environ)
        bucket = env.get_optional_str("ASYA_S3_BUCKET")
        s3 = None
        if bucket is not None:
            s3 = S3Settings(
                bucket=bucket,
                endpoint=env.get_optional_str("ASYA_S3_ENDPOINT"),
                access_key=env.get_optional_str("ASYA_S3_ACCESS_KEY"),
                secret_key=env.get_optional_str("ASYA_S3_SECRET_KEY"),
                region=env.get_str("ASYA_S3_REGION", "us-east-1"),
                results_prefix=env.get_str("ASYA_S3_RESULTS_PREFIX", DEFAULT_RESULTS_PREFIX),
                errors_prefix=env.get_str("ASYA_S3_ERRORS_PREFIX", DEFAULT_ERRORS_PREFIX),
            )
        gateway_url = env.get_optional_str("ASYA_GATEWAY_URL")
        return cls(
            gateway_url=gateway_url.rstrip("/") if gateway_url else None,
            gateway_token=env.get_optional_str("ASYA_GATEWAY_TOKEN"),
            report_attempts=env.get_int("ASYA_CREW_REPORT_ATTEMPTS", 3, minimum=1),
            report_backoff=env.get_duration("ASYA_CREW_REPORT_BACKOFF", 0.5),
            http_timeout=env.get_duration("ASYA_CREW_HTTP_TIMEOUT", 10.0),
            s3=s3,
        )
