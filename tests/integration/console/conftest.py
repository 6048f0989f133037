"""The console suite's fixtures: the mesh, and Playwright driving Debian's chromium.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (``ASYA_TEST_CHROMIUM``
overrides the path). Without it the browser tests skip with how to install it, except under
``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.console.mesh import ConsoleMesh, start_console_mesh

INSTALL_HINT = (
    "install Debian's chromium (`apt-get install -y chromium`, which `make test` does when run "
    "as root) and the dev extras (`pip install -e '.[dev]'` for playwright)"
)


def chromium_path() -> str | None:
    wanted = os.environ.get("ASYA_TEST_CHROMIUM") or "/usr/bin/chromium"
    if Path(wanted).is_file():
        return wanted
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _missing(what: str) -> None:
    message = f"browser tests need {what}: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: sync Playwright runs an event loop on this thread while it is open, which
    would stop ``asyncio.run`` and async tests of later modules."""
    executable = chromium_path()
    if executable is None:
        _missing("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="module")
def console_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleMesh]:
    mesh = start_console_mesh(tmp_path_factory.mktemp("console"))
    try:
        yield mesh
    finally:
        mesh.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path | None:
    """``ASYA_CONSOLE_SCREENSHOTS=docs/images`` keeps the pages' pictures there."""
    folder = os.environ.get("ASYA_CONSOLE_SCREENSHOTS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)
