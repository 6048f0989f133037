"""The SQS calls the transport makes, on boto3 run in worker threads.

Why boto3 in threads and not aiobotocore: aiobotocore pins an exact botocore range that lags
boto3's, so the two cannot be installed side by side at current versions (the ``s3`` extra
needs boto3). A botocore client is thread-safe; each transport owns one client and one small
thread pool, sized so a long poll per subscription never starves publishes.

Queue URLs are looked up once per name and cached; a call that finds the queue gone drops the
cache entry and raises :class:`~asya.errors.UnroutableError`, every other AWS or network failure
becomes :class:`~asya.errors.TransportError`. Message bodies are text on SQS: a body that is
valid UTF-8 made of characters SQS allows travels as is, anything else as base64 with a
message attribute saying so.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from asya.errors import TransportError, UnroutableError

T = TypeVar("T")

#: Message attribute marking a base64 body.
ENCODING_ATTRIBUTE = "asya-body-encoding"
#: Message attribute holding the epoch second a delay longer than SQS's 15 minutes ends.
DELIVER_AT_ATTRIBUTE = "asya-deliver-at"

_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
_STALE_RECEIPT_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "InvalidParameterValue", "AWS.SimpleQueueService.MessageNotInflight"}
)
# What SQS accepts in a message body (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/
# APIReference/API_SendMessage.html): tab, newline, carriage return and these Unicode ranges.
_FORBIDDEN_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _new_client(**kwargs: Any) -> Any:
    """An SQS client from the process's one boto3 session: the session caches the service
    model, which makes a second transport's client ten times cheaper. Sessions are not
    thread-safe, hence the lock."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("sqs", **kwargs)


class QueueGone(TransportError):
    """The queue does not exist (never declared or deleted)."""


class StaleReceipt(TransportError):
    """The receipt handle no longer holds the message (visibility expired, queue purged)."""


def encode_body(body: bytes) -> tuple[str, dict[str, Any]]:
    """The SQS message body for ``body`` and the attributes needed to read it back."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _FORBIDDEN_TEXT.search(text):
        return text, {}
    encoded = base64.b64encode(body).decode("ascii")
    return encoded, {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}}


def decode_body(message: dict[str, Any]) -> bytes:
    text: str = message.get("Body", "")
    encoding = message.get("MessageAttributes", {}).get(ENCODING_ATTRIBUTE, {})
    if encoding.get("StringValue") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise TransportError(f"message {message.get('MessageId')}: bad base64 body") from exc
    return text.encode("utf-8")


def message_size(body: str, attributes: dict[str, Any]) -> int:
    """Bytes SQS counts against its size limit: the body plus each attribute's name, type and
    value."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(str(value.get("StringValue", "")).encode())
    return size


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn botocore's errors into Asya's, naming the operation."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _MISSING_QUEUE_CODES:
            raise QueueGone(f"{what}: the queue does not exist") from exc
        if code in _STALE_RECEIPT_CODES:
            raise StaleReceipt(f"{what}: {exc}") from exc
        raise TransportError(f"{what}: {exc}") from exc
    except botocore.exceptions.NoRegionError as exc:
        raise TransportError(
            f"{what}: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or add "
            "?region=… to the sqs:// URL"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise TransportError(f"{what}: {exc}") from exc


class SqsApi:
    """One boto3 SQS client, its threads and the queue URL cache."""

    def __init__(
        self, *, region: str | None, endpoint: str | None, threads: int, prefix: str
    ) -> None:
        self.prefix = prefix
        self._region = region
        self._endpoint = endpoint
        self._threads = threads
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._urls: dict[str, str] = {}

    @property
    def open(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        if self._client is not None:
            return
        config = botocore.config.Config(
            max_pool_connections=self._threads,
            retries={"mode": "standard", "max_attempts": 5},
        )
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="asya-sqs")
        try:
            with translate("creating the SQS client"):
                self._client = await self._in_thread(
                    functools.partial(
                        _new_client,
                        # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what most SDKs read
                        region_name=self._region or os.environ.get("AWS_REGION") or None,
                        endpoint_url=self._endpoint,
                        config=config,
                    )
                )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def stop(self) -> None:
        client, executor = self._client, self._executor
        self._client, self._executor = None, None
        self._urls.clear()
        if executor is not None:
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.get_running_loop().run_in_executor(executor, client.close)
            executor.shutdown(wait=False)

    async def _in_thread(self, call: Callable[[], T]) -> T:
        if self._executor is None:
            raise TransportError("sqs transport is not connected (call connect() first)")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def call(self, operation: str, what: str, **params: Any) -> Any:
        """Run the client's ``operation`` with ``params``; errors translated, naming ``what``."""
        client = self._client
        if client is None:
            raise TransportError("sqs transport is not connected (call connect() first)")
        with translate(what):
            return await self._in_thread(functools.partial(getattr(client, operation), **params))

    def name_of(self, queue: str) -> str:
        return self.prefix + queue

    async def url(self, queue: str) -> str:
        """The queue's URL; :class:`UnroutableError` when it does not exist."""
        cached = self._urls.get(queue)
        if cached is not None:
            return cached
        try:
            answer = await self.call(
                "get_queue_url", f"looking up queue {queue!r}", QueueName=self.name_of(queue)
            )
        except QueueGone as exc:
            raise UnroutableError(queue) from exc
        url: str = answer["QueueUrl"]
        self._urls[queue] = url
        return url

    def remember(self, queue: str, url: str) -> None:
        self._urls[queue] = url

    def forget(self, queue: str) -> None:
        self._urls.pop(queue, None)

    async def on_queue(self, queue: str, operation: str, what: str, **params: Any) -> Any:
        """``operation`` on ``queue``'s URL; a queue gone since it was cached raises
        :class:`UnroutableError` (and is looked up afresh next time)."""
        url = await self.url(queue)
        try:
            return await self.call(operation, what, QueueUrl=url, **params)
        except QueueGone as exc:
            self.forget(queue)
            raise UnroutableError(queue) from exc
