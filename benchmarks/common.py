"""Shared pieces of the benchmarks: latency statistics and the comparison table."""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchmarks._window import Window

SRC_DIR = Path(__file__).resolve().parent.parent / "src"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a benchmark's child process: ``src`` importable, quiet, unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    env.setdefault("ASYA_LOG_LEVEL", "WARNING")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Result:
    """One measured configuration of a benchmark."""

    name: str
    count: int
    seconds: float
    latencies_ms: Sequence[float] = ()
    extra: dict[str, str] | None = None
    #: The raw timestamps the rate comes from (throughput runs of relay and pipeline).
    window: Window | None = None

    @classmethod
    def over(
        cls,
        name: str,
        window: Window,
        latencies_ms: Sequence[float] = (),
        extra: dict[str, str] | None = None,
    ) -> Result:
        """A result whose rate is ``window``'s: N over first start → N-th completion."""
        return cls(name, window.count, window.seconds, latencies_ms, extra, window)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, pct: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")


def print_table(
    title: str,
    results: Sequence[Result],
    unit: str = "msg/s",
    *,
    baseline: Result | None = None,
    baseline_label: str = "vs first",
    caption: str | None = None,
) -> None:
    """Print results side by side, each with its rate relative to ``baseline`` (the first row)."""
    extra_columns: list[str] = []
    for result in results:
        for key in result.extra or {}:
            if key not in extra_columns:
                extra_columns.append(key)
    table = Table(title=title, caption=caption, caption_justify="left")
    for column in ["run", "count", unit, baseline_label, "p50 ms", "p99 ms", *extra_columns]:
        table.add_column(column, justify="left" if column == "run" else "right")
    reference = baseline or (results[0] if results else None)
    base_rate = reference.rate if reference else 0.0
    for result in results:
        ratio = f"{result.rate / base_rate:.2f}" if base_rate else "-"
        table.add_row(
            result.name,
            str(result.count),
            f"{result.rate:,.0f}",
            ratio,
            f"{result.percentile(50):.3f}",
            f"{result.percentile(99):.3f}",
            *[(result.extra or {}).get(column, "") for column in extra_columns],
        )
    console = Console()
    if not console.is_terminal:  # a log or a pipe: print the table whole, no cell folded
        natural = Console(width=10_000).measure(table).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)
