"""``asya bench gateway``: job creation rate, SSE delivery latency and memory at 1,000 streams.

Everything runs on this machine's PostgreSQL (a fresh database, dropped afterwards) and
RabbitMQ (an exchange and queue of this run's own, deleted afterwards):

1. jobs/s through ``POST /tools/call`` (the job's INSERT, its first publish to RabbitMQ, the
   Running update) beside a bare Starlette endpoint doing one INSERT into the same PostgreSQL:
   the ceiling a Python HTTP + database service reaches on this machine;
2. with ``--streams`` SSE clients connected, the delay from ``POST /jobs/{id}/progress`` to the
   update arriving at each client subscribed to that job (p50/p99);
3. the gateway's resident memory (psutil, process and children) idle and with the streams open.

The creation table also shows the CPU the server (with its workers) and this load generator used
(% of one core), so a saturated client or server is visible. ``--workers N`` runs the gateway
with ``ASYA_GATEWAY_WORKERS=N``.

Targets (issue): ≥ 1,000 jobs/s; p99 < 100 ms at 1,000 streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import yaml

from benchmarks.common import SRC_DIR, Result, child_env, free_port, print_table

POSTGRES_ADMIN_URL = os.environ.get(
    "ASYA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RABBITMQ_URL = os.environ.get("ASYA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asya bench gateway", description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000, help="jobs created per run (3000)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (32)")
    parser.add_argument("--streams", type=int, default=1000, help="SSE clients (1000)")
    parser.add_argument(
        "--stream-jobs", type=int, default=100, help="jobs the streams watch, evenly (100)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="progress POSTs per job (5)")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway processes (ASYA_GATEWAY_WORKERS, 1)"
    )
    parser.add_argument("--quick", action="store_true", help="small run: 300 jobs, 200 streams")
    parser.add_argument("--serve-ceiling", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.streams, args.stream_jobs, args.rounds = 300, 200, 20, 3
    return args


# ---------------------------------------------------------------------------------------------
# The ceiling: one Starlette endpoint, one INSERT
# ---------------------------------------------------------------------------------------------


def serve_ceiling(port: int, dsn: str) -> None:
    """A bare Starlette + uvicorn app whose only work is one INSERT per request."""
    import asyncpg  # type: ignore[import-untyped]
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    pool: Any = None

    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        job_id = str(uuid.uuid4())
        await pool.execute(
            "INSERT INTO ceiling_jobs (id, payload) VALUES ($1, $2)", job_id, json.dumps(body)
        )
        return JSONResponse({"job_id": job_id})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS ceiling_jobs (id uuid PRIMARY KEY, payload jsonb,"
            " created_at timestamptz DEFAULT now())"
        )
        yield
        await pool.close()

    app = Starlette(
        routes=[Route("/create", create, methods=["POST"]), Route("/ready", ready)],
        lifespan=lifespan,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------------------------------------
# Set-up and tear-down of the services of one run
# ---------------------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _broker(action: str, exchange: str, queue: str) -> int:
    """Declare (``setup``), count (``depth``) or delete (``teardown``) the run's queue."""
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        if action == "setup":
            ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            declared = await channel.declare_queue(queue, durable=True)
            await declared.bind(ex, routing_key=queue)
            return 0
        if action == "depth":
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        with contextlib.suppress(Exception):
            await channel.queue_delete(queue)
        with contextlib.suppress(Exception):
            await channel.exchange_delete(exchange)
        return 0


