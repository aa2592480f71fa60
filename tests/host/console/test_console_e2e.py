"""The merchant console end to end in headless Chromium: sale approved, check-in, offline banner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.async_api import expect
from posbridge.host.cli.demo import DemoShop

TIMEOUT_MS = 20_000


async def test_sale_checkin_and_offline_banner(shop: DemoShop, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await page.goto(f"http://127.0.0.1:{shop.console_port}/")
    status = page.locator("#sale-status")
    await expect(status).to_have_text("Enter an amount", timeout=TIMEOUT_MS)
    await expect(page.locator("#processor-status")).to_have_text("processor online", timeout=TIMEOUT_MS)

    for key in "12.5":
        await page.click(f'.keypad button[data-key="{key}"]')
    await expect(page.locator("#amount-input")).to_have_value("12.5")
    await page.click("#charge-button")
    await expect(status).to_contain_text("Waiting for card", timeout=TIMEOUT_MS)
    await expect(status).to_contain_text("Approved", timeout=TIMEOUT_MS)
    await expect(status).to_contain_text("USD 12.50")
    await expect(status).to_contain_text("******")
    await expect(page.locator("#count-forwarded")).to_have_text("1", timeout=TIMEOUT_MS)

    shop.walk_in("cust-alice")
    person = page.locator('#counter-list li[data-customer="cust-alice"]')
    await expect(person).to_contain_text("Alice", timeout=TIMEOUT_MS)
    await person.locator("button.attach").click()
    await expect(page.locator("#attached-customer")).to_have_text("Customer: Alice")

    shop.network(False)
    await page.fill("#amount-input", "7.25")
    await page.click("#charge-button")
    await expect(status).to_contain_text("Stored offline", timeout=TIMEOUT_MS)
    banner = page.locator("#offline-banner")
    await expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    await expect(banner).to_contain_text("Offline total USD 7.25")
    await expect(page.locator("#count-offline")).to_have_text("1", timeout=TIMEOUT_MS)
    await expect(status).to_contain_text("Alice")

    screenshot = os.environ.get("POSBRIDGE_CONSOLE_SCREENSHOT")
    if screenshot:
        await page.screenshot(path=screenshot, full_page=True)

    shop.network(True)
    await expect(banner).to_be_hidden(timeout=TIMEOUT_MS)
    await expect(page.locator("#count-forwarded")).to_have_text("2", timeout=TIMEOUT_MS)

    html = await page.content()
    assert "Alice" in html
    page_text = await page.inner_text("body")
    assert "USD 7.25" in page_text


async def test_pay_by_checkin_on_a_phone(shop: DemoShop, browser: Any, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await page.goto(f"http://127.0.0.1:{shop.console_port}/")
    shop.walk_in("cust-bob")
    person = page.locator('#counter-list li[data-customer="cust-bob"]')
    await expect(person).to_be_visible(timeout=TIMEOUT_MS)
    pay = person.locator("button.pay")
    box = await pay.bounding_box()
    assert box is not None
    assert box["height"] >= 44  # a comfortable touch target
    await page.fill("#amount-input", "4.20")
    await pay.tap()
    status = page.locator("#sale-status")
    await expect(status).to_contain_text("Approved", timeout=TIMEOUT_MS)
    await expect(status).to_contain_text("USD 4.20")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling on a phone


async def test_bad_amount_is_explained(shop: DemoShop, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(f"http://127.0.0.1:{shop.console_port}/")
    await page.fill("#amount-input", "abc")
    await page.click("#charge-button")
    status = page.locator("#sale-status")
    await expect(status).to_contain_text("Enter an amount such as 12.50", timeout=TIMEOUT_MS)
    assert shop.lane.sale is None
