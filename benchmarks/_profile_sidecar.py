"""Where a sidecar's CPU time goes, per message: py-spy on ``asya actor`` under relay load.

Run as ``python -m benchmarks._profile_sidecar [--messages N] [--prefetch P] [--log-level L]``
from the repository root (py-spy must be installed: ``pip install py-spy``). It preloads N
200-byte messages, starts one no-op actor as ``asya bench relay`` does, and once the first
messages are through samples the sidecar process with ``py-spy record --nonblocking`` for the
middle of the run. The sidecar's CPU time over the sampled stretch (psutil), divided by the
messages that reached the output in it, is split by the share of samples whose stack falls in
each category (``CATEGORIES``: the first rule that matches a frame of the stack, from the
root, wins). The actor logs to this process's stderr: send it to a file (``2>actor.log``), as
a container's log would be. ``--raw FILE`` keeps py-spy's collapsed stacks for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks._amqp import Children, Driver, make_body, unique_prefix

#: (category, pieces of a frame "function (file:line)") in priority order: the first category
#: with a piece in any frame of a stack takes the sample.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (per-message line)", ("logging/", "message_log.py")),
    ("metrics (prometheus)", ("prometheus_client", "sidecar/metrics.py")),
    ("tracing (OpenTelemetry)", ("opentelemetry", "step_spans.py", "asya/tracing.py")),
    ("ack (basic_ack)", ("settle.py", "delivery.py", "_settle (asya/transports/pyamqp.py")),
    ("publish + confirm", ("publish", "_confirm", "_on_ack", "_expire")),
    ("socket writes (publish, ack)", ("_flush",)),
    ("AMQP receive/parse + dispatch", ("_readable", "_on_message", "_dispatch")),
    ("runtime call (framing, socket)", ("runtime_client.py",)),
    ("JSON parse/validate/encode", ("asya/message.py", "asya/runtime.py")),
    ("routing", ("router.py",)),
    ("processor + hooks (own code)", ("processor.py", "hooks.py", "poison.py", "gate.py")),
    ("sidecar task wrapper", ("Sidecar._handle ", "_buffered.py", "transports/base.py")),
)
LOOP = "event loop, tasks, futures"
SYSCALLS = "system calls (kernel: psutil system time)"
#: Frames on whose line the sidecar sits in a socket system call (send, recv, epoll_wait).
SYSCALL_LEAVES = (
    "_Link._flush ",
    "RuntimeClient._send ",
    "RuntimeClient._receive ",
    "EpollSelector.select ",
    "read_ahead.<locals>.<lambda> ",
    "BaseSelectorEventLoop.sock_recv ",
    "BaseSelectorEventLoop._sock_recv ",
)


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any(frames[-1].startswith(leaf) for leaf in SYSCALL_LEAVES):
        return SYSCALLS
    for name, pieces in CATEGORIES:
        if any(piece in frame for frame in frames for piece in pieces):
            return name
    return LOOP


def summarise(raw: str, stretch: Stretch) -> list[tuple[str, int, float]]:
    """(category, samples, µs per message) from py-spy's raw (collapsed) output.

    The sidecar's user CPU time is shared out by the samples of each category; its system CPU
    time (psutil) is one row of its own, for which py-spy's samples in a system call are no
    measure: a thread that has just woken the broker or the runtime is often made to wait for
    the CPU while still "in" the call, and py-spy counts that wait as activity.
    """
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[classify(stack)] += int(count)
    in_calls = samples.pop(SYSCALLS, 0)
    total = sum(samples.values()) or 1
    rows = [(name, count, stretch.user * count / total) for name, count in samples.most_common()]
    return [*rows, (SYSCALLS, in_calls, stretch.system)]


def print_rows(rows: list[tuple[str, int, float]]) -> None:
    print(f"{'category':<40} {'samples':>8} {'µs/msg':>7}")
    for name, samples, us in rows:
        print(f"{name:<40} {samples:>8} {us:>7.0f}")
    print(f"{'total':<40} {sum(r[1] for r in rows):>8} {sum(r[2] for r in rows):>7.0f}")


def sidecar_process(actor: subprocess.Popen[bytes]) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(actor.pid).children(recursive=True):
            if "asya.sidecar" in " ".join(child.cmdline()):
                return child
        time.sleep(0.05)
    raise RuntimeError("no sidecar process under the actor")


@dataclass
class Stretch:
    """Messages through the output and the sidecar's CPU time (µs per message) while sampled."""

    count: int
    user: float
    system: float

    def describe(self, seconds: float) -> str:
        return (
            f"{self.count} messages in {seconds} s ({self.count / seconds:.0f} msg/s), sidecar "
            f"CPU {self.user + self.system:.0f} µs/msg (user {self.user:.0f} + system "
            f"{self.system:.0f})"
        )


async def sampled(command: list[str], sidecar: psutil.Process, driver: Driver) -> Stretch:
    """Run the sampler ``command`` to its end; what went through meanwhile."""
    before, arrived = sidecar.cpu_times(), driver.arrivals.qsize()
    sampler = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await sampler.wait()
    after = sidecar.cpu_times()
    count = max(driver.arrivals.qsize() - arrived, 1)
    return Stretch(
        count,
        (after.user - before.user) / count * 1e6,
        (after.system - before.system) / count * 1e6,
    )


async def profile(args: argparse.Namespace) -> None:
    os.environ["ASYA_LOG_LEVEL"] = args.log_level
    prefix = unique_prefix("profile")
    source, destination = f"{prefix}-in", f"{prefix}-out"
    extra = [f"{prefix}-happy-end", f"{prefix}-error-end"]
    driver = Driver(exchange=prefix, output_queue=destination)
    children = Children()
    try:
        await driver.open([source, destination, *extra])
        await driver.preload(source, make_body([source, destination]), args.messages)
        actor = children.start_actor(source, prefix, args.prefetch, prefix, first=True)
        sidecar = sidecar_process(actor)
        while driver.arrivals.qsize() < args.messages // 10:  # past start-up  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        pid = str(sidecar.pid)
        raw_path = args.raw or tempfile.mktemp(suffix=".txt")
        spy = ["py-spy", "record", "--nonblocking", "-r", str(args.rate), "--format", "raw"]
        spy += ["-d", str(args.seconds), "-o", raw_path, "-p", pid]
        stretch = await sampled(spy, sidecar, driver)
        print(f"sidecar, prefetch {args.prefetch}, log level {args.log_level}, py-spy: ", end="")
        print(stretch.describe(args.seconds))
        raw = await asyncio.to_thread(Path(raw_path).read_text)
        print_rows(summarise(raw, stretch))
        if args.perf:
            perf = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", args.perf]
            perf += ["-p", pid, "--", "sleep", str(args.seconds)]
            stretch = await sampled(perf, sidecar, driver)
            print(f"perf (on-CPU samples, kernel included): {stretch.describe(args.seconds)}")
        if driver.arrivals.qsize() >= args.messages:
            print("the queue ran dry while sampling: raise --messages")
    finally:
        children.stop_all()
        await driver.close(delete=extra)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._profile_sidecar", description=__doc__
    )
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--seconds", type=int, default=8, help="how long py-spy samples")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--perf", help="then sample as long with perf record into this file")
    parser.add_argument("--raw", help="keep py-spy's collapsed stacks in this file")
    asyncio.run(profile(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
