"""Page timings of the web console at 1,000 jobs (docs/console.md#at-1000-jobs).

Inserts ``--jobs`` jobs straight into a fresh store (SQLite by default, ``--database`` for
PostgreSQL), starts a real ``asya gateway`` on them and measures, with Playwright driving
Debian's chromium: each page from navigation until its data is on screen, and the JSON calls
the pages make every refresh. Prints medians (and the slowest) of ``--runs`` tries.

    .venv/bin/python scripts/console_timings.py [--jobs 1000] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen

import httpx
import sqlalchemy as sa

from asya.gateway.schema import jobs as jobs_table
from asya.gateway.store import JobStore
from asya.transports import open_transport

TOOLS = ("summarize", "translate", "classify")
ROUTES = {
    "summarize": ["t-parse", "t-summarize"],
    "translate": ["t-translate"],
    "classify": ["t-classify"],
}


async def fill(database: str, count: int) -> str:
    store = JobStore(database)
    await store.migrate()
    ids = []
    for index in range(count):
        tool = TOOLS[index % len(TOOLS)]
        job = await store.create_job(
            job_id=str(uuid.uuid4()),
            tool=tool,
            steps=ROUTES[tool],
            metadata={},
            payload={"text": f"document {index}", "lang": "de"},
            timeout_seconds=None,
        )
        ids.append(job.id)
    statuses = random.Random(7).choices(
        ["Succeeded", "Failed", "Running", "Pending"], weights=[80, 8, 8, 4], k=count
    )
    async with store.engine.begin() as conn:
        for job_id, status in zip(ids, statuses, strict=True):
            values: dict[str, object] = {"status": status}
            if status == "Succeeded":
                values.update(progress_percent=100.0, result={"ok": True})
            elif status == "Failed":
                values.update(
                    progress_percent=50.0,
                    error="processing_error: boom",
                    error_details={"code": "processing_error", "message": "boom"},
                )
            await conn.execute(
                sa.update(jobs_table).where(jobs_table.c.id == job_id).values(**values)
            )
    await store.close()
    return ids[len(ids) // 2]


async def declare(url: str) -> None:
    async with open_transport(url) as transport:
        for queue in {q for route in ROUTES.values() for q in route} | {
            "happy-end",
            "error-end",
            "asya-dead-letter",
        }:
            await transport.declare_queue(queue)


def timed(work) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def report(name: str, samples: list[float]) -> None:
    print(f"  {name:<44} median {statistics.median(samples):7.1f} ms   max {max(samples):7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database", help="postgresql://… (default: a fresh SQLite file)")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="asya-console-timings-"))
    database = options.database or f"sqlite:///{folder}/jobs.db"
    transport = f"sqlite:///{folder}/queues.db"
    tools = "tools:\n" + "".join(f"  - name: {t}\n    route: {ROUTES[t]}\n" for t in TOOLS)
    (folder / "tools.yaml").write_text(tools)
    one_job = asyncio.run(fill(database, options.jobs))
    asyncio.run(declare(transport))
    port = 20000 + random.randrange(10000)
    env = {
        **os.environ,
        "ASYA_DATABASE_URL": database,
        "ASYA_TRANSPORT_URL": transport,
        "ASYA_CONFIG_PATH": str(folder / "tools.yaml"),
        "ASYA_GATEWAY_PORT": str(port),
        "ASYA_GATEWAY_HOST": "127.0.0.1",
        "ASYA_LOG_LEVEL": "WARNING",
    }
    gateway = subprocess.Popen([sys.executable, "-m", "asya.cli", "gateway"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        print(
            f"console timings: {options.jobs} jobs in {database.split(':')[0]}, "
            f"{options.runs} runs each"
        )
        with httpx.Client(base_url=url) as client:
            page = client.get("/jobs", params={"limit": 25}).json()
            for _ in range(19):
                page = client.get(
                    "/jobs", params={"limit": 25, "cursor": page["next_cursor"]}
                ).json()
            deep = page["next_cursor"]
            calls = {
                "GET /jobs?limit=25 (first page)": ("/jobs", {"limit": 25}),
                "GET /jobs?limit=25&status=Failed": ("/jobs", {"limit": 25, "status": "Failed"}),
                "GET /jobs?limit=25&tool=translate": ("/jobs", {"limit": 25, "tool": "translate"}),
                "GET /jobs?limit=25&cursor=<page 21>": ("/jobs", {"limit": 25, "cursor": deep}),
                "GET /jobs/summary?since=1h": ("/jobs/summary", {"since": "1h"}),
                "GET /actors": ("/actors", {}),
            }
            print("API calls (each page refresh makes one):")
            for name, (path, params) in calls.items():
                # a new connection per call (as curl): httpx's kept-alive connection adds a
                # ~40 ms delayed-ACK stall on loopback that says nothing about the gateway
                address = f"{url}{path}?{urlencode(params)}"
                urlopen(address).read()
                report(
                    name,
                    [timed(lambda a=address: urlopen(a).read()) for _ in range(options.runs * 2)],
                )
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("ASYA_TEST_CHROMIUM", "/usr/bin/chromium"),
                headless=True,
                args=["--no-sandbox"],
            )
            tab = browser.new_page()
            pages = {
                "Jobs page (25 rows shown)": (
                    "/ui",
                    lambda: tab.locator("#jobs-body tr[data-job-id]").nth(24).wait_for(),
                ),
                "Jobs page, Older × 5 (page 6 shown)": ("/ui", None),
                "Job page (timeline and arguments shown)": (
                    f"/ui/jobs/{one_job}",
                    lambda: tab.locator("#timeline li").first.wait_for(),
                ),
                "Actors page (rows shown)": (
                    "/ui/actors",
                    lambda: tab.locator("#actors-body tr").first.wait_for(),
                ),
            }
            print("Pages in chromium (navigation until the data is on screen):")
            for name, (path, ready) in pages.items():
                samples = []
                for _ in range(options.runs):
                    if ready is None:
                        tab.goto(url + path)
                        tab.locator("#jobs-body tr[data-job-id]").first.wait_for()
                        start = time.perf_counter()
                        for number in range(2, 7):
                            tab.click("#page-older")
                            tab.get_by_text(f"page {number}").wait_for()
                        samples.append((time.perf_counter() - start) * 1000 / 5)
                        continue
                    start = time.perf_counter()
                    tab.goto(url + path)
                    ready()
                    samples.append((time.perf_counter() - start) * 1000)
                report(name + (" (per page)" if ready is None else ""), samples)
            browser.close()
    finally:
        gateway.terminate()
        gateway.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
