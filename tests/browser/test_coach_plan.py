"""The coach plan page in Chromium against a real server on the test database: an operator
logs in, opens a departure's coach plan, runs the automatic assignment, moves a party to
another coach with the keyboard only (a select and a button, no script needed) and by
dragging its row, sees a full coach refuse a party, and prints the coach manifest.
Screenshots at phone and desktop widths go to tests/artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tests.browser.conftest import DESKTOP, shoot, shoot_both_widths
from tests.conftest import STAFF_PASSWORD, Account
from tests.excursion_factories import confirmed_booking, excursion_with_coaches, train_departure


async def test_an_operator_assigns_coaches_and_moves_a_party_with_the_keyboard(
    client: httpx.AsyncClient, operator: Account, browser: Browser, site: str
) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    family = await confirmed_booking(client, dep, "soft_sleeper", ["王芳", "王小明", "王奶奶"])
    couple = await confirmed_booking(client, dep, "hard_sleeper", ["赵磊", "钱雪"])
    excursion, _coaches = await excursion_with_coaches(client, operator.headers, dep, [4, 3])
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await page.goto(f"{site}/staff/departures/{dep}?lang=zh")
    await page.wait_for_url(re.compile(r"/staff/login\?"))
    await page.fill("#email", operator.email)
    await page.fill("#password", STAFF_PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.get_by_role("link", name="用车安排").click()
    await expect(page.locator("h1")).to_contain_text("用车安排")
    await expect(page.locator(".summary")).to_have_text(
        "5 位游客中已有 0 位安排车辆；2 辆车共 7 座。"
    )
    # Every field of the page has its label.
    for field in await page.locator("input:not([type=hidden]), select").all():
        field_id = await field.get_attribute("id")
        assert field_id
        assert await page.locator(f"label[for='{field_id}']").count() == 1

    await page.get_by_role("button", name="自动分配").click()
    await expect(page.locator(".done")).to_contain_text("已为 5 位游客安排车辆。")
    coach_one = page.locator("section.coach").nth(0)
    coach_two = page.locator("section.coach").nth(1)
    await expect(coach_one).to_contain_text(family["reference"])
    await expect(coach_two).to_contain_text(couple["reference"])
    await shoot_both_widths(page, "staff-coach-plan-zh")

    # The couple to coach 1 (one place left): refused, said at the top of the page.
    select = page.get_by_label(f"将 {couple['reference']} 调至")
    await select.select_option(label="1号车（空余 1）")
    await page.get_by_role("button", name=f"为 {couple['reference']} 调车").click()
    await expect(page.locator("#problems")).to_contain_text(
        f"1号车只剩 1 个空位；{couple['reference']} 需要 2 个。"
    )
    # Keyboard only: off the coaches, then the family to coach 2.
    select = page.get_by_label(f"将 {couple['reference']} 调至")
    await select.focus()
    await select.select_option(label="不安排车辆")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name=f"为 {couple['reference']} 调车")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator(".done")).to_contain_text(f"{couple['reference']}：已取消 2 位游客")
    await expect(page.locator("section.unassigned")).to_contain_text(couple["reference"])
    select = page.get_by_label(f"将 {family['reference']} 调至")
    await select.focus()
    await select.select_option(label="2号车（空余 3）")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator(".done")).to_contain_text(
        f"{family['reference']}：3 位游客已调至2号车。"
    )
    await expect(page.locator("section.coach").nth(1)).to_contain_text(family["reference"])
    await shoot_both_widths(page, "staff-coach-plan-moved-zh")
    # With a mouse, the couple's row dragged onto coach 1 sends the same move.
    await page.locator("section.unassigned tbody tr").first.drag_to(
        page.locator("section.coach").nth(0)
    )
    await expect(page.locator(".done")).to_contain_text(
        f"{couple['reference']}：2 位游客已调至1号车。"
    )
    plan = (
        await client.get(
            f"/api/v1/operator/excursions/{excursion['id']}/assignments", headers=operator.headers
        )
    ).json()
    assert [[p["reference"] for p in c["parties"]] for c in plan["coaches"]] == [
        [couple["reference"]],
        [family["reference"]],
    ]

    # The coach manifest, printed.
    await page.get_by_role("link", name="乘车名单", exact=True).click()
    await expect(page.locator("h1")).to_have_text("乘车名单：第2天 天山天池")
    await expect(page.locator(".coach-sheet").nth(1)).to_contain_text("共 3 人")
    await page.emulate_media(media="print")
    await shoot(page, "staff-coach-manifest-print")
    await page.emulate_media(media="screen")
    assert requested
    assert all(url.startswith(site) for url in requested), requested
    await context.close()


async def test_the_coach_plan_reads_in_english(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str
) -> None:
    departure = await train_departure(client, operator.headers)
    await confirmed_booking(client, departure["id"], "soft_sleeper", ["Emily Carter"])
    await excursion_with_coaches(client, operator.headers, departure["id"], [2])
    context = await browser.new_context(viewport=DESKTOP, locale="en")
    page = await context.new_page()
    await page.goto(f"{site}/staff/login?lang=en")
    await page.fill("#email", operator.email)
    await page.fill("#password", STAFF_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/staff?lang=en")
    await page.goto(f"{site}/staff/departures/{departure['id']}/coaches?lang=en")
    await expect(page.locator("h2#excursion-title")).to_have_text("Day 2: Tianshan Heavenly Lake")
    await page.get_by_role("button", name="Assign automatically").click()
    await expect(page.locator(".done")).to_have_text("1 traveller was given a coach.")
    await expect(page.locator("section.coach").first).to_contain_text("1 of 2 seats taken, 1 free")
    await shoot(page, "staff-coach-plan-en-desktop")
    await context.close()