async def _wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by ``pid`` and its children (the gateway's workers)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = times.user + times.system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return float(total)


def _rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return float(total) / (1024 * 1024)


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


async def _hammer(
    count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run ``call(i)`` for i < count with ``concurrency`` in flight; (seconds, latencies ms)."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await call(index)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def _session(connections: int) -> aiohttp.ClientSession:
    """The load generator: aiohttp, because httpx's client saturates long before the servers."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout)


WARM_UP = 100


async def _post_json(session: aiohttp.ClientSession, url: str, body: object) -> Any:
    async with session.post(url, json=body) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"POST {url} answered {response.status}: {text[:200]}")
        return json.loads(text)


async def measure_creation(
    name: str, url: str, body: dict[str, Any], jobs: int, concurrency: int, server_pid: int
) -> Result:
    """``WARM_UP`` calls (pools, caches), then ``jobs`` measured ones; failures are counted.

    Also reports the CPU the server and this load generator used (in % of one core): a client
    near 100 % would be measuring itself, not the server.
    """
    errors = 0
    async with _session(concurrency) as session:

        async def call(_index: int) -> None:
            nonlocal errors
            try:
                await _post_json(session, url, body)
            except (aiohttp.ClientError, RuntimeError):
                errors += 1

        await _hammer(WARM_UP, concurrency, call)
        errors = 0
        server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
        seconds, latencies = await _hammer(jobs, concurrency, call)
        server_cpu = _cpu_seconds(server_pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    extra = {
        "errors": str(errors),
        "server CPU": f"{100 * server_cpu / seconds:.0f}%",
        "client CPU": f"{100 * client_cpu / seconds:.0f}%",
    }
    return Result(name, jobs - errors, seconds, latencies, extra=extra)


async def measure_sse(
    gateway_url: str, gateway_pid: int, streams: int, stream_jobs: int, rounds: int
) -> tuple[Result, float, float]:
    """(delivery latencies, RSS idle MB, RSS with the streams open MB)."""
    call = {"name": "bench_noop", "arguments": {}}
    async with _session(streams + 16) as session:
        job_ids = [
            (await _post_json(session, f"{gateway_url}/tools/call", call))["structuredContent"][
                "job_id"
            ]
            for _ in range(stream_jobs)
        ]
        rss_idle = _rss_mb(gateway_pid)
        sent: dict[tuple[str, str], float] = {}
        latencies: list[float] = []
        connected = 0
        all_connected = asyncio.Event()
        last_message = f"bench {rounds - 1}"

        async def listen(job_id: str) -> None:
            nonlocal connected
            async with session.get(f"{gateway_url}/jobs/{job_id}/stream") as response:
                if response.status != 200:
                    raise RuntimeError(f"stream answered {response.status}")
                connected += 1
                if connected == streams:
                    all_connected.set()
                async for raw in response.content:
                    line = raw.decode()
                    if not line.startswith("data:") or '"bench ' not in line:
                        continue
                    arrived = time.perf_counter()
                    message = json.loads(line[5:])["message"]
                    latencies.append((arrived - sent[(job_id, message)]) * 1000)
                    if message == last_message:
                        return

        listeners = [asyncio.create_task(listen(job_ids[i % stream_jobs])) for i in range(streams)]
        await asyncio.wait_for(all_connected.wait(), 120)
        await asyncio.sleep(1.0)  # let the replays settle before measuring
        rss_streams = _rss_mb(gateway_pid)
        started = time.perf_counter()
        for round_index in range(rounds):
            message = f"bench {round_index}"
            report = {
                "step": "bench",
                "step_index": 0,
                "total_steps": rounds + 1,
                "status": "processing",
                "actor_name": "bench",
                "message": message,
            }
            for job_id in job_ids:
                sent[(job_id, message)] = time.perf_counter()
                await _post_json(session, f"{gateway_url}/jobs/{job_id}/progress", report)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*listeners), 120)
        seconds = time.perf_counter() - started
    result = Result(f"SSE x{streams}", len(latencies), seconds, latencies)
    return result, rss_idle, rss_streams


async def measure_all(
    args: argparse.Namespace, gateway: subprocess.Popen[bytes], gateway_url: str, ceiling_url: str,
    ceiling: subprocess.Popen[bytes], exchange: str, queue: str,
) -> None:  # fmt: skip
    await _wait_http(f"{gateway_url}/ready", gateway)
    await _wait_http(f"{ceiling_url}/ready", ceiling)
    body = {"name": "bench_noop", "arguments": {}}
    ceiling_result = await measure_creation(
        "ceiling: Starlette+INSERT",
        f"{ceiling_url}/create", body, args.jobs, args.concurrency, ceiling.pid,
    )  # fmt: skip
    depth_before = await _broker("depth", exchange, queue)
    gateway_result = await measure_creation(
        "gateway /tools/call",
        f"{gateway_url}/tools/call", body, args.jobs, args.concurrency, gateway.pid,
    )  # fmt: skip
    published = await _broker("depth", exchange, queue) - depth_before - WARM_UP
    assert gateway_result.extra is not None and ceiling_result.extra is not None
    gateway_result.extra |= {"published": str(published), "target": ">= 1000/s"}
    ceiling_result.extra |= {"published": "-", "target": ""}
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print_table(
        f"gateway: job creation ({args.concurrency} in flight, PostgreSQL{workers})",
        [ceiling_result, gateway_result],
        unit="jobs/s",
    )
    sse, rss_idle, rss_streams = await measure_sse(
        gateway_url, gateway.pid, args.streams, args.stream_jobs, args.rounds
    )
    sse.extra = {
        "RSS idle MB": f"{rss_idle:.0f}",
        "RSS streams MB": f"{rss_streams:.0f}",
        "target": "p99<100ms",
    }
    print_table(
        f"gateway: progress POST → SSE client ({args.stream_jobs} jobs, "
        f"{args.streams // max(1, args.stream_jobs)} streams each)",
        [sse],
        unit="updates/s",
    )
    met_rate = gateway_result.rate >= 1000
    met_latency = sse.percentile(99) < 100
    print(
        f"targets: jobs/s {'met' if met_rate else 'NOT met'} ({gateway_result.rate:,.0f}); "
        f"SSE p99 {'met' if met_latency else 'NOT met'} ({sse.percentile(99):.1f} ms)"
    )


def run(args: argparse.Namespace) -> int:
    tag = uuid.uuid4().hex[:8]
    database = f"asya_bench_{tag}"
    exchange, queue = f"asya-bench-{tag}", f"bench-{tag}-sink"
    dsn = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    work = Path(tempfile.mkdtemp(prefix="asya-bench-gw-"))
    tools = work / "tools.yaml"
    tool = {"name": "bench_noop", "description": "no-op", "parameters": {}, "route": [queue]}
    tools.write_text(yaml.safe_dump({"tools": [tool]}))
    gateway_port, ceiling_port = free_port(), free_port()
    asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
    asyncio.run(_broker("setup", exchange, queue))
    log = (work / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "asya.cli", "gateway"],
        env=child_env(
            {
                "ASYA_GATEWAY_HOST": "127.0.0.1",
                "ASYA_GATEWAY_PORT": str(gateway_port),
                "ASYA_DATABASE_URL": dsn,
                "ASYA_CONFIG_PATH": str(tools),
                "ASYA_RABBITMQ_URL": RABBITMQ_URL,
                "ASYA_RABBITMQ_EXCHANGE": exchange,
                "ASYA_GATEWAY_WORKERS": str(args.workers),
            }
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ceiling = subprocess.Popen(
        [sys.executable, __file__, "--serve-ceiling", str(ceiling_port), dsn],
        env=child_env({"PYTHONPATH": f"{SRC_DIR.parent}{os.pathsep}{SRC_DIR}"}),
    )
    try:
        asyncio.run(
            measure_all(
                args,
                gateway,
                f"http://127.0.0.1:{gateway_port}",
                f"http://127.0.0.1:{ceiling_port}",
                ceiling,
                exchange,
                queue,
            )
        )
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except RuntimeError as exc:
        print(f"gateway benchmark failed: {exc} (gateway log: {work / 'gateway.log'})")
        return 1
    finally:
        _stop(gateway)
        _stop(ceiling)
        log.close()
        asyncio.run(_broker("teardown", exchange, queue))
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.serve_ceiling:
        serve_ceiling(int(args.serve_ceiling[0]), args.serve_ceiling[1])
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
