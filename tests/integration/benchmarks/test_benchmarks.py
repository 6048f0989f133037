"""``asya bench relay`` and ``asya bench pipeline`` run tiny, so the benchmarks cannot rot.

Each is run as a user runs it, from the repository root, on the machine's RabbitMQ. Beyond
"it finishes", the tests check what makes a figure honest: every throughput row names its
window, and the rate printed is N over that window's raw timestamps.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import asya_command, child_env

# serial: they run the benchmarks for real, and a throughput run beside four busy workers
# measures the workers (docs/contributing.md#tests).
pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.serial, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[3]
HAS_PYAMQP = importlib.util.find_spec("amqp") is not None
HAS_CELERY = importlib.util.find_spec("celery") is not None

#: A --verbose line: "NAME: first start 0.000 s, first completion F s, N-th completion L s
#: → N / L s = R msg/s (...)", the raw timestamps (relative to the first start) of one row.
TIMELINE = re.compile(
    r"^  (?P<name>.+?): first start 0\.000 s, first completion (?P<first>[\d.]+) s, "
    r"N-th completion (?P<last>[\d.]+) s → (?P<count>\d+) / [\d.]+ s = (?P<rate>[\d,]+) msg/s",
    re.MULTILINE,
)


def run_bench(*args: str) -> str:
    done = subprocess.run(
        asya_command("bench", *args),
        cwd=REPO,
        env=child_env({"ASYA_LOG_LEVEL": "WARNING", "COLUMNS": "250"}),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def timelines(output: str) -> dict[str, re.Match[str]]:
    return {match["name"]: match for match in TIMELINE.finditer(output)}


def assert_rates_come_from_the_window(output: str, count: int) -> None:
    for name, line in timelines(output).items():
        first, last = float(line["first"]), float(line["last"])
        assert int(line["count"]) == count, name
        assert 0 <= first <= last, name
        assert float(line["rate"].replace(",", "")) == pytest.approx(count / last, rel=0.02), name
        table_row = rf"│ {re.escape(name)}\s+│\s+{count} │\s+{line['rate']} │"
        assert re.search(table_row, output), f"the table's msg/s for {name} is the window's"


def test_relay_compares_the_actor_with_both_bare_relays_against_the_ceiling() -> None:
    # 1,000 messages: the bare runtime's ~40 µs each must add up to several of the kernel's
    # 10 ms CPU-time ticks to show in its row.
    output = run_bench(
        "relay", "--messages", "1000", "--prefetch", "10", "--latency-samples", "5", "--verbose"
    )

    rows = {"bare aio-pika relay", "asya actor"}
    if HAS_PYAMQP:
        rows |= {"bare py-amqp relay", "relay + socket call"}
    assert set(timelines(output)) == rows
    assert_rates_come_from_the_window(output, 1000)
    assert "vs ceiling" in output
    assert "window: from the first step's first message" in output
    assert re.search(r"prefetch  10: asya actor / bare \S+ relay = \d+\.\d\d", output)
    if HAS_PYAMQP:  # the floor: the relay's CPU and its bare runtime's, both counted
        assert re.search(r"of the relay \+ socket call floor: \d+\.\d\d", output)
        assert "bare runtime" in output


def test_pipeline_times_every_system_over_the_same_window() -> None:
    args = ["--messages", "150", "--latency-samples", "3", "--verbose"]
    output = run_bench("pipeline", *args, *(["--vs", "celery"] if HAS_CELERY else []))

    names = set(timelines(output))
    expected = {
        "asya: 3 actors, RabbitMQ (prefetch 10)",
        "asya: 3 actors, SQLite (prefetch 10)",
        "bare aio-pika: 3 chained relays (prefetch 10)",
    }
    if HAS_PYAMQP:
        expected.add("bare py-amqp: 3 chained relays (prefetch 10)")
    if HAS_CELERY:
        expected |= {
            "celery: 3-task chain, 3 processes, defaults",
            "celery: 3-task chain, 3 processes, acks_late + confirms",
        }
    assert names == expected
    assert_rates_come_from_the_window(output, 150)
    assert "asya / ceiling (bare " in output
    for kind in ("sidecar", "runtime", "relay", *(["celery worker"] if HAS_CELERY else [])):
        assert kind in output  # the cpu µs/msg column names each process kind
