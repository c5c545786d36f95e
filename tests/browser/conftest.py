"""Headless Chromium for the browser tests: Debian's `chromium` package driven by Playwright
(`executable_path`; Playwright's own browser download is never used). `.ci/run` installs the
package; without the binary these tests skip and say so.

Screenshots of every page the tests visit are saved as artefacts in `test-artifacts/browser/`
(or `$BROWSER_ARTIFACTS`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.system import KEYS, System

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("BROWSER_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
)
# The flags this machine's Chromium needs: no sandbox as root, no GPU, and none of the
# background connections a closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)
            if not Path(CHROMIUM).exists():
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"no Chromium at {CHROMIUM}: apt-get install chromium "
                        "chromium-driver (.ci/run does)"
                    )
                )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Any, name: str) -> Path:
    """Save what the person sees now (the whole page) as a test artefact."""
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@contextlib.asynccontextmanager
async def reviewer(
    browser: Any,
    system: System,
    name: str,
    *,
    key: str = KEYS["reviewer"],
    locale: str = "zh-CN",
) -> AsyncIterator[Any]:
    """A person signed in to the console in a browser context of their own."""
    context = await browser.new_context(
        base_url=system.api_url, locale=locale, viewport={"width": 1400, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        await page.goto("/console")
        await page.click("summary")  # "or with an API key"
        await page.fill("input[name=api_key]", key)
        await page.fill("input[name=name]", name)
        await page.click(".keylogin button[type=submit]")
        await page.wait_for_url(re.compile(r".*/console/queue.*"))
        yield page
    finally:
        await context.close()


@contextlib.asynccontextmanager
async def phone(browser: Any, system: System, *, locale: str = "zh-CN") -> AsyncIterator[Any]:
    """A buyer's phone."""
    context = await browser.new_context(
        base_url=system.api_url,
        locale=locale,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        await context.close()
