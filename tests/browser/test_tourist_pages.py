"""The tourist pages in a real browser (Debian's Chromium, driven by Playwright), against a
real server on the test database; screenshots of each page at phone and desktop widths go
to tests/artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tests.browser.conftest import DESKTOP, PHONE, shoot
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import published_bus_departure


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
        await shoot(page, f"home-zh-{size_name}")

        # The language switch keeps the reader in English from page to page.
        await page.get_by_role("link", name="English").click()
        assert await page.locator("h1").inner_text() == "Themed lines"
        await page.get_by_role("link", name="Picking Line").click()
        await page.wait_for_url(f"**/lines/{route['slug']}?lang=en")
        assert await page.locator("h1").inner_text() == "Picking Line"
        # The calendar marks the day; the list (one click away) has every departure.
        slot = page.locator(".calendar a.slot")
        assert await slot.count() == 1
        assert (await slot.inner_text()).split() == [departure["departs_at"][11:16], "45", "left"]
        await page.get_by_text("All departures as a list").click()
        rows = page.locator("table.departures tbody tr")
        assert await rows.count() == 1
        cells = await rows.first.locator("td").all_inner_texts()
        assert cells[1] == "45"
        assert cells[2].startswith("CN¥") or cells[2].startswith("¥")
        await shoot(page, f"line-en-{size_name}")

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


async def _labelled_and_local(page: Any, site: str, url: str, requested: list[str]) -> None:
    """Every field of the page has its label, and nothing came from another host."""
    requested.clear()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200, url
    fields = page.locator("input:not([type=hidden]), select, textarea")
    for field in await fields.all():
        field_id = await field.get_attribute("id")
        assert field_id, url
        labels = await page.locator(f"label[for='{field_id}']").count()
        assert labels == 1 or await field.get_attribute("aria-label"), (url, field_id)
    assert await page.locator("html").get_attribute("lang") in ("en", "zh-Hans")
    assert requested
    assert all(u.startswith(site) for u in requested), requested


async def test_booking_and_staff_pages_label_every_field_and_load_nothing_from_elsewhere(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    held = (
        await client.post(
            "/api/v1/bookings",
            json={
                "departure_id": departure["id"],
                "counts": [{"seat_class": "standard", "count": 2}],
            },
        )
    ).json()
    reference, token = held["booking"]["reference"], held["access_token"]
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for url in (
        f"/departures/{departure['id']}/book?lang=en",
        f"/bookings/{reference}?token={token}&lang=zh",
        f"/bookings/{reference}/cancel?token={token}&lang=en",
        "/staff/login?lang=zh",
    ):
        await _labelled_and_local(page, site, site + url, requested)

    # A form sent back with problems: the summary is announced first, its links lead to
    # the fields.
    await page.goto(f"{site}/departures/{departure['id']}/book?lang=en")
    await page.get_by_role("button", name="Hold these seats").click()
    await expect(page.locator("#problems")).to_be_focused()
    await page.get_by_role("link", name="Choose at least one passenger.").click()
    assert page.url.endswith("#counts")

    await page.goto(f"{site}/staff/login?lang=en")
    await page.fill("#email", operator.email)
    await page.fill("#password", STAFF_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/staff?lang=en")
    for url in (
        "/staff?lang=en",
        f"/staff/departures/{departure['id']}?lang=zh",
        f"/staff/departures/{departure['id']}/manifest?lang=en",
    ):
        await _labelled_and_local(page, site, site + url, requested)
    await context.close()
