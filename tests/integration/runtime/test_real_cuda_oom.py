"""The runtime against a real CUDA out-of-memory error
(docs/reference/runtime-protocol.md#error-codes): skipped without a GPU.

CI has no GPU; run it on a machine with torch and CUDA (no services, no conftest needed):
``PYTHONPATH=. python3 -m pytest -c /dev/null --noconftest -p no:cacheprovider
tests/integration/runtime/test_real_cuda_oom.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.runtime.rtclient import RuntimeProcess, message

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)


@pytest.fixture(params=[True, False], ids=["cleanup", "no-cleanup"])
def gpu_runtime(request: pytest.FixtureRequest) -> Iterator[tuple[RuntimeProcess, bool]]:
    cleanup = request.param
    runtime = RuntimeProcess(
        "rt_gpu_handlers.gpu",
        {"ASYA_CUDA_CLEANUP_ON_OOM": "true" if cleanup else "false"},
    ).wait_ready(timeout=120)  # importing torch takes a while
    yield runtime, cleanup
    print(runtime.logs())
    runtime.stop()


def ask(runtime: RuntimeProcess, **payload: Any) -> list[Any]:
    return runtime.call(message(payload, steps=["gpu"]), timeout=120)


def test_a_real_cuda_oom_is_a_recoverable_error_and_the_worker_stays_usable(
    gpu_runtime: tuple[RuntimeProcess, bool],
) -> None:
    runtime, _ = gpu_runtime
    [before] = ask(runtime, action="matmul")
    assert before["payload"]["sum"] == 1024.0**3

    [error] = ask(runtime, action="oom")
    assert error["error"] == "cuda_oom_error"
    details = error["details"]
    assert details["severity"] == "recoverable"
    assert details["retry_after"] == 60
    assert details["type"] == "OutOfMemoryError"
    assert "CUDA out of memory" in details["message"]
    assert "Traceback" in details["traceback"]
    print(f"\nreal message: {details['message'][:200]}")

    [again] = ask(runtime, action="matmul")
    assert again["payload"]["sum"] == 1024.0**3
    assert again["payload"]["pid"] == before["payload"]["pid"]  # same worker, not a restart


def test_memory_the_failed_step_held_goes_back_to_the_gpu_only_with_cleanup(
    gpu_runtime: tuple[RuntimeProcess, bool],
) -> None:
    # torch frees its *unused* cached blocks itself before raising OutOfMemoryError; what the
    # failed step still held is released only after the error was answered. The runtime's
    # empty_cache() must come after that, or those GiB stay reserved in torch's cache.
    runtime, cleanup = gpu_runtime
    [error] = ask(runtime, action="oom_holding", gib=8)
    assert error["error"] == "cuda_oom_error"

    [after] = ask(runtime, action="stats")
    reserved = after["payload"]["reserved_gib"]
    print(f"\nreserved after the OOM: {reserved:.2f} GiB (cleanup={cleanup})")
    assert after["payload"]["allocated_gib"] < 1  # nothing leaked: the step's tensor is freed
    if cleanup:
        assert reserved < 1  # handed back to the GPU
    else:
        assert reserved >= 8  # still cached by torch, as configured
