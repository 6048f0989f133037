"""Producer and consumer processes for the multi-process transport tests.

    python worker.py produce URL EXCHANGE QUEUE PREFIX COUNT
    python worker.py consume URL EXCHANGE QUEUE OUTFILE DONEFILE PREFETCH
    python worker.py hold URL EXCHANGE QUEUE      (take one message, never settle it)

``consume`` writes one line per delivery (``body redelivered``) before acking it, and exits once
DONEFILE exists and nothing arrived for a while. ``hold`` prints ``held <body>`` and then waits
to be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from asya.transports import open_transport


async def produce(url: str, exchange: str, queue: str, prefix: str, count: int) -> None:
    async with open_transport(url, exchange=exchange) as transport:
        for n in range(count):
            await transport.publish(queue, f"{prefix}-{n}".encode())


async def consume(
    url: str, exchange: str, queue: str, outfile: Path, donefile: Path, prefetch: int
) -> None:
    async with open_transport(url, exchange=exchange) as transport:
        iterator = aiter(await transport.consume(queue, prefetch=prefetch))
        with outfile.open("w") as out:
            while True:
                try:
                    delivery = await asyncio.wait_for(anext(iterator), 1.0)
                except TimeoutError:
                    if await asyncio.to_thread(donefile.exists):
                        return
                    continue
                out.write(f"{delivery.body.decode()} {int(delivery.redelivered)}\n")
                await delivery.ack()


async def hold(url: str, exchange: str, queue: str) -> None:
    async with open_transport(url, exchange=exchange) as transport:
        delivery = await anext(aiter(await transport.consume(queue)))
        print(f"held {delivery.body.decode()}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    command, url, exchange, queue, *rest = argv
    if command == "produce":
        asyncio.run(produce(url, exchange, queue, rest[0], int(rest[1])))
    elif command == "consume":
        asyncio.run(consume(url, exchange, queue, Path(rest[0]), Path(rest[1]), int(rest[2])))
    elif command == "hold":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(hold(url, exchange, queue))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
