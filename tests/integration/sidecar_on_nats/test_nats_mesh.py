"""Routing, fan-out, error-end, retries and a consumer killed mid-message, with NATS
JetStream as the broker: the scenarios of ``sidecar_on_transport`` in a stream of this run's
own (its exchange), which goes with its last queue at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sidecar_on_transport import SidecarScenarios, TransportMesh, running_mesh


@pytest.fixture(scope="module")
def mesh(
    run_id: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TransportMesh]:
    # every process (actors and test side) uses this URL, so they declare identical consumers
    url = f"{nats_url}?ack_wait=2s"
    exchange = f"asya-test-{run_id}-nats"
    log_dir = tmp_path_factory.mktemp("sidecar_on_nats-logs")
    with running_mesh(url, exchange, f"{exchange}-", log_dir) as running:
        yield running


class TestSidecarOnNats(SidecarScenarios):
    """A killed actor's message comes back after the ack wait (2 s here)."""
