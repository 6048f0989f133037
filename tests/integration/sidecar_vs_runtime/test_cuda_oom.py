"""CUDA out-of-memory with torch loaded: classified, and the cache emptied
(docs/reference/runtime-protocol.md#error-codes).

The handler puts a stand-in ``torch`` module in ``sys.modules`` (no GPU or torch needed): its
``cuda.empty_cache()`` writes a marker file, so the test sees whether the runtime called it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_error_end
from tests.integration.sidecar_vs_runtime.harness import (
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services


@pytest.mark.parametrize(
    ("by_class", "cleanup", "error_type"),
    [
        (False, "true", "RuntimeError"),
        (True, "true", "OutOfMemoryError"),
        (False, "false", "RuntimeError"),
    ],
    ids=["message-text", "torch-class", "cleanup-off"],
)
def test_a_cuda_oom_with_torch_loaded_is_recoverable_and_empties_the_cache(
    suite: SuiteConfig,
    broker: Broker,
    error_end: Inbox,
    procs: Processes,
    tid: str,
    by_class: bool,
    cleanup: str,
    error_type: str,
) -> None:
    queue = suite.q(f"cuda-{tid[2:10]}")
    env = suite.env({"ASYA_CUDA_CLEANUP_ON_OOM": cleanup, "ASYA_MAX_RETRIES": "0"})
    wait_consuming(broker, {queue: procs.actor(f"cuda-{tid[2:10]}", "fake_torch_oom", queue, env)})
    marker = Path(suite.socket_dir) / f"{tid}.emptied"
    sent = message([queue], {"test_id": tid, "by_class": by_class, "cache_marker": str(marker)})
    broker.publish(queue, sent)

    [out] = error_end.expect(tid)

    assert_error_end(
        out,
        sent,
        code="cuda_oom_error",
        failed_step=queue,
        severity="recoverable",
        error_type=error_type,
    )
    assert marker.exists() is (cleanup == "true")
