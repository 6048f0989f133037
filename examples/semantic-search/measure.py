"""Where the time of a search goes: the model's load, each step's latency, Asya's share.

Run it beside a running mesh (``asya up`` in this folder, in another terminal):

    python measure.py --searches 5

For each step it compares three times per message:

* **handler** — the handler alone: for ``search-embed`` as the worker itself timed it (start
  the mesh with ``SEARCH_TIMINGS=1 asya up``: each result then carries ``embed_ms``); for the
  light steps, and without ``SEARCH_TIMINGS``, the handler called here in this process on the
  same inputs (the model is loaded here too, which also gives its load time);
* **runtime call** — the sidecar's ``runtime_execution_duration_seconds``: the handler plus the
  Unix-socket round trip and the JSON framing of the runtime;
* **sidecar** — the sidecar's ``processing_duration_seconds``: from taking the message off the
  queue to settling it, so it adds progress reports, routing and publishing the next message.

Asya's share of a step is ``(sidecar − handler) / sidecar``. The time a message waits in a
queue is in none of them: it shows as the job's wall time minus the slowest branch's steps.
Sidecar metrics come from each replica's ``/metrics`` address in ``.asya/up.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
QUERIES = [
    "How do bees make honey?",
    "When did people first walk on the Moon?",
    "How should I prepare for a long-distance race?",
    "Why do some volcanoes explode?",
    "How does a computer network start a connection?",
]
STEPS = ["search-chunk", "search-embed", "search-score"]
Totals = dict[tuple[str, str], float]


HISTOGRAMS = {  # metric → column; the sums are over every message of the actor's replicas
    "processing_duration_seconds": "sidecar",
    "runtime_execution_duration_seconds": "runtime",
    "queue_send_duration_seconds": "send",
}


def sidecar_totals(status: dict[str, Any]) -> Totals:
    """(actor, column or "count") → sums over the actor's replicas, from their /metrics."""
    totals: Totals = defaultdict(float)
    for name, actor in status["actors"].items():
        for process in actor["processes"]:
            if not process["metrics"]:
                continue
            text = httpx.get(f"http://{process['metrics']}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                column = next((c for m, c in HISTOGRAMS.items() if family.name.endswith(m)), None)
                for sample in family.samples if column else []:
                    if sample.name.endswith("_sum"):
                        totals[name, column] += sample.value
                    elif sample.name.endswith("_count") and column == "sidecar":
                        totals[name, "count"] += sample.value
    return totals


def run_search(gateway: str, query: str, text: str) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    body = {"name": "search_document", "arguments": {"query": query, "text": text}}
    answer = httpx.post(f"{gateway}/tools/call", json=body, timeout=10).raise_for_status()
    job_id = answer.json()["structuredContent"]["job_id"]
    while True:
        job = httpx.get(f"{gateway}/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("Succeeded", "Failed"):
            if job["status"] == "Failed":
                raise SystemExit(f"search failed: {job['error']}")
            return time.perf_counter() - started, list(job["result"])
        time.sleep(0.02)


def handler_times(queries: list[str], text: str) -> tuple[float, dict[str, list[float]]]:
    """The model's load time and each step's handler time per message, in this process."""
    import handlers

    started = time.perf_counter()
    embedder = handlers.Embedder()
    load = time.perf_counter() - started
    times: dict[str, list[float]] = defaultdict(list)

    def timed(step: str, call: Callable[[Any], Any], argument: Any) -> Any:
        begun = time.perf_counter()
        result = call(argument)
        times[step].append(time.perf_counter() - begun)
        return result

    for query in queries:
        search = {"payload": {"query": query, "text": text}}
        parts = timed("search-chunk", lambda m: list(handlers.split_chunks(m)), search)
        for part in parts:
            embedded = timed("search-embed", embedder.embed, part["payload"])
            timed("search-score", handlers.score_passage, embedded)
    return load, times


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the semantic-search mesh.")
    parser.add_argument("--gateway", default="http://localhost:8080")
    parser.add_argument("--searches", type=int, default=5)
    args = parser.parse_args()
    text = (HERE / "corpus.txt").read_text()
    queries = [QUERIES[i % len(QUERIES)] for i in range(args.searches)]
    status = json.loads((HERE / ".asya" / "up.json").read_text())

    run_search(args.gateway, QUERIES[0], text)  # warm-up: first calls are slower everywhere
    before = sidecar_totals(status)
    searches = [run_search(args.gateway, query, text) for query in queries]
    after = sidecar_totals(status)
    walls = [wall for wall, _ in searches]
    load, times = handler_times(queries, text)
    in_worker = [p["embed_ms"] / 1000 for _, found in searches for p in found if "embed_ms" in p]
    if in_worker:
        times["search-embed"] = in_worker
    else:
        print("note: search-embed's handler time is from this process (SEARCH_TIMINGS unset)")

    print(f"model load (import + weights, one process): {load:.2f} s")
    print(
        f"search wall time (submit → result), median of {len(walls)}: "
        f"{statistics.median(walls) * 1000:.0f} ms"
    )
    print(
        f"{'step':<14}{'msgs':>6}{'handler ms':>12}{'runtime ms':>12}{'send ms':>10}"
        f"{'sidecar ms':>12}{'Asya share':>12}"
    )
    for step in STEPS:
        count = after[step, "count"] - before[step, "count"]
        if not count:
            continue
        sidecar, runtime, send = (
            (after[step, column] - before[step, column]) / count * 1000
            for column in ("sidecar", "runtime", "send")
        )
        handler = statistics.mean(times[step]) * 1000
        share = (sidecar - handler) / sidecar if sidecar else 0.0
        print(
            f"{step:<14}{count:>6.0f}{handler:>12.2f}{runtime:>12.2f}{send:>10.2f}"
            f"{sidecar:>12.2f}{share:>12.0%}"
        )


if __name__ == "__main__":
    main()
