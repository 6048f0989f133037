"""Real processes for the cancellation tests: ``asya gateway`` (one or two replicas on one
database) and ``asya actor`` (runtime + sidecar) on the machine's RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import yaml

from asya.transports import open_transport
from tests.helpers import asya_command, child_env, wait_until
from tests.integration.gateway_vs_actors.mesh import (
    Actor,
    Gateway,
    listen_port,
)

HERE = Path(__file__).resolve().parent
ACTOR_TOKEN = "cancel-actor-token"


@dataclass
class CancelMesh:
    prefix: str
    exchange: str
    rabbitmq_url: str
    database_url: str
    work: Path
    gateways: list[Gateway] = field(default_factory=list)
    actors: list[Actor] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"{self.prefix}-sleep"

    @property
    def happy_end(self) -> str:
        return f"{self.prefix}-happy-end"

    @property
    def error_end(self) -> str:
        return f"{self.prefix}-error-end"

    @property
    def calls_path(self) -> Path:
        return self.work / "calls.txt"

    @property
    def common_env(self) -> dict[str, str]:
        return {
            "ASYA_RABBITMQ_URL": self.rabbitmq_url,
            "ASYA_RABBITMQ_EXCHANGE": self.exchange,
            "ASYA_STEP_HAPPY_END": self.happy_end,
            "ASYA_STEP_ERROR_END": self.error_end,
        }

    def write_tools(self) -> Path:
        path = self.work / "tools.yaml"
        sleep = {
            "name": "sleep",
            "parameters": {
                "seconds": {"type": "number", "default": 30},
                "tag": {"type": "string", "required": True},
            },
            "route": [self.queue],
            "timeout": 120,
        }
        tools = {"tools": [sleep, {**sleep, "name": "sleep_wait", "wait": True}]}
        path.write_text(yaml.safe_dump(tools))
        return path

    def start_gateway(self) -> Gateway:
        port = listen_port()
        env = child_env(
            {
                **self.common_env,
                "ASYA_GATEWAY_HOST": "127.0.0.1",
                "ASYA_GATEWAY_PORT": str(port),
                "ASYA_DATABASE_URL": self.database_url,
                "ASYA_CONFIG_PATH": str(self.write_tools()),
                "ASYA_GATEWAY_ACTOR_TOKEN": ACTOR_TOKEN,
            }
        )
        name = f"gateway-{len(self.gateways)}"
        gateway = Gateway(
            name=name,
            command=asya_command("gateway"),
            env=env,
            log_path=self.work / f"{name}.log",
            port=port,
        )
        gateway.start()
        self.gateways.append(gateway)
        gateway.wait_ready()
        return gateway

    def start_actor(self, gateway_url: str | None = None, wait: bool = True) -> Actor:
        metrics_port = listen_port()
        env = child_env(
            {
                **self.common_env,
                "PYTHONPATH": f"{HERE}:{child_env()['PYTHONPATH']}",
                "ASYA_GATEWAY_URL": gateway_url or self.gateways[0].url,
                "ASYA_GATEWAY_TOKEN": ACTOR_TOKEN,
                "ASYA_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
                "CANCEL_TEST_CALLS": str(self.calls_path),
            }
        )
        name = f"actor-{len(self.actors)}"
        actor = Actor(
            name=name,
            command=asya_command(
                "actor",
                "--handler",
                "cancel_handlers.sleeper",
                "--queue",
                self.queue,
                "--mode",
                "payload",
            ),
            env=env,
            log_path=self.work / f"{name}.log",
            queue=self.queue,
            metrics_port=metrics_port,
        )
        actor.start()
        self.actors.append(actor)
        if wait:
            actor.wait_ready()
        return actor

    def stop(self) -> None:
        for service in [*self.actors, *self.gateways]:
            service.stop()

    # -- observing ---------------------------------------------------------------------------

    def calls(self, tag: str) -> list[int]:
        """Pids of the runtime workers that were called for ``tag``, in order."""
        if not self.calls_path.exists():
            return []
        lines = self.calls_path.read_text().splitlines()
        return [int(line.split()[1]) for line in lines if line.split()[0] == tag]

    def wait_call(self, tag: str, count: int = 1, within: float = 30.0) -> int:
        """The pid of the worker running the ``count``-th call for ``tag``."""
        wait_until(lambda: len(self.calls(tag)) >= count, timeout=within, what=f"call of {tag}")
        return self.calls(tag)[count - 1]

    async def depth(self, queue: str) -> int:
        transport = open_transport(self.rabbitmq_url, exchange=self.exchange)
        await transport.connect()
        try:
            await transport.declare_queue(queue)
            return await transport.depth(queue)
        finally:
            await transport.close()

    async def publish_job_message(self, job_id: str, payload: Mapping[str, Any]) -> None:
        """One more message of ``job_id`` on the actor's queue (as a fan-out branch would be)."""
        message = {
            "job_id": job_id,
            "route": {"steps": [self.queue], "current": 0, "metadata": {"job_id": job_id}},
            "payload": dict(payload),
        }
        transport = open_transport(self.rabbitmq_url, exchange=self.exchange)
        await transport.connect()
        try:
            await transport.declare_queue(self.queue)
            await transport.publish(self.queue, orjson.dumps(message))
        finally:
            await transport.close()


def cancelled_count(actor: Actor) -> float:
    text = httpx.get(f"http://127.0.0.1:{actor.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("asya_actor_messages_processed_total") and 'status="cancelled"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_pid_gone(pid: int, within: float = 5.0) -> float:
    """Seconds until ``pid`` has exited (AssertionError after ``within``)."""
    started = time.monotonic()
    while not pid_gone(pid):
        if time.monotonic() - started > within:
            raise AssertionError(f"process {pid} still runs after {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def new_tag() -> str:
    return uuid.uuid4().hex[:12]
