"""Persisting outcomes to S3 or MinIO (docs/reference/crew.md#storage-layout), so a result outlives
the job's database row.

Objects are laid out ``{prefix}{YYYY-MM-DD}/{HH}/{step}/{job_id}.json`` (UTC): browsable by hour
and by the step that produced them. boto3 is imported only when a bucket is configured, so the
crew works without the ``s3`` extra when persistence is off.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from asya.crew.settings import S3Settings

logger = logging.getLogger(__name__)


def object_key(prefix: str, when: datetime, step: str, job_id: str) -> str:
    """The object key for one outcome; ``when`` is converted to UTC."""
    moment = when.astimezone(UTC)
    return f"{prefix}{moment:%Y-%m-%d}/{moment:%H}/{step}/{job_id}.json"


class S3Store:
    """Writes JSON documents to one bucket, creating it on first use if it does not exist."""

    def __init__(self, settings: S3Settings) -> None:
        import boto3

        self._settings = settings
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region,
        )
        self._bucket_checked = False

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self._settings.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise
            logger.info("Creating bucket %s", self._settings.bucket)
            self._client.create_bucket(Bucket=self._settings.bucket)
        self._bucket_checked = True

    def put(self, prefix: str, step: str, job_id: str, document: object) -> str:
        """Store ``document`` as JSON and return its ``s3://bucket/key`` URI."""
        self._ensure_bucket()
        key = object_key(prefix, datetime.now(UTC), step, job_id)
        self._client.put_object(
            Bucket=self._settings.bucket,
            Key=key,
            Body=orjson.dumps(document, option=orjson.OPT_INDENT_2),
            ContentType="application/json",
        )
        uri = f"s3://{self._settings.bucket}/{key}"
        logger.info("Persisted job %s to %s", job_id, uri)
        return uri
