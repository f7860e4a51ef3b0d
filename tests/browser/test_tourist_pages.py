"""The tourist pages in a real browser (Debian's Chromium, driven by Playwright), against a
real server on the test database; screenshots of each page at phone and desktop widths go
to tests/artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import REQUIRE_SERVICES, Account
from tests.factories import published_bus_departure
from tests.servers import api_servers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        await browser.close()


@pytest.fixture(scope="session", autouse=True)
def screenshots_folder() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[str]:
    async with api_servers(1, dict(os.environ), tmp_path) as bases:
        yield bases[0]


async def _shoot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_a_tourist_finds_a_line_in_chinese_and_english(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await browser.new_context(viewport=size, locale="zh-CN")
        page = await context.new_page()
        await page.goto(f"{site}/")
        assert await page.get_attribute("html", "lang") == "zh-Hans"
        assert await page.locator("h1").inner_text() == "主题线路"
        card = page.locator(".card h2 a")
        assert await card.all_inner_texts() == ["采摘号"]
        await _shoot(page, f"home-zh-{size_name}")

        # The language switch keeps the reader in English from page to page.
        await page.get_by_role("link", name="English").click()
        assert await page.locator("h1").inner_text() == "Themed lines"
        await page.get_by_role("link", name="Picking Line").click()
        await page.wait_for_url(f"**/lines/{route['slug']}?lang=en")
        assert await page.locator("h1").inner_text() == "Picking Line"
        rows = page.locator("table.departures tbody tr")
        assert await rows.count() == 1
        cells = await rows.first.locator("td").all_inner_texts()
        assert cells[1] == "45"
        assert cells[2].startswith("CN¥") or cells[2].startswith("¥")
        await _shoot(page, f"line-en-{size_name}")

        # Filters: a theme no line has says so; the bus filter finds the bus line.
        await page.goto(f"{site}/?lang=en")
        await page.select_option("#theme", "sightseeing")
        await page.get_by_role("button", name="Find lines").click()
        assert await page.locator(".empty").inner_text() == "No line matches; try another theme."
        await page.select_option("#theme", "")
        await page.select_option("#kind", "bus")
        await page.get_by_role("button", name="Find lines").click()
        assert await page.locator(".card h2 a").all_inner_texts() == ["Picking Line"]
        await context.close()
    assert departure["id"]


async def test_every_form_field_has_a_label_and_nothing_loads_from_elsewhere(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    await published_bus_departure(client, operator.headers)
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{site}/?lang=en")
    for field in await page.locator("input:not([type=hidden]), select").all():
        field_id = await field.get_attribute("id")
        assert field_id
        assert await page.locator(f"label[for={field_id}]").count() == 1
    # Keyboard users reach the content first.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert requested
    assert all(url.startswith(site) for url in requested), requested
    await context.close()


async def test_an_unknown_line_is_a_page_that_leads_back(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    await published_bus_departure(client, operator.headers)
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    response = await page.goto(f"{site}/lines/no-such-line?lang=en")
    assert response is not None
    assert response.status == 404
    assert await page.locator("h1").inner_text() == "This line does not exist (or no longer runs)"
    await page.get_by_role("link", name="See every themed line").click()
    assert await page.locator(".card h2 a").all_inner_texts() == ["Picking Line"]
    await context.close()
