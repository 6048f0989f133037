"""A small mesh whose every process writes its spans to one file (``ASYA_TEST_SPAN_FILE``).

``asya gateway`` on SQLite; ``split`` → ``upper`` → ``exclaim`` and the happy-end crew as
``asya actor``s on this machine's RabbitMQ. ``exclaim`` logs as JSON.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import asya_command, child_env, delete_rabbitmq_objects
from tests.integration.gateway_vs_actors.mesh import (
    ACTOR_TOKEN,
    Actor,
    Gateway,
    gateway_service,
    listen_port,
)

HERE = Path(__file__).resolve().parent
STEPS = ("split", "upper", "exclaim")


@dataclass
class TracedMesh:
    gateway: Gateway
    actors: dict[str, Actor]
    span_file: Path
    work: Path


def _actor(role: str, queue: str, mode: str, handler: str, env: dict[str, str]) -> Actor:
    work = Path(env["TRACES_WORK"])
    metrics_port = listen_port()
    full_env = child_env(
        {
            **env,
            "PYTHONPATH": f"{HERE}:{child_env()['PYTHONPATH']}",
            "ASYA_GATEWAY_TOKEN": ACTOR_TOKEN,
            "ASYA_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
        }
    )
    return Actor(
        name=role,
        command=asya_command("actor", "--handler", handler, "--queue", queue, "--mode", mode),
        env=full_env,
        log_path=work / f"actor-{role}.log",
        queue=queue,
        metrics_port=metrics_port,
    )


@pytest.fixture(scope="session")
def traced_mesh(
    request: pytest.FixtureRequest, run_id: str, rabbitmq_url: str
) -> Iterator[TracedMesh]:
    work = Path(tempfile.mkdtemp(prefix=f"asya-traces-{run_id}-"))
    span_file = work / "spans.jsonl"
    prefix = f"trc-{run_id}"
    exchange = f"asya-traces-{run_id}"
    queues = {role: f"{prefix}-{role}" for role in (*STEPS, "happy-end", "error-end")}
    common = {
        "ASYA_RABBITMQ_URL": rabbitmq_url,
        "ASYA_RABBITMQ_EXCHANGE": exchange,
        "ASYA_STEP_HAPPY_END": queues["happy-end"],
        "ASYA_STEP_ERROR_END": queues["error-end"],
        "ASYA_TEST_SPAN_FILE": str(span_file),
    }
    tools = work / "tools.yaml"
    tools.write_text(
        yaml.safe_dump(
            {
                "tools": [
                    {
                        "name": "shout_words",
                        "description": "Each word in capitals with an exclamation mark",
                        "parameters": {"words": {"type": "array", "required": True}},
                        "route": [queues[step] for step in STEPS],
                    }
                ]
            }
        )
    )
    gateway = gateway_service("gateway", f"sqlite:///{work / 'jobs.db'}", common, tools, work)
    actor_env = {**common, "ASYA_GATEWAY_URL": gateway.url, "TRACES_WORK": str(work)}
    actors = {
        step: _actor(
            step,
            queues[step],
            "payload",
            f"trace_handlers.{step}",
            {**actor_env, **({"ASYA_LOG_FORMAT": "json"} if step == "exclaim" else {})},
        )
        for step in STEPS
    }
    actors["happy-end"] = _actor(
        "happy-end",
        queues["happy-end"],
        "message",
        "asya.crew.happy_end.handle",
        {**actor_env, "ASYA_IS_TERMINAL": "true", "ASYA_ENABLE_VALIDATION": "false"},
    )
    services = [*actors.values(), gateway]
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_ready(timeout=90)
        yield TracedMesh(gateway=gateway, actors=actors, span_file=span_file, work=work)
    finally:
        for service in services:
            if service.alive():
                assert service.proc is not None
                service.proc.terminate()
        for service in services:
            service.stop()
        delete_rabbitmq_objects(rabbitmq_url, exchange, list(queues.values()))
        if request.session.testsfailed:
            print(f"\ntraces: process logs and spans kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
