"""Error classification, memory recovery and the error response shape."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from asya.runtime import (
    CUDA_OOM_ERROR,
    OOM_ERROR,
    PROCESSING_ERROR,
    classify_exception,
    error_response,
    exception_response,
    is_cuda_oom,
    release_memory,
)

SPEC_CUDA_OOM = (
    "CUDA out of memory. Tried to allocate 400.00 GiB. GPU 0 has a total capacity of 79.18 GiB"
    " of which 70.66 GiB is free."
)


class FakeTorch(types.ModuleType):
    """Stands in for torch in sys.modules: an OutOfMemoryError class and a counted cache."""

    def __init__(self) -> None:
        super().__init__("torch")
        self.emptied = 0

        class OutOfMemoryError(RuntimeError):
            pass

        self.OutOfMemoryError = OutOfMemoryError
        self.cuda = types.SimpleNamespace(
            OutOfMemoryError=OutOfMemoryError, empty_cache=self._empty_cache
        )

    def _empty_cache(self) -> None:
        self.emptied += 1


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTorch]:
    torch = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def test_any_exception_is_a_processing_error(no_torch: None) -> None:
    assert classify_exception(ValueError("bad")) == PROCESSING_ERROR
    assert classify_exception(KeyError("k")) == PROCESSING_ERROR


def test_memory_error_is_an_oom_error(no_torch: None) -> None:
    assert classify_exception(MemoryError()) == OOM_ERROR


def test_spec_cuda_message_is_a_cuda_oom_without_torch(no_torch: None) -> None:
    assert classify_exception(RuntimeError(SPEC_CUDA_OOM)) == CUDA_OOM_ERROR


def test_cuda_message_in_the_cause_counts(no_torch: None) -> None:
    wrapped = ValueError("inference failed")
    wrapped.__cause__ = RuntimeError(SPEC_CUDA_OOM)

    assert is_cuda_oom(wrapped)


def test_torch_out_of_memory_class_is_a_cuda_oom_whatever_its_text(fake_torch: FakeTorch) -> None:
    assert classify_exception(fake_torch.OutOfMemoryError("allocation failed")) == CUDA_OOM_ERROR
    assert classify_exception(RuntimeError("allocation failed")) == PROCESSING_ERROR


def test_detection_off_makes_every_failure_a_processing_error(fake_torch: FakeTorch) -> None:
    for exc in (MemoryError(), RuntimeError(SPEC_CUDA_OOM), fake_torch.OutOfMemoryError()):
        assert classify_exception(exc, oom_detection=False) == PROCESSING_ERROR


def test_cuda_oom_empties_the_cache_when_torch_is_loaded(fake_torch: FakeTorch) -> None:
    release_memory(CUDA_OOM_ERROR, cuda_cleanup=True)

    assert fake_torch.emptied == 1


def test_cuda_oom_leaves_the_cache_when_cleanup_is_off(fake_torch: FakeTorch) -> None:
    release_memory(CUDA_OOM_ERROR, cuda_cleanup=False)
    release_memory(OOM_ERROR, cuda_cleanup=True)

    assert fake_torch.emptied == 0


def test_cuda_cleanup_never_imports_torch(no_torch: None) -> None:
    release_memory(CUDA_OOM_ERROR, cuda_cleanup=True)

    assert "torch" not in sys.modules


def test_failing_empty_cache_is_only_logged(
    fake_torch: FakeTorch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("CUDA driver gone")

    fake_torch.cuda.empty_cache = broken
    release_memory(CUDA_OOM_ERROR, cuda_cleanup=True)

    assert "torch.cuda.empty_cache() failed: RuntimeError: CUDA driver gone" in caplog.text


@pytest.mark.parametrize(
    ("code", "severity", "retry_after"),
    [
        ("processing_error", "fatal", None),
        ("msg_parsing_error", "fatal", None),
        ("connection_error", "fatal", None),
        ("oom_error", "recoverable", 30),
        ("cuda_oom_error", "recoverable", 60),
    ],
)
def test_error_response_carries_severity_and_retry_after(
    code: str, severity: str, retry_after: int | None
) -> None:
    (error,) = error_response(code, "what happened", "SomeError", "trace")

    expected = {"message": "what happened", "type": "SomeError", "traceback": "trace"}
    expected["severity"] = severity
    if retry_after is not None:
        expected["retry_after"] = retry_after  # type: ignore[assignment]
    assert error == {"error": code, "details": expected}


def test_exception_response_has_the_class_message_and_traceback() -> None:
    try:
        raise ValueError("invalid value: 7")
    except ValueError as exc:
        (error,) = exception_response(PROCESSING_ERROR, exc)

    details = error["details"]
    assert (details["type"], details["message"]) == ("ValueError", "invalid value: 7")
    assert details["traceback"].startswith("Traceback (most recent call last):")
    assert details["traceback"].rstrip().endswith("ValueError: invalid value: 7")


def test_exception_without_text_is_named_by_its_class() -> None:
    (error,) = exception_response(PROCESSING_ERROR, KeyboardInterrupt())

    assert error["details"]["message"] == "KeyboardInterrupt"


def test_exception_whose_str_fails_still_gets_an_answer(no_torch: None) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    assert classify_exception(Unprintable()) == PROCESSING_ERROR
    (error,) = exception_response(PROCESSING_ERROR, Unprintable())
    assert error["details"]["message"] == "<Unprintable: str() failed>"
