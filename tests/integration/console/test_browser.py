"""The console in a real browser against a real gateway and real actors (docs/console.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import asya_command, free_port, stop_process, wait_until
from tests.integration.console.mesh import ConsoleMesh

pytestmark = [pytest.mark.slow]


def _shoot(page: Any, folder: Path | None, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / name), full_page=False)


def test_root_redirects_to_the_console(console_mesh: ConsoleMesh, page: Any) -> None:
    page.goto(console_mesh.url + "/")
    assert page.url.endswith("/ui")
    assert page.title() == "Jobs · Asya console"


def test_a_new_job_appears_and_reaches_succeeded_live(
    console_mesh: ConsoleMesh, page: Any, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    page.goto(console_mesh.url + "/ui")
    expect(page.locator("#jobs-body")).to_be_visible()
    job_id = console_mesh.submit("pipeline", {"value": 10, "pause": 1.5})
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=15_000)  # no reload: the list refreshes itself
    expect(row).to_have_attribute("data-status", "Succeeded", timeout=60_000)
    expect(row.locator("td").nth(1)).to_have_text("pipeline")
    expect(row.locator(".badge")).to_have_text("Succeeded")
    for value in (1, 2, 3):
        console_mesh.submit("echo", {"text": f"hello {value}"})
    console_mesh.submit("pipeline", {"value": 2, "pause": 6})  # running in the picture
    expect(page.locator("#jobs-body tr")).to_have_count(5, timeout=15_000)
    _shoot(page, screenshots, "console-jobs.png")

    page.goto(f"{console_mesh.url}/ui/jobs/{job_id}")
    expect(page.locator("#result")).to_contain_text('"value": 25')
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_have_attribute("data-step-status", "completed")
    expect(steps.nth(1)).to_have_attribute("data-step-status", "completed")


def test_job_page_follows_a_running_job_to_its_result(
    console_mesh: ConsoleMesh, page: Any, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    job_id = console_mesh.submit("pipeline", {"value": 1, "pause": 2})
    page.goto(f"{console_mesh.url}/ui/jobs/{job_id}")
    expect(page.locator("#timeline li").nth(0)).to_have_attribute(
        "data-step-status", re.compile("received|processing|completed"), timeout=20_000
    )
    expect(page.locator("#result")).to_contain_text('"value": 7', timeout=60_000)
    expect(page.locator(".fact .badge").first).to_have_text("Succeeded")
    _shoot(page, screenshots, "console-job.png")


def test_job_page_shows_fan_out_branches(console_mesh: ConsoleMesh, page: Any) -> None:
    from playwright.sync_api import expect

    job_id = console_mesh.submit("fan_out", {"parts": ["a", "b", "c"]})
    page.goto(f"{console_mesh.url}/ui/jobs/{job_id}")
    expect(page.locator("#result")).to_contain_text('"part": "c"', timeout=60_000)
    branches = page.locator("#branches tbody tr")
    expect(branches).to_have_count(3)
    expect(branches.locator("td").nth(0)).to_have_text("0/3")
    expect(page.locator("#branches")).not_to_contain_text("failed")


def test_a_failing_job_shows_its_traceback(
    console_mesh: ConsoleMesh, page: Any, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    job_id = console_mesh.submit("always_fails", {})
    page.goto(f"{console_mesh.url}/ui/jobs/{job_id}")
    failure = page.locator("#failure")
    expect(failure).to_be_visible(timeout=60_000)
    expect(failure).to_contain_text("processing_error")
    expect(failure).to_contain_text("KeyError")
    expect(failure).to_contain_text("console-failing")
    traceback = page.locator("#traceback")
    expect(traceback).to_contain_text("Traceback")
    expect(traceback).to_contain_text("missing_key")
    expect(page.locator("#timeline li").first).to_have_attribute("data-step-status", "failed")
    _shoot(page, screenshots, "console-job-failed.png")

    page.goto(f"{console_mesh.url}/ui?status=Failed")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(6)).to_have_text("processing_error")
    expect(page.locator('#jobs-body tr[data-status="Succeeded"]')).to_have_count(0)


def test_actors_page_shows_a_queue_growing_while_its_actor_is_stopped(
    console_mesh: ConsoleMesh, page: Any, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    page.goto(console_mesh.url + "/ui/actors")
    depth = page.locator('tr[data-queue="console-echo"] td.depth')
    expect(depth).to_have_text("0", timeout=20_000)
    for role in ("happy-end", "error-end", "dead-letter"):
        expect(page.locator("#actors-body")).to_contain_text(role)
    console_mesh.stop_actor("console-echo")
    try:
        for value in range(3):
            console_mesh.submit("echo", {"text": f"waiting {value}"})
        expect(depth).to_have_text("3", timeout=20_000)
        console_mesh.submit("echo", {"text": "one more"})
        expect(depth).to_have_text("4", timeout=20_000)
        _shoot(page, screenshots, "console-actors.png")
    finally:
        console_mesh.start_actor("console-echo")
    expect(depth).to_have_text("0", timeout=60_000)


def test_with_api_keys_the_console_asks_for_a_key_once(
    console_mesh: ConsoleMesh, page: Any, tmp_path: Path
) -> None:
    """The pages send the key as a bearer; a wrong one is refused and asked again."""
    from playwright.sync_api import expect

    port = free_port()
    env = {
        **console_mesh.env,
        "ASYA_GATEWAY_PORT": str(port),
        "ASYA_GATEWAY_HOST": "127.0.0.1",
        "ASYA_GATEWAY_API_KEYS": "console-key",
    }
    with (tmp_path / "guarded.log").open("wb") as log:
        proc = subprocess.Popen(asya_command("gateway"), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=60, interval=0.2, what="the guarded gateway")
        assert httpx.get(f"{url}/jobs").status_code == 401
        page.goto(url + "/ui")
        expect(page.locator("#key-form")).to_be_visible()
        page.fill("#key-input", "wrong")
        page.click("#key-form button[type=submit]")
        expect(page.locator("#key-problem")).to_have_text("That key was not accepted.")
        page.fill("#key-input", "console-key")
        page.click("#key-form button[type=submit]")
        expect(page.locator("#jobs")).to_be_visible()
        page.goto(url + "/ui/actors")  # kept: not asked again
        expect(page.locator("#actors-body tr").first).to_be_visible()
        expect(page.locator("#key-form")).to_be_hidden()
    finally:
        stop_process(proc, timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
