"""Console test fixtures: the demo shop in-process and headless Chromium (Debian's, never downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from posbridge.host.cli.demo import DemoShop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[DemoShop]:
    """The demo's lane, virtual reader, beacons and processor-sim, console on a free port; no script."""
    lines: list[str] = []
    demo = DemoShop(tmp_path / "state", ("127.0.0.1", 0), seed=7, on_line=lines.append)
    await demo.start()
    try:
        yield demo
    finally:
        await demo.stop()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Headless Chromium driven by playwright (the system browser)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-system-packages installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
