"""Fixtures of the runtime process tests: runtimes started as real subprocesses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

from tests.integration.runtime.rtclient import RuntimeProcess, StartRuntime


@pytest.fixture
def start_runtime() -> Iterator[StartRuntime]:
    """Start a runtime (``python src/asya/runtime.py`` unless ``command`` says otherwise) and
    wait for its socket; every runtime started is stopped, worker included, at teardown."""
    started: list[RuntimeProcess] = []

    def start(
        handler: str,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        wait: bool = True,
    ) -> RuntimeProcess:
        runtime = RuntimeProcess(handler, env, command)
        started.append(runtime)
        return runtime.wait_ready() if wait else runtime

    yield start
    for runtime in started:
        print(f"--- log of runtime {runtime.proc.args} ---\n{runtime.logs()}")  # shown on failure
        runtime.stop()


@pytest.fixture(scope="module")
def conditional_runtime() -> Iterator[RuntimeProcess]:
    """One runtime shared by a module's tests, serving ``rt_handlers.conditional``."""
    runtime = RuntimeProcess("rt_handlers.conditional").wait_ready()
    yield runtime
    runtime.stop()
