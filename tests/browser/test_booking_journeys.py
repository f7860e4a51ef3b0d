"""The booking journeys of the issue, end to end in Chromium against a real server on the
test database:

- a tourist books two seats on the 采摘号 in Chinese, watches the hold count down, pays, and
  sees the confirmed booking (confirmed by localstripe's signed webhook to the server);
- the same in English on the train, picking the berths on the seat map;
- cancelling shows the refund of the policy before anything changes;
- an operator logs in, opens the manifest and checks a passenger in.

Stripe.js cannot be loaded here: the browser context answers https://js.stripe.com/v3/ with
tests/browser/fake_stripe.js (the Payment Element calls the page makes) and sends its
https://api.stripe.com calls to localstripe with the secret key, as Stripe's servers would
accept the client secret. Everything after that is real: localstripe charges the card and
posts the signed payment_intent.succeeded event to the server's webhook.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, Route, expect

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.core.database import write_transaction
from app.payments.tables import Payment, StripeEvent
from tests.browser.conftest import DESKTOP, PHONE, shoot, shoot_both_widths
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)

FAKE_STRIPE_JS = (Path(__file__).parent / "fake_stripe.js").read_text()
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0341"
# The booking page refreshes every 2 s until the webhook has confirmed the booking.
CONFIRMATION_TIMEOUT_MS = 30_000


async def stripe_for(context: BrowserContext, stripe_base: str, site: str) -> None:
    """Stripe.js and Stripe's API for this browser context, and localstripe's webhooks to
    the server under test."""

    async def stripe_js(route: Route) -> None:
        await route.fulfill(body=FAKE_STRIPE_JS, content_type="application/javascript")

    async def stripe_api(route: Route) -> None:
        url = stripe_base + route.request.url.removeprefix("https://api.stripe.com")
        response = await route.fetch(
            url=url,
            headers={
                "Authorization": f"Bearer {os.environ['STRIPE_SECRET_KEY']}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        await route.fulfill(
            response=response,
            headers={**response.headers, "access-control-allow-origin": "*"},
        )

    await context.route("https://js.stripe.com/v3/", stripe_js)
    await context.route("https://api.stripe.com/**", stripe_api)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stripe_base}/_config/webhooks/browser",
            data={
                "url": f"{site}/api/v1/webhooks/stripe",
                "secret": os.environ["STRIPE_WEBHOOK_SECRET"],
            },
        )
        assert response.status_code == 200, response.text


async def fill_details(page: Page, passengers: list[str]) -> None:
    for index, name in enumerate(passengers):
        await page.fill(f"#passengers-{index}-name", name)
    await page.fill("#contact-name", passengers[0])
    await page.fill("#contact-email", "traveller@example.com")
    await page.fill("#contact-phone", "+86 138 0013 8000")


async def pay_with_card(page: Page, pay_button: str, card: str = GOOD_CARD) -> None:
    """On the payment page: the card into the Payment Element, then pay."""
    await page.wait_for_url(re.compile(r"/bookings/\w+/pay\?"))
    await page.fill("#fake-card-number", card)
    await page.get_by_role("button", name=pay_button).click()


async def booking_row(reference: str) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == reference).first().run()
    assert row is not None
    return dict(row)


async def seat_labels(reference: str) -> list[str]:
    booking = await booking_row(reference)
    lines = (
        await BookingLine.select(BookingLine.seat_label)
        .where((BookingLine.booking == booking["id"]) & BookingLine.live.eq(True))
        .order_by(BookingLine.position)
        .run()
    )
    return [line["seat_label"] for line in lines]


def reference_in(url: str) -> str:
    found = re.search(r"/bookings/(\w+)", url)
    assert found, url
    return found.group(1)


async def test_a_tourist_books_two_seats_on_the_picking_line_in_chinese(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str, stripe_server: str
) -> None:
    await published_bus_departure(client, operator.headers)
    context = await browser.new_context(viewport=PHONE, locale="zh-CN")
    await stripe_for(context, stripe_server, site)
    page = await context.new_page()

    await page.goto(f"{site}/")
    await page.get_by_role("link", name="采摘号").click()
    await page.locator(".calendar a.slot").first.click()
    await expect(page.locator("h1")).to_have_text("预订采摘号")
    await page.fill("#count-standard-adult", "2")
    await shoot_both_widths(page, "book-zh")
    await page.get_by_role("button", name="保留这些座位").click()

    # The hold: its countdown runs while the tourist fills in the details.
    await page.wait_for_url(re.compile(r"/bookings/\w+\?token="))
    reference = reference_in(page.url)
    timer = page.get_by_role("timer")
    await expect(timer).to_contain_text("座位为您保留")
    first = await timer.locator(".remaining").inner_text()
    assert re.fullmatch(r"1[45]:\d\d", first), first
    await expect(timer.locator(".remaining")).not_to_have_text(first)
    assert await page.locator("table.lines tbody tr").count() == 2
    await shoot_both_widths(page, "hold-zh")

    # Every missing field is named at once, beside its field.
    await page.locator("#passengers-0-name").evaluate("e => e.form.noValidate = true")
    await page.get_by_role("button", name="继续付款").click()
    await expect(page.get_by_role("alert")).to_contain_text("请检查表单")
    assert await page.locator(".field.invalid").count() == 5

    await fill_details(page, ["李雷", "韩梅梅"])
    await page.get_by_role("button", name="继续付款").click()
    await shoot_both_widths(page, "pay-zh")
    await pay_with_card(page, "支付 ¥136.00")

    # Paid at Stripe; the booking is confirmed when the signed webhook reaches the server.
    await expect(page.locator(".status")).to_have_text("已确认", timeout=CONFIRMATION_TIMEOUT_MS)
    await expect(page.locator("table.lines")).to_contain_text("李雷")
    await expect(page.locator("table.lines")).to_contain_text("韩梅梅")
    await expect(page.get_by_role("link", name="加入日历（.ics）")).to_be_visible()
    await shoot_both_widths(page, "booking-confirmed-zh")
    booking = await booking_row(reference)
    assert booking["status"] == BookingStatus.confirmed
    assert booking["total_amount"] == 2 * 6800
    assert await StripeEvent.exists().where(StripeEvent.type == "payment_intent.succeeded").run()
    await context.close()


async def train_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    route = await create_route(
        client, operator.headers, slug="silk-road-train", kind="train", duration_days=15,
        themes=["sightseeing"], name={"zh_Hans": "丝路号", "en": "Silk Road Train"},
    )  # fmt: skip
    vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    return await create_departure(client, operator.headers, route, vehicle)


async def test_a_tourist_picks_two_berths_on_the_train_in_english(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str, stripe_server: str
) -> None:
    await train_departure(client, operator)
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    await stripe_for(context, stripe_server, site)
    page = await context.new_page()

    await page.goto(f"{site}/lines/silk-road-train?lang=en")
    await page.locator(".calendar a.slot").first.click()
    await expect(page.locator("h1")).to_have_text("Book Silk Road Train")
    await page.fill("#count-soft_sleeper-adult", "2")
    await page.get_by_text("Pick your seats").click()
    soft = page.locator("input[name=seat][data-seat-class=soft_sleeper]:not([disabled])")
    picked = [await soft.nth(index).get_attribute("value") for index in (2, 3)]
    for label in picked:
        await page.locator(f"input[name=seat][value='{label}']").check()
    # Two passengers in the class: a third berth cannot be picked.
    assert await soft.count() == 2
    await shoot(page, "book-train-en-desktop")
    await page.get_by_role("button", name="Hold these seats").click()

    await page.wait_for_url(re.compile(r"/bookings/\w+\?token="))
    reference = reference_in(page.url)
    assert await seat_labels(reference) == picked
    cells = await page.locator("table.lines tbody tr td:first-child").all_inner_texts()
    assert cells == picked
    await expect(page.get_by_role("timer")).to_contain_text("Your seats are held for")
    await fill_details(page, ["Ada Lovelace", "Charles Babbage"])
    await page.get_by_role("button", name="Continue to payment").click()

    await pay_with_card(page, "Pay CN¥136.00")
    await expect(page.locator(".status")).to_have_text("confirmed", timeout=CONFIRMATION_TIMEOUT_MS)
    await shoot(page, "booking-confirmed-train-en-desktop")
    assert (await booking_row(reference))["status"] == BookingStatus.confirmed
    assert await seat_labels(reference) == picked
    await context.close()


async def test_a_declined_card_says_so_and_keeps_the_hold(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str, stripe_server: str
) -> None:
    await published_bus_departure(client, operator.headers)
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    await stripe_for(context, stripe_server, site)
    page = await context.new_page()
    await page.goto(f"{site}/lines/picking-line?lang=en")
    await page.locator(".calendar a.slot").first.click()
    await page.fill("#count-standard-adult", "1")
    await page.get_by_role("button", name="Hold these seats").click()
    await page.wait_for_url(re.compile(r"/bookings/\w+\?token="))
    reference = reference_in(page.url)
    await fill_details(page, ["Mei Lin"])
    await page.get_by_role("button", name="Continue to payment").click()

    await pay_with_card(page, "Pay CN¥68.00", DECLINED_CARD)
    await expect(page.locator("#payment-message")).to_have_text("Your card was declined.")
    await expect(page.get_by_role("button", name="Pay CN¥68.00")).to_be_enabled()
    # localstripe's payment_intent.payment_failed reaches the server: the attempt is
    # recorded as failed and the seats stay held.
    await expect(page.get_by_role("timer")).to_contain_text("Your seats are held for")
    booking = await booking_row(reference)
    for _ in range(50):
        failed = await Payment.select(Payment.status, Payment.failure_reason).where(
            Payment.booking == booking["id"]
        )
        if failed and failed[0]["status"] == "failed":
            break
        await page.wait_for_timeout(200)
    assert [row["status"] for row in failed] == ["failed"]
    assert failed[0]["failure_reason"]
    assert (await booking_row(reference))["status"] == BookingStatus.on_hold
    await context.close()


async def test_cancelling_shows_the_policy_refund_before_confirming(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str, stripe_server: str
) -> None:
    # Two days ahead: the default policy refunds half (72 h: all, 24 h: half).
    route = await create_route(client, operator.headers, slug="picking-line")
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    await create_departure(client, operator.headers, route, vehicle, departs_at=in_days(2))
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    await stripe_for(context, stripe_server, site)
    page = await context.new_page()
    await page.goto(f"{site}/lines/picking-line?lang=en")
    await page.locator(".calendar a.slot").first.click()
    await page.fill("#count-standard-adult", "1")
    await page.get_by_role("button", name="Hold these seats").click()
    await page.wait_for_url(re.compile(r"/bookings/\w+\?token="))
    reference = reference_in(page.url)
    await fill_details(page, ["Mei Lin"])
    await page.get_by_role("button", name="Continue to payment").click()
    await pay_with_card(page, "Pay CN¥68.00")
    await expect(page.locator(".status")).to_have_text("confirmed", timeout=CONFIRMATION_TIMEOUT_MS)

    await page.get_by_role("link", name="Cancel this booking").click()
    await expect(page.locator(".refund-amount")).to_have_text("You get back CN¥34.00 (50%).")
    await expect(page.locator(".policy")).to_contain_text(
        "At least 24 hours before departure: 50% back"
    )
    await shoot_both_widths(page, "cancel-en")
    # Seeing the refund changes nothing.
    assert (await booking_row(reference))["status"] == BookingStatus.confirmed

    await page.get_by_role("button", name="Cancel the booking").click()
    await expect(page.locator(".status")).to_have_text("cancelled")
    await expect(page.locator(".refund")).to_have_text("Refund: CN¥34.00")
    booking = await booking_row(reference)
    assert booking["status"] == BookingStatus.cancelled
    assert booking["refund_amount"] == 3400
    await context.close()


async def confirmed_booking(
    client: httpx.AsyncClient, departure_id: str, names: list[str]
) -> dict[str, Any]:
    """A paid booking, made through the API (the operator scenario is about boarding)."""
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure_id,
            "counts": [{"seat_class": "standard", "count": len(names)}],
            "contact": {"name": names[0], "email": "a@example.com", "phone": "+86 138 0013 8000"},
            "passengers": [{"name": name} for name in names],
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    async with write_transaction():
        row = await booking_row(created["booking"]["reference"])
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    return dict(created["booking"])


async def test_an_operator_logs_in_opens_the_manifest_and_checks_a_passenger_in(
    client: httpx.AsyncClient, operator: Account, browser: Any, site: str
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    family = await confirmed_booking(client, departure["id"], ["Wang Fang", "Wang Xiaoming"])
    await confirmed_booking(client, departure["id"], ["Zhao Lei"])
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()

    await page.goto(f"{site}/staff")
    await page.wait_for_url(re.compile(r"/staff/login\?"))
    await page.fill("#email", operator.email)
    await page.fill("#password", STAFF_PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(re.compile(r"/staff\?"))
    row = page.locator("table.board tbody tr").first
    await expect(row).to_contain_text("采摘号")
    await expect(row).to_contain_text("共 45 座：已售 3，保留 0，空余 42")
    await shoot_both_widths(page, "staff-board-zh")

    await row.get_by_role("link").click()
    await expect(page.locator(".checked-in")).to_have_text("已登车：0 / 3")
    await page.get_by_role("link", name="乘客名单", exact=True).click()
    rows = page.locator("table.manifest tbody tr")
    await expect(rows).to_have_count(3)
    await expect(page.locator("table.manifest")).to_contain_text("Wang Xiaoming")
    await page.emulate_media(media="print")
    await shoot(page, "staff-manifest-print")
    await page.emulate_media(media="screen")
    await shoot_both_widths(page, "staff-manifest-zh")

    await page.get_by_role("link", name="返回班次").click()
    await page.fill("#reference", family["reference"].lower())
    await page.get_by_role("button", name="登车核验").click()
    await expect(page.locator(".done")).to_contain_text(f"{family['reference']}：已登车")
    await expect(page.locator(".checked-in")).to_have_text("已登车：2 / 3")
    await shoot_both_widths(page, "staff-departure-zh")

    # A wrong reference is said beside the field.
    await page.fill("#reference", "ZZZZZZZZ")
    await page.get_by_role("button", name="登车核验").click()
    await expect(page.locator("#reference-error")).to_be_visible()

    # At the bus door, the last passenger is checked in from their row of the manifest.
    await page.get_by_role("link", name="乘客名单", exact=True).click()
    await page.get_by_role("button", name="Zhao Lei（1C）登车").click()
    await page.wait_for_url(re.compile(r"/manifest\?lang=zh#seat-1C$"))
    await expect(page.locator("#seat-1C")).to_contain_text("✓")
    await expect(page.locator("table.manifest .row-check-in")).to_have_count(0)
    await expect(page.locator("main > p").first).to_have_text("共 3 位乘客，已登车 3 位")
    manifest = (
        await client.get(
            f"/api/v1/operator/departures/{departure['id']}/manifest", headers=operator.headers
        )
    ).json()
    checked = sorted(line["passenger_name"] for line in manifest["lines"] if line["checked_in_at"])
    assert checked == ["Wang Fang", "Wang Xiaoming", "Zhao Lei"]
    await context.close()
