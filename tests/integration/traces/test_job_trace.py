"""A job is one trace across real processes (docs/observability.md#traces): the gateway's
call, a span per step in each sidecar with the runtime call (and the handler's own spans)
under it, through a fan-out of 3, closed by the crew's report. Also the per-message log lines."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx

from tests.helpers import wait_until
from tests.integration.gateway_vs_actors.mesh import create_job, wait_terminal
from tests.integration.gateway_vs_actors.test_mcp import RawMcp
from tests.integration.traces.conftest import TracedMesh

WORDS = ["alpha", "beta", "gamma"]


def read_spans(mesh: TracedMesh) -> list[dict[str, Any]]:
    if not mesh.span_file.exists():
        return []
    return [json.loads(line) for line in mesh.span_file.read_text().splitlines() if line]


def job_trace(
    mesh: TracedMesh, job_id: str, expected: int, within: float = 20.0
) -> list[dict[str, Any]]:
    """The spans of the job's trace, once ``expected`` of them have been written."""
    deadline = time.monotonic() + within
    while True:
        spans = read_spans(mesh)
        roots = [
            s
            for s in spans
            if s["name"].startswith("call ") and s["attributes"].get("asya.job_id") == job_id
        ]
        found = [s for s in spans if roots and s["trace_id"] == roots[0]["trace_id"]]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def tree_text(spans: list[dict[str, Any]]) -> str:
    """The trace as an indented tree, children in start order (printed for people)."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        children.setdefault(span["parent_span_id"], []).append(span)
    start = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            attrs = span["attributes"]
            extra = " ".join(
                f"{key.removeprefix('asya.')}={attrs[key]}"
                for key in ("asya.step_index", "asya.branch", "asya.attempt", "asya.outcome")
                if key in attrs
            )
            offset = (span["start_ns"] - start) / 1e6
            took = (span["end_ns"] - span["start_ns"]) / 1e6
            lines.append(
                f"{'  ' * depth}{span['name']} [{span['service']}] +{offset:.1f} ms, "
                f"{took:.1f} ms {extra}".rstrip()
            )
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


async def test_a_fanned_out_job_is_one_trace_without_orphans(traced_mesh: TracedMesh) -> None:
    async with httpx.AsyncClient(base_url=traced_mesh.gateway.url, timeout=30) as client:
        job_id = await create_job(client, "shout_words", {"words": WORDS})
        job = await wait_terminal(client, job_id, within=60)
    assert job["status"] == "Succeeded", job
    assert sorted(item["word"] for item in job["result"]) == ["ALPHA!", "BETA!", "GAMMA!"]

    # gateway 1; split: step + runtime; per branch: upper step + runtime + handler span,
    # exclaim step + runtime, happy-end step + runtime + crew report
    spans = job_trace(traced_mesh, job_id, expected=1 + 2 + 3 * (3 + 2 + 3))
    print(f"\ntrace of job {job_id}:\n{tree_text(spans)}")
    assert len(spans) == 27, tree_text(spans)
    ids = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [r["name"] for r in roots] == ["call shout_words"]
    assert roots[0]["service"] == "asya-gateway"
    orphans = [s for s in spans if s["parent_span_id"] not in (None, *ids)]
    assert orphans == []
    # every span of this job (job id attribute) is in this one trace
    elsewhere = [
        s
        for s in read_spans(traced_mesh)
        if s["attributes"].get("asya.job_id") == job_id and s["trace_id"] != roots[0]["trace_id"]
    ]
    assert elsewhere == []

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return ids[span["parent_span_id"]]

    q = {name: traced_mesh.actors[name].queue for name in traced_mesh.actors}
    (split,) = by_name(spans, f"process {q['split']}")
    assert parent(split) is roots[0]
    assert split["service"] == "asya-sidecar"
    assert split["kind"] == "CONSUMER"
    assert split["attributes"] == {
        "asya.queue": q["split"],
        "asya.job_id": job_id,
        "asya.step": q["split"],
        "asya.step_index": 0,
        "asya.attempt": 0,
        "asya.outcome": "success",
    }
    uppers = by_name(spans, f"process {q['upper']}")
    assert [parent(s) for s in uppers] == [split] * 3
    assert sorted(s["attributes"]["asya.branch"] for s in uppers) == ["0/3", "1/3", "2/3"]
    exclaims = by_name(spans, f"process {q['exclaim']}")
    assert sorted(parent(s)["span_id"] for s in exclaims) == sorted(s["span_id"] for s in uppers)
    ends = by_name(spans, f"process {q['happy-end']}")
    assert sorted(parent(s)["span_id"] for s in ends) == sorted(s["span_id"] for s in exclaims)
    for step in (split, *uppers, *exclaims, *ends):
        (runtime,) = [
            s for s in by_name(spans, "runtime call") if s["parent_span_id"] == step["span_id"]
        ]
        assert runtime["attributes"]["asya.job_id"] == job_id
    handler_spans = by_name(spans, "upper the word")
    assert Counter(parent(parent(s))["name"] for s in handler_spans) == {f"process {q['upper']}": 3}
    assert {s["service"] for s in handler_spans} == {"trace-test-handler"}
    reports = by_name(spans, "report succeeded")
    assert len(reports) == 3
    assert {parent(parent(s))["span_id"] for s in reports} == {s["span_id"] for s in ends}
    assert {s["service"] for s in reports} == {"asya-crew"}
    # the crew's report is the last span to end
    assert max(spans, key=lambda s: s["end_ns"])["name"] in {
        "report succeeded",
        f"process {q['happy-end']}",
    }


async def test_every_finished_message_is_one_info_line(traced_mesh: TracedMesh) -> None:
    async with httpx.AsyncClient(base_url=traced_mesh.gateway.url, timeout=30) as client:
        job_id = await create_job(client, "shout_words", {"words": ["one", "two"]})
        job = await wait_terminal(client, job_id, within=60)
    assert job["status"] == "Succeeded", job

    def lines_of(role: str) -> list[str]:
        text = traced_mesh.actors[role].log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if job_id in line]

    await asyncio.to_thread(
        wait_until,
        lambda: len([line for line in lines_of("exclaim") if '"outcome"' in line]) == 2,
        what="exclaim's two JSON lines",
    )
    split_lines = [line for line in lines_of("split") if "asya.sidecar.messages" in line]
    assert len(split_lines) == 1, lines_of("split")
    queue = traced_mesh.actors["split"].queue
    assert f"job {job_id} step {queue} [0]: success in " in split_lines[0]
    assert " INFO " in split_lines[0]
    upper_lines = [line for line in lines_of("upper") if "asya.sidecar.messages" in line]
    assert sorted(line.split(" branch ")[1].split(":")[0] for line in upper_lines) == ["0/2", "1/2"]
    # ASYA_LOG_FORMAT=json: the same values as keys
    records = [json.loads(line) for line in lines_of("exclaim") if line.startswith("{")]
    finished = [r for r in records if r["logger"] == "asya.sidecar.messages"]
    assert len(finished) == 2
    for record in finished:
        assert record["level"] == "INFO"
        assert record["job_id"] == job_id
        assert record["step"] == traced_mesh.actors["exclaim"].queue
        assert record["step_index"] == 2
        assert record["outcome"] == "success"
        assert record["duration_ms"] > 0
        assert record["branch"] in {"0/2", "1/2"}
    # the crew reports over HTTP without a log line per request
    crew_log = traced_mesh.actors["happy-end"].log_path.read_text(errors="replace")
    assert "HTTP Request" not in crew_log
    assert f"Reported job {job_id}" in crew_log


async def test_an_mcp_tool_call_starts_the_trace_too(traced_mesh: TracedMesh) -> None:
    async with httpx.AsyncClient(base_url=traced_mesh.gateway.url, timeout=30) as client:
        rpc = RawMcp(client)
        await rpc.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "traces-test", "version": "1.0"},
            },
        )
        await rpc.notify("notifications/initialized")
        answer = await rpc.request(
            "tools/call", {"name": "shout_words", "arguments": {"words": ["mcp"]}}
        )
        job_id = answer["result"]["structuredContent"]["job_id"]
        job = await wait_terminal(client, job_id, within=60)
    assert job["status"] == "Succeeded", job

    # The MCP SDK's own server span (`tools/call <tool>`) is the root; ours is its child.
    spans = job_trace(traced_mesh, job_id, expected=1 + 1 + 2 + 3 + 2 + 3)
    assert len(spans) == 12, tree_text(spans)
    ids = {s["span_id"] for s in spans}
    (root,) = [s for s in spans if s["parent_span_id"] is None]
    assert root["name"] == "tools/call shout_words"
    (call,) = by_name(spans, "call shout_words")
    assert call["parent_span_id"] == root["span_id"]
    assert [s for s in spans if s["parent_span_id"] not in (None, *ids)] == []
    assert len(by_name(spans, "report succeeded")) == 1
