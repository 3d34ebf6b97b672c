"""Browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``).

Playwright cannot download browsers here, so these use the system's. Where
it is missing they skip, saying how to get it; in CI (``CI=true``) they fail
instead, so a CI machine without Chromium is noticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from metastream.api import create_app
from metastream.api.serving import BackgroundServer
from tests.api.sample import Sample, build

CHROMIUM = Path(os.environ.get("METASTREAM_CHROMIUM", "/usr/bin/chromium"))
HOW = (
    "install it with `sudo apt-get install chromium` "
    "(or set METASTREAM_CHROMIUM to a Chromium binary)"
)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"the browser tests need Chromium at {CHROMIUM}: {HOW}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    return build(tmp_path / "metastream.db", runs=6)


@pytest.fixture
def server(sample: Sample) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(sample.path, poll_interval=0.05)) as running:
        yield running


@pytest.fixture
def page(browser: object, server: BackgroundServer) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    page.set_default_timeout(10_000)
    page.errors = errors
    try:
        yield page
    finally:
        context.close()
