"""``asya bench runtime``: the runtime's socket round trip against a bare stdlib server.

Both servers run as subprocesses on this machine, in the same run, and answer the same
client: (a) ``benchmarks/_bare_runtime.py``, the ceiling -- framing and a JSON round trip and
nothing else -- and (b) the Asya runtime (``python src/asya/runtime.py``, supervisor + worker)
with a no-op payload-mode handler. Each is called sequentially, then from ``--concurrency``
client processes at once, each client on one kept connection (as the sidecar's runtime
client does), and again with a new connection per request (as the original sidecar did).
Rounds are interleaved and the best round of each configuration is kept, which evens out a
busy machine. Targets: runtime ≥ 80 % of the bare server's requests/s (kept connections);
parent and worker RSS < 30 MiB each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.common import Result, print_table

REPO = Path(__file__).resolve().parent.parent
RUNTIME_FILE = REPO / "src" / "asya" / "runtime.py"
BARE_SERVER = Path(__file__).with_name("_bare_runtime.py")
HEADER = struct.Struct(">I")
MIB = 1024 * 1024
TARGET_RATIO = 0.8
TARGET_RSS_MIB = 30.0
NOOP_HANDLER = "def noop(payload):\n    return payload\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asya bench runtime", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel clients")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    return parser.parse_args(argv)


def request_frame() -> bytes:
    message = {
        "job_id": "6f1c2a9e-0d7b-4b8e-9a51-3f2f6c1d8e77",
        "route": {"steps": ["bench-noop", "next-step"], "current": 0, "metadata": {}},
        "payload": {"text": "hello", "values": [1, 2, 3], "flag": True},
    }
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


#: How a client connects: one kept connection for all its requests, or one per request.
KEPT, PER_REQUEST = "kept connection", "connection per request"


def one_call(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(frame)
    header = sock.recv(4, socket.MSG_WAITALL)
    (length,) = HEADER.unpack(header)
    body = sock.recv(length, socket.MSG_WAITALL)
    if len(body) != length or body[:2] != b"[{":
        raise RuntimeError(f"unexpected response: {body[:200]!r}")


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def client(path: str, count: int, frame: bytes, connections: str = KEPT) -> list[float]:
    """``count`` sequential calls; their latencies in ms."""
    latencies = []
    kept = connect(path) if connections == KEPT else None
    try:
        for _ in range(count):
            start = time.perf_counter()
            if kept is not None:
                one_call(kept, frame)
            else:
                with connect(path) as sock:
                    one_call(sock, frame)
            latencies.append((time.perf_counter() - start) * 1000)
    finally:
        if kept is not None:
            kept.close()
    return latencies


def measure(name: str, path: str, requests: int, concurrency: int, connections: str) -> Result:
    frame = request_frame()
    client(path, max(50, requests // 20), frame, connections)  # warm up
    if concurrency == 1:
        start = time.perf_counter()
        latencies = client(path, requests, frame, connections)
        return Result(name, requests, time.perf_counter() - start, latencies)
    per_client = requests // concurrency
    context = multiprocessing.get_context("fork")
    with context.Pool(concurrency) as pool:
        pool.map(abs, range(concurrency))  # start every client before the clock does
        start = time.perf_counter()
        results = pool.starmap(client, [(path, per_client, frame, connections)] * concurrency)
        seconds = time.perf_counter() - start
    latencies = [latency for result in results for latency in result]
    return Result(name, len(latencies), seconds, latencies)


class Server:
    """A server subprocess and the socket it listens on."""

    def __init__(self, command: list[str], path: str, env: dict[str, str], cwd: str) -> None:
        self.path = path
        self.proc = subprocess.Popen(command, env=env, cwd=cwd, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start serving on {path}")
            time.sleep(0.02)

    def rss_mib(self) -> tuple[float, float | None]:
        """RSS of the process and of its worker child, if any."""
        process = psutil.Process(self.proc.pid)
        children = process.children()
        worker = children[0].memory_info().rss / MIB if children else None
        return process.memory_info().rss / MIB, worker

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def best(results: list[Result]) -> Result:
    return max(results, key=lambda result: result.rate)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    folder = tempfile.mkdtemp(prefix="asya-bench-rt-")
    (Path(folder) / "bench_noop.py").write_text(NOOP_HANDLER)
    env = {
        **os.environ,
        "ASYA_HANDLER": "bench_noop.noop",
        "ASYA_SOCKET_PATH": f"{folder}/runtime.sock",
        "ASYA_LOG_LEVEL": "WARNING",
    }
    bare = Server(
        [sys.executable, str(BARE_SERVER), f"{folder}/bare.sock"],
        f"{folder}/bare.sock",
        env,
        folder,
    )
    runtime = Server([sys.executable, str(RUNTIME_FILE)], f"{folder}/runtime.sock", env, folder)
    runs: dict[str, list[Result]] = {}
    try:
        for _ in range(args.rounds):
            for connections in (KEPT, PER_REQUEST):
                for concurrency in (1, args.concurrency):
                    clients = "sequential" if concurrency == 1 else f"{concurrency} clients"
                    for label, server in (("bare stdlib server", bare), ("asya runtime", runtime)):
                        name = f"{label}, {clients}, {connections}"
                        runs.setdefault(name, []).append(
                            measure(name, server.path, args.requests, concurrency, connections)
                        )
        parent_rss, worker_rss = runtime.rss_mib()
        bare_rss, _ = bare.rss_mib()
    finally:
        bare.stop()
        runtime.stop()
        shutil.rmtree(folder, ignore_errors=True)

    rows = [best(results) for results in runs.values()]
    verdicts = []
    for bare_row, runtime_row in zip(rows[::2], rows[1::2], strict=True):
        ratio = runtime_row.rate / bare_row.rate
        bare_row.extra = {"vs bare": "1.00", "RSS MiB": f"{bare_rss:.1f}"}
        runtime_row.extra = {
            "vs bare": f"{ratio:.2f}",
            "RSS MiB": f"parent {parent_rss:.1f}, worker {worker_rss or 0:.1f}",
        }
        if runtime_row.name.endswith(KEPT):  # the target: kept connections, as the sidecar
            verdicts.append(
                f"{runtime_row.name}: {ratio:.0%} of the bare server"
                f" ({'met' if ratio >= TARGET_RATIO else 'MISSED'})"
            )
    print_table(
        f"asya bench runtime: no-op handler over a Unix socket ({args.requests} requests per"
        f" run, best of {args.rounds} interleaved rounds)",
        rows,
        unit="req/s",
    )
    within = parent_rss < TARGET_RSS_MIB and (worker_rss or 0) < TARGET_RSS_MIB
    print(
        f"target ≥ {TARGET_RATIO:.0%} of the bare server (kept connections): " + "; ".join(verdicts)
    )
    print(
        f"target RSS < {TARGET_RSS_MIB:.0f} MiB each: parent {parent_rss:.1f} MiB,"
        f" worker {worker_rss or 0:.1f} MiB ({'met' if within else 'MISSED'})"
    )
    return 0
