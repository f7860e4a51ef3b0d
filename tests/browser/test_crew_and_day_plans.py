"""The crew and the day plans in a real browser (Debian's Chromium, driven by Playwright),
against a real server on the test database: an operator opens a train departure, goes to
its crew page in Chinese, adds the narrator and removes the nurse, and sees the roster on
the printed manifest; a tourist reads the day plans on the line's page in English.
Screenshots at phone and desktop widths go to tests/artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tests.browser.conftest import DESKTOP, PHONE, shoot, shoot_both_widths
from tests.conftest import STAFF_PASSWORD, Account
from tests.integration.booking.test_trip_plans import planned_trip


async def test_an_operator_changes_the_crew_of_a_train_departure(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    departure = await planned_trip(client, operator)
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{site}/staff/departures/{departure['id']}")
    await page.wait_for_url(re.compile(r"/staff/login\?"))
    await page.fill("#email", operator.email)
    await page.fill("#password", STAFF_PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(re.compile(rf"/staff/departures/{departure['id']}\?"))
    await expect(page.locator("ul.crew li").first).to_contain_text("列车管家：李建华")

    await page.get_by_role("link", name="随行人员名单").click()
    await page.wait_for_url(re.compile(r"/crew\?lang=zh$"))
    rows = page.locator("table.crew-table tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(1)).to_contain_text("随车医护")
    # Every field of the roster form has its label.
    for field in await page.locator("form.crew-form input:not([type=hidden]), select").all():
        field_id = await field.get_attribute("id")
        assert field_id
        assert await page.locator(f"label[for='{field_id}']").count() == 1, field_id
    await shoot_both_widths(page, "staff-crew-zh")

    # Add the narrator in the first empty row and take the doctor off.
    await page.fill("#members-3-name", "刘文博")
    await page.select_option("#members-3-role", "narrator")
    await page.fill("#members-3-phone", "+86 138 0371 3595")
    await page.fill("#members-3-car", "1")
    await page.get_by_label("从随行人员中移除").nth(1).check()
    await page.get_by_role("button", name="保存随行人员").click()
    await expect(page.locator(".done")).to_have_text("随行人员名单已保存：共 3 人。")
    await expect(rows).to_have_count(3)
    await expect(page.locator("table.crew-table")).to_contain_text("讲解员")
    await expect(page.locator("table.crew-table")).not_to_contain_text("王医生")

    # A wrong phone is said beside the field and in the summary, which takes the focus.
    await page.fill("#members-4-name", "赵磊")
    await page.fill("#members-4-phone", "电话待定")
    await page.get_by_role("button", name="保存随行人员").click()
    await expect(page.locator("#problems")).to_be_focused()
    await expect(page.locator("#members-4-phone-error")).to_be_visible()
    await shoot(page, "staff-crew-problem-zh")

    await page.get_by_role("link", name="返回班次").click()
    await page.get_by_role("link", name="乘客名单", exact=True).click()
    await expect(page.locator(".manifest-crew tbody tr")).to_have_count(3)
    await page.emulate_media(media="print")
    await shoot(page, "staff-manifest-crew-print")
    await expect(page.locator(".manifest-crew")).to_be_visible()
    await page.emulate_media(media="screen")
    assert all(url.startswith(site) for url in requested), requested
    crew = (
        await client.get(
            f"/api/v1/operator/departures/{departure['id']}/crew", headers=operator.headers
        )
    ).json()
    assert [member["name"] for member in crew["members"]] == ["李建华", "Aliya", "刘文博"]
    await context.close()


async def test_a_tourist_reads_the_day_plans_on_the_line_page(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    await planned_trip(client, operator)
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await browser.new_context(viewport=size, locale="en-GB")
        page: Any = await context.new_page()
        await page.goto(f"{site}/lines/xinjiang-train?lang=en")
        days = page.locator("ol.days > li")
        await expect(days).to_have_count(3)
        first = days.nth(0)
        await expect(first.locator("h3")).to_have_text("Day 1: Tianshan Heavenly Lake")
        await expect(first.locator(".stops")).to_contain_text("09:30–16:00 Heavenly Lake")
        await expect(first.locator(".day-plan")).to_contain_text("lunch, dinner")
        await expect(first.locator(".back-on-board dd")).to_have_text("19:30")
        await expect(days.nth(1).locator(".day-plan")).to_contain_text("Kanas Lodge")
        await expect(days.nth(2).locator(".back-on-board")).to_have_count(0)
        await shoot(page, f"line-day-plans-en-{size_name}")
        await context.close()
