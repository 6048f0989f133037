"""Routing, fan-out, error-end, retries and a consumer killed mid-message, with SQS (moto's
server) as the broker: the scenarios of ``sidecar_on_transport`` on this run's queues
(prefixed names, deleted at the end)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sidecar_on_transport import SidecarScenarios, TransportMesh, running_mesh


@pytest.fixture(scope="module")
def mesh(
    run_id: str, sqs_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TransportMesh]:
    log_dir = tmp_path_factory.mktemp("sidecar_on_sqs-logs")
    with running_mesh(sqs_url, "", f"asya-test-{run_id}-sqs-", log_dir) as running:
        yield running


class TestSidecarOnSqs(SidecarScenarios):
    """A killed actor's message comes back after the visibility timeout (3 s here)."""
