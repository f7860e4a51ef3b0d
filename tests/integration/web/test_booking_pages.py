"""The tourist's booking pages (app/web/{hold,booking,payment,cancel_rebook}_pages.py) over
HTTP: choosing passengers and seats, holding them, adding details, paying with Stripe (or
the notice without it), the booking page behind its token, cancelling with the refund shown
first, moving to another date, the .ics, the waiting list and the page language; and the
guest API's cancellation quote and calendar. Forms are posted as a browser would; the
results are checked through the JSON API and the tables."""

from __future__ import annotations

import dataclasses
import html
import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pypdf
import pytest

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingLine, BookingStatus, WaitlistEntry
from app.core.database import write_transaction
from app.core.http_security import PAGES_CSP
from app.core.settings import get_settings
from app.payments.tables import Payment
from tests.assertions import ok, problem
from tests.conftest import Account
from tests.factories import (
    create_route,
    create_vehicle,
    in_days,
    set_route_fares,
)

BOOKINGS = "/api/v1/bookings"
ADULT = 6800
CHILD = 3800
ADULT_FIELD = "count.standard.adult"
CHILD_FIELD = "count.standard.child"
# 10 days ahead: 240 hours before departure or less, 48 or more, so the 80% tier applies.
POLICY = [
    {"hours_before": 720, "refund_percent": 100},
    {"hours_before": 48, "refund_percent": 80},
    {"hours_before": 0, "refund_percent": 10},
]
# One row of two seats (1A, 1B): easy to sell out.
TWO_SEATS = {"type": "bus", "rows": 1, "seat_letters": "AB"}
CONTACT_FORM = {
    "contact.name": "Wang Fang",
    "contact.email": "wang.fang@example.com",
    "contact.phone": "+86 138 0013 8000",
}


# ---------------------------------------------------------------- helpers


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def tags(page: str, tag: str, **wanted: str) -> list[dict[str, str]]:
    """The attributes of every `tag` whose attributes include `wanted` (`class_` for class)."""
    parser = _Tags()
    parser.feed(page)
    wanted = {name.rstrip("_"): value for name, value in wanted.items()}
    return [
        attrs
        for name, attrs in parser.tags
        if name == tag and all(attrs.get(k) == v for k, v in wanted.items())
    ]


def text(page: str) -> str:
    """The page's text, tags dropped and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def problem_fields(page: str) -> list[str]:
    """The field ids the error summary links to, in order."""
    summary = re.search(r'<div class="problems"[^>]*>(.*?)</div>', page, re.S)
    assert summary is not None, "no error summary on the page"
    return re.findall(r'href="#([^"]+)"', summary.group(1))


def html_page(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def booking_location(response: httpx.Response, suffix: str = "") -> tuple[str, str, str]:
    """(reference, token, lang) of a 303 to a booking's page."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    found = re.fullmatch(rf"/bookings/([A-Z0-9-]+){re.escape(suffix)}", location.path)
    assert found is not None, response.headers["location"]
    query = parse_qs(location.query)
    assert set(query) >= {"token", "lang"}, query
    return found.group(1), query["token"][0], query["lang"][0]


async def departure(
    client: httpx.AsyncClient,
    operator: Account,
    route: dict[str, Any],
    vehicle: dict[str, Any],
    *,
    days: float = 10,
    pickup: bool = True,
    sales_open_at: datetime | None = None,
) -> dict[str, Any]:
    """A published departure of `route` on `vehicle`, with one pick-up stop unless not."""
    departs_at = in_days(days)
    payload: dict[str, Any] = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": [
            {
                "kind": "pickup",
                "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"},
                "at": (departs_at - timedelta(minutes=30)).isoformat(),
            }
        ]
        if pickup
        else [],
    }
    if sales_open_at is not None:
        payload["sales_open_at"] = sales_open_at.isoformat()
    created = ok(
        await client.post("/api/v1/operator/departures", json=payload, headers=operator.headers),
        201,
    )
    return dict(
        ok(
            await client.post(
                f"/api/v1/operator/departures/{created['id']}/publish", headers=operator.headers
            )
        )
    )


async def bus_line(
    client: httpx.AsyncClient, operator: Account, **options: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A route with POLICY and adult/child fares, a 45-seat bus and one departure."""
    route = await create_route(client, operator.headers, cancellation_policy=POLICY)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    return route, vehicle, await departure(client, operator, route, vehicle, **options)


async def sold_out_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A departure of a two-seat bus whose two seats are held."""
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = ok(
        await client.post(
            "/api/v1/operator/vehicles",
            json={"kind": "bus", "name": "Tiny", "code": "TINY-2", "layout": TWO_SEATS},
            headers=operator.headers,
        ),
        201,
    )
    trip = await departure(client, operator, route, vehicle)
    await api_hold(client, trip["id"], ["1A", "1B"])
    return trip


async def api_hold(
    client: httpx.AsyncClient, departure_id: str, seats: list[str], complete: bool = True
) -> dict[str, Any]:
    """A hold of adult seats through the API (with contact and names unless not complete)."""
    body: dict[str, Any] = {
        "departure_id": departure_id,
        "seats": [{"label": label} for label in seats],
    }
    if complete:
        body["contact"] = {
            "name": "Li Na",
            "email": "li.na@example.com",
            "phone": "+86 139 0000 0002",
            "locale": "en",
        }
        body["passengers"] = [{"name": f"Passenger {i}"} for i in range(len(seats))]
    created: dict[str, Any] = ok(await client.post(BOOKINGS, json=body), 201)
    return created


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


def token(created: dict[str, Any]) -> str:
    return str(created["access_token"])


async def view(client: httpx.AsyncClient, reference: str, access_token: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await client.get(f"{BOOKINGS}/{reference}", headers={"X-Booking-Token": access_token})
    )
    return body


async def confirm(reference: str) -> None:
    """Confirm a hold as the payments flow does: one transition, reason `paid`."""
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )


async def confirmed_booking(
    client: httpx.AsyncClient, operator: Account
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(departure, created) of two adults confirmed and paid in full (13600)."""
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A", "4B"])
    await confirm(ref(created))
    return trip, created


async def rows_written() -> tuple[int, int]:
    return await Booking.count().run(), await BookingLine.count().run()


async def pickup_id(client: httpx.AsyncClient, departure_id: str) -> str:
    stops = ok(await client.get(f"/api/v1/departures/{departure_id}"))["stops"]
    return str(next(stop["id"] for stop in stops if stop["kind"] == "pickup"))


async def book_form(
    client: httpx.AsyncClient, departure_id: str, form: dict[str, Any], lang: str = "en"
) -> httpx.Response:
    return await client.post(f"/departures/{departure_id}/book?lang={lang}", data=form)


# ---------------------------------------------------------------- the booking form


async def test_book_form_offers_counts_with_prices_and_the_seat_map(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    await api_hold(client, trip["id"], ["2C"])

    page = html_page(await client.get(f"/departures/{trip['id']}/book?lang=en"), 200)

    counts = {i["name"]: i for i in tags(page, "input", type="number")}
    assert set(counts) == {ADULT_FIELD, CHILD_FIELD}
    assert counts[ADULT_FIELD]["data-price"] == str(ADULT)
    assert counts[CHILD_FIELD]["data-price"] == str(CHILD)
    assert counts[ADULT_FIELD]["value"] == "0"
    prices = re.findall(r'<span class="price">([^<]+)</span>', page)
    assert len(prices) == 2, prices
    assert "68" in prices[0], prices
    assert "38" in prices[1], prices
    seats = {i["value"]: i for i in tags(page, "input", type="checkbox", name="seat")}
    assert len(seats) == 45
    assert "disabled" in seats["2C"]
    assert "disabled" not in seats["2D"]
    assert "disabled" not in seats["11E"]
    assert "44 seats left" in text(page)
    form = tags(page, "form", method="post")
    assert form[0]["action"] == f"/departures/{trip['id']}/book?lang=en"


async def test_book_form_lists_pickup_stops_only_when_the_departure_has_them(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, trip = await bus_line(client, operator)
    without = await departure(client, operator, route, vehicle, days=12, pickup=False)

    page = html_page(await client.get(f"/departures/{trip['id']}/book?lang=en"), 200)
    assert len(tags(page, "select", name="pickup_stop_id")) == 1
    options = [o["value"] for o in tags(page, "option")]
    assert options == ["", await pickup_id(client, trip["id"])]
    assert "Zhengzhou East Station" in text(page)

    bare = html_page(await client.get(f"/departures/{without['id']}/book?lang=en"), 200)
    assert tags(bare, "select", name="pickup_stop_id") == []
    assert len(tags(bare, "input", name=ADULT_FIELD)) == 1


async def test_book_form_of_an_unknown_departure_is_the_404_page(
    client: httpx.AsyncClient,
) -> None:
    page = html_page(await client.get(f"/departures/{uuid4()}/book?lang=en"), 404)
    assert "This line does not exist" in text(page)
    assert tags(page, "input", type="number") == []

    response = await book_form(client, str(uuid4()), {ADULT_FIELD: "1"})
    assert "This line does not exist" in text(html_page(response, 404))
    assert await rows_written() == (0, 0)


async def test_a_departure_not_on_sale_yet_says_so_and_offers_no_form(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator, sales_open_at=in_days(3))

    page = html_page(await client.get(f"/departures/{trip['id']}/book?lang=en"), 200)
    assert "This departure is not on sale." in text(page)
    assert tags(page, "form") == []
    assert tags(page, "input", name=ADULT_FIELD) == []


async def test_a_sold_out_departure_offers_the_waiting_list_instead(
    client: httpx.AsyncClient, operator: Account
) -> None:
    trip = await sold_out_departure(client, operator)

    page = html_page(await client.get(f"/departures/{trip['id']}/book?lang=en"), 200)
    assert "Sold out: join the waiting list" in text(page)
    forms = tags(page, "form", method="post")
    assert [f["action"] for f in forms] == [f"/departures/{trip['id']}/waitlist?lang=en"]
    assert {i["name"] for i in tags(page, "input")} >= {
        "party_size",
        "contact.name",
        "contact.email",
        "contact.phone",
    }
    assert tags(page, "input", name=ADULT_FIELD) == []
    assert tags(page, "input", name="seat") == []


# ---------------------------------------------------------------- holding seats


async def test_holding_without_any_passenger_is_400_naming_counts(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await book_form(client, trip["id"], {ADULT_FIELD: "0", CHILD_FIELD: ""})
    page = html_page(response, 400)
    assert problem_fields(page) == ["counts"]
    assert "Choose at least one passenger." in text(page)
    assert 'class="classes invalid"' in page
    assert await rows_written() == (0, 0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("two", "Give a whole number."),
        ("-1", "Give a whole number."),
        ("1.5", "Give a whole number."),
        ("11", "Choose from 0 to 10."),
    ],
)
async def test_holding_with_a_bad_count_is_400_naming_that_field(
    client: httpx.AsyncClient, operator: Account, raw: str, message: str
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await book_form(client, trip["id"], {ADULT_FIELD: "1", CHILD_FIELD: raw})
    page = html_page(response, 400)
    assert problem_fields(page) == ["count-standard-child"]
    assert message in text(page)
    # The reader's input is kept for correction.
    child = tags(page, "input", name=CHILD_FIELD)[0]
    assert child["value"] == raw
    assert tags(page, "input", name=ADULT_FIELD)[0]["value"] == "1"
    assert await rows_written() == (0, 0)


async def test_holding_with_fewer_seats_picked_than_passengers_is_400_naming_seat(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await book_form(client, trip["id"], {ADULT_FIELD: "2", "seat": ["3A"]})
    page = html_page(response, 400)
    assert problem_fields(page) == ["seat"]
    assert "(1 picked, 2 passengers)" in text(page)
    # The pick is kept, and the seat map open.
    assert "checked" in tags(page, "input", name="seat", value="3A")[0]
    assert "open" in tags(page, "details")[0]
    assert await rows_written() == (0, 0)


async def test_holding_an_unknown_seat_label_is_400(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await book_form(client, trip["id"], {ADULT_FIELD: "2", "seat": ["3A", "99Z"]})
    page = html_page(response, 400)
    assert problem_fields(page) == ["seat"]
    assert "Seat 99Z is not on this vehicle." in text(page)
    assert await rows_written() == (0, 0)


async def test_holding_with_an_unknown_pickup_stop_is_400_naming_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    for stop in (str(uuid4()), "not-a-stop"):
        response = await book_form(client, trip["id"], {ADULT_FIELD: "1", "pickup_stop_id": stop})
        page = html_page(response, 400)
        assert problem_fields(page) == ["pickup_stop_id"]
        assert "Choose one of the listed stops." in text(page)
    assert await rows_written() == (0, 0)


async def test_holding_a_seat_someone_else_holds_changes_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    await api_hold(client, trip["id"], ["5A"])
    before = await rows_written()

    response = await book_form(client, trip["id"], {ADULT_FIELD: "2", "seat": ["5A", "5B"]})
    page = html_page(response, 409)
    assert tags(page, "div", class_="problems")
    assert await rows_written() == before
    seats = {s["label"]: s["free"] for s in ok(await client.get(
        f"/api/v1/departures/{trip['id']}/seats"))["seats"]}  # fmt: skip
    assert seats["5B"] is True


async def test_holding_by_counts_lets_the_service_seat_the_party(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await book_form(client, trip["id"], {ADULT_FIELD: "2", CHILD_FIELD: "1"})
    reference, access_token, lang = booking_location(response)
    assert lang == "en"

    page = html_page(await client.get(response.headers["location"]), 200)
    assert f"Booking {reference}" in text(page)
    booking = await view(client, reference, access_token)
    assert booking["status"] == "on_hold"
    assert booking["departure_id"] == trip["id"]
    assert Counter((line["passenger_type"], line["price"]["amount"]) for line in booking["lines"]) \
        == Counter({("adult", ADULT): 2, ("child", CHILD): 1})  # fmt: skip
    assert len({line["seat_label"] for line in booking["lines"]}) == 3
    assert booking["total"]["amount"] == 2 * ADULT + CHILD
    assert booking["pickup_stop"] is None
    assert await rows_written() == (1, 3)


async def test_holding_picked_seats_books_exactly_those_with_the_pickup_stop(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    stop = await pickup_id(client, trip["id"])

    form = {ADULT_FIELD: "1", CHILD_FIELD: "1", "seat": ["7C", "7D"], "pickup_stop_id": stop}
    reference, access_token, _lang = booking_location(await book_form(client, trip["id"], form))

    booking = await view(client, reference, access_token)
    assert sorted(line["seat_label"] for line in booking["lines"]) == ["7C", "7D"]
    assert Counter((line["passenger_type"], line["price"]["amount"]) for line in booking["lines"]) \
        == Counter({("adult", ADULT): 1, ("child", CHILD): 1})  # fmt: skip
    assert booking["total"]["amount"] == ADULT + CHILD
    assert booking["pickup_stop"]["id"] == stop
    seats = {s["label"]: s["free"] for s in ok(await client.get(
        f"/api/v1/departures/{trip['id']}/seats"))["seats"]}  # fmt: skip
    assert (seats["7C"], seats["7D"], seats["7B"]) == (False, False, True)


async def test_odd_counts_are_field_errors_not_crashes(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    for odd in ("²", "١", "9" * 5000, "-0"):
        page = html_page(await book_form(client, trip["id"], {ADULT_FIELD: odd}), 400)
        assert problem_fields(page) == ["count-standard-adult"], odd
    # A waiting list's party size alike (the departure is not sold out: the size is
    # checked first).
    for odd in ("²", "9" * 5000):
        response = await client.post(
            f"/departures/{trip['id']}/waitlist?lang=en",
            data={"seat_class": "standard", "party_size": odd, "contact.name": "Li",
                  "contact.email": "li@example.com", "contact.phone": "+86 138 0013 8000"},
        )  # fmt: skip
        assert problem_fields(html_page(response, 400)) == ["party_size"], odd
    assert await rows_written() == (0, 0)


async def test_a_hold_cannot_move_and_its_move_page_leads_back(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A"])
    response = await client.get(
        f"/bookings/{ref(created)}/rebook", params={"token": token(created), "lang": "en"}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/bookings/{ref(created)}?token=")


async def test_page_errors_are_pages_not_json(client: httpx.AsyncClient) -> None:
    too_long = await client.get("/bookings/ABCDEFGH", params={"token": "x" * 200, "lang": "en"})
    assert too_long.status_code == 400
    assert too_long.headers["content-type"].startswith("text/html")
    assert 'lang="en"' in too_long.text


# ---------------------------------------------------------------- the booking page


async def test_the_booking_page_leaves_its_token_in_a_cookie_for_its_own_pages(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A"])
    page = await client.get(
        f"/bookings/{ref(created)}", params={"token": token(created), "lang": "en"}
    )
    html_page(page, 200)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"tourline_booking={token(created)};")
    for attribute in (f"Path=/bookings/{ref(created)}", "HttpOnly", "SameSite=lax"):
        assert attribute in cookie
    # Back from Stripe, without the token in the address: the cookie opens the page.
    back = await client.get(f"/bookings/{ref(created)}", params={"lang": "en", "paid": "1"})
    assert ref(created) in text(html_page(back, 200))
    # It opens this booking only.
    client.cookies.clear()
    other = await api_hold(client, trip["id"], ["5A"])
    client.cookies.set("tourline_booking", token(created), path=f"/bookings/{ref(other)}")
    html_page(await client.get(f"/bookings/{ref(other)}", params={"lang": "en"}), 404)
    client.cookies.clear()


async def test_booking_page_needs_its_token_and_leaks_nothing_without_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["9A"])

    for query in ("", "?token=", "?token=wrong-token", f"?token={token(created)}x"):
        page = html_page(await client.get(f"/bookings/{ref(created)}{query}"), 404)
        # The reference is only echoed in the language switch's link (the request path).
        assert ref(created) not in text(page)
        assert token(created) not in page
        assert "9A" not in text(page)
        assert "Li Na" not in page
        assert tags(page, "form") == []
    unknown = html_page(await client.get(f"/bookings/ZZZZZZ?token={token(created)}"), 404)
    assert "9A" not in text(unknown)


async def test_booking_page_on_hold_shows_the_countdown_seats_and_total(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["6A", "6B"], complete=False)

    page = html_page(
        await client.get(f"/bookings/{ref(created)}?token={token(created)}&lang=en"), 200
    )
    timer = tags(page, "p", role="timer")
    assert len(timer) == 1
    expires = datetime.fromisoformat(timer[0]["data-expires-at"])
    assert expires == datetime.fromisoformat(created["booking"]["expires_at"])
    assert re.search(r'<strong class="remaining">\d+:\d\d</strong>', page)
    rows = re.findall(r"<tr><td>([^<]+)</td>", page)
    assert rows == ["6A", "6B"]
    total = re.search(r'<td class="total">([^<]+)</td>', page)
    assert total is not None
    assert "136" in total.group(1)
    assert tags(page, "input", type="hidden", name="token")[0]["value"] == token(created)


async def test_details_with_missing_fields_name_every_one_at_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["6A", "6B"], complete=False)

    response = await client.post(
        f"/bookings/{ref(created)}/details?lang=en",
        data={"token": token(created), "passengers[0].name": "Wang Fang", "contact.name": " "},
    )
    page = html_page(response, 400)
    assert problem_fields(page) == [
        "contact-name",
        "contact-email",
        "contact-phone",
        "passengers-1-name",
    ]
    assert text(page).count("This field is required.") >= 4
    # What was typed stays in the form.
    assert tags(page, "input", name="passengers[0].name")[0]["value"] == "Wang Fang"
    booking = await view(client, ref(created), token(created))
    assert booking["contact"] is None
    assert [line["passenger_name"] for line in booking["lines"]] == ["", ""]


async def test_details_with_a_bad_email_show_the_email_hint(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["6A"], complete=False)

    form = {
        "token": token(created),
        "passengers[0].name": "Wang Fang",
        **CONTACT_FORM,
        "contact.email": "not-an-email",
    }
    page = html_page(await client.post(f"/bookings/{ref(created)}/details?lang=en", data=form), 400)
    assert problem_fields(page) == ["contact-email"]
    assert "Give an email address, e.g. name@example.com." in text(page)
    assert 'aria-invalid="true"' in page
    assert (await view(client, ref(created), token(created)))["contact"] is None


async def test_details_with_a_wrong_token_are_404_and_stored_nowhere(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["6A"], complete=False)

    form = {"token": "guess", "passengers[0].name": "Intruder", **CONTACT_FORM}
    page = html_page(await client.post(f"/bookings/{ref(created)}/details", data=form), 404)
    assert ref(created) not in text(page)
    assert tags(page, "form") == []
    assert (await view(client, ref(created), token(created)))["contact"] is None


async def test_valid_details_are_stored_and_lead_to_payment(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["6A", "6B"], complete=False)

    form = {
        "token": token(created),
        "passengers[0].name": "Wang Fang",
        "passengers[0].id_document": "E12345678",
        "passengers[1].name": "Wang Lei",
        **CONTACT_FORM,
    }
    response = await client.post(f"/bookings/{ref(created)}/details?lang=en", data=form)
    reference, access_token, lang = booking_location(response, "/pay")
    assert (reference, access_token, lang) == (ref(created), token(created), "en")

    booking = await view(client, ref(created), token(created))
    assert booking["contact"] == {
        "name": "Wang Fang",
        "email": "wang.fang@example.com",
        "phone": "+86 138 0013 8000",
        "locale": "en",
    }
    assert [(line["passenger_name"], line["has_id_document"]) for line in booking["lines"]] == [
        ("Wang Fang", True),
        ("Wang Lei", False),
    ]
    assert booking["status"] == "on_hold"


# ---------------------------------------------------------------- paying


async def test_pay_page_mounts_stripe_with_its_own_content_security_policy(
    client: httpx.AsyncClient, operator: Account, stripe_server: str
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["8A", "8B"])

    response = await client.get(f"/bookings/{ref(created)}/pay?token={token(created)}&lang=en")
    page = html_page(response, 200)
    form = tags(page, "form", id="payment-form")
    assert len(form) == 1
    assert re.fullmatch(r"pi_\w+_secret_\w+", form[0]["data-client-secret"])
    assert form[0]["data-publishable-key"] == "pk_test_tourline"
    return_url = urlsplit(form[0]["data-return-url"])
    assert (return_url.scheme, return_url.netloc) == ("http", "testserver")
    assert return_url.path == f"/bookings/{ref(created)}"
    # No token in it: Stripe stores the return address; the browser's cookie opens the page.
    assert parse_qs(return_url.query) == {"lang": ["en"], "paid": ["1"]}
    scripts = [s["src"] for s in tags(page, "script")]
    assert "https://js.stripe.com/v3/" in scripts
    assert "/static/pay.js" in scripts
    assert "136" in text(page)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy
    assert "frame-src https://js.stripe.com" in policy
    assert "frame-ancestors 'none'" in policy
    payments = await Payment.select().run()
    assert [(p["provider"], p["amount"]) for p in payments] == [("stripe", 2 * ADULT)]

    # Every other page keeps the strict policy, without Stripe.
    for other in (
        f"/bookings/{ref(created)}?token={token(created)}",
        f"/departures/{trip['id']}/book",
        f"/bookings/{ref(created)}/cancel?token={token(created)}",
    ):
        strict = (await client.get(other)).headers["content-security-policy"]
        assert strict == PAGES_CSP
        assert "stripe" not in strict


async def test_pay_page_without_details_is_the_booking_page_with_the_problem(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["8A"], complete=False)

    response = await client.get(f"/bookings/{ref(created)}/pay?token={token(created)}&lang=en")
    page = html_page(response, 409)
    assert f"Booking {ref(created)}" in text(page)
    assert "Complete the booking before paying." in text(page)
    assert tags(page, "form", id="payment-form") == []
    assert "js.stripe.com" not in page
    assert await Payment.count().run() == 0


async def test_pay_page_without_stripe_says_card_payment_is_not_set_up(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["8A"])
    unconfigured = dataclasses.replace(get_settings(), stripe_secret_key="")
    # The settings the client's app was built with (its `settings` dependency).
    monkeypatch.setattr(client._transport.app.state, "settings", unconfigured)  # type: ignore[attr-defined]

    response = await client.get(f"/bookings/{ref(created)}/pay?token={token(created)}&lang=en")
    page = html_page(response, 200)
    assert "Card payment is not set up on this site" in text(page)
    assert tags(page, "form", id="payment-form") == []
    assert "js.stripe.com" not in page
    assert response.headers["content-security-policy"] == PAGES_CSP
    assert await Payment.count().run() == 0
    assert (await view(client, ref(created), token(created)))["status"] == "on_hold"


# ---------------------------------------------------------------- cancelling


async def test_cancel_page_shows_the_refund_and_policy_before_cancelling(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _trip, created = await confirmed_booking(client, operator)

    page = html_page(
        await client.get(f"/bookings/{ref(created)}/cancel?token={token(created)}&lang=en"), 200
    )
    words = text(page)
    refund = re.search(r"You get back (\S+) \((\d+)%\)\.", words)
    assert refund is not None, words
    assert refund.group(2) == "80"
    assert "108.80" in refund.group(1)
    policy = re.findall(r"<li>([^<]+)</li>", page)
    assert [" ".join(p.split()) for p in policy] == [
        "At least 720 hours before departure: 100% back",
        "At least 48 hours before departure: 80% back",
        "Until departure: 10% back",
    ]
    assert tags(page, "input", type="hidden", name="token")[0]["value"] == token(created)
    # Looking is not cancelling.
    assert (await view(client, ref(created), token(created)))["status"] == "confirmed"


async def test_cancel_page_needs_the_token(client: httpx.AsyncClient, operator: Account) -> None:
    _trip, created = await confirmed_booking(client, operator)

    page = html_page(await client.get(f"/bookings/{ref(created)}/cancel?token=nope"), 404)
    assert "108.80" not in page
    response = await client.post(f"/bookings/{ref(created)}/cancel", data={"token": "nope"})
    html_page(response, 404)
    assert (await view(client, ref(created), token(created)))["status"] == "confirmed"


async def test_cancelling_from_the_page_refunds_per_policy_and_shows_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    trip, created = await confirmed_booking(client, operator)

    response = await client.post(
        f"/bookings/{ref(created)}/cancel?lang=en",
        data={"token": token(created), "reason": "Plans changed"},
    )
    reference, access_token, _lang = booking_location(response)
    assert (reference, access_token) == (ref(created), token(created))

    page = html_page(await client.get(response.headers["location"]), 200)
    assert tags(page, "p", class_="status status-cancelled")
    refund = re.search(r'<p class="refund">([^<]+)</p>', page)
    assert refund is not None
    assert "108.80" in refund.group(1)
    assert tags(page, "p", role="timer") == []
    booking = await view(client, ref(created), token(created))
    assert booking["status"] == "cancelled"
    assert booking["refund"]["amount"] == 13600 * 80 // 100
    seats = {s["label"]: s["free"] for s in ok(await client.get(
        f"/api/v1/departures/{trip['id']}/seats"))["seats"]}  # fmt: skip
    assert (seats["4A"], seats["4B"]) == (True, True)


async def test_a_refund_lower_than_the_one_shown_is_shown_again_before_cancelling(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """The page showed 100 %; by the time the guest confirms, the policy gives 80 %."""
    _trip, created = await confirmed_booking(client, operator)
    form = {"token": token(created), "shown_percent": "100"}
    response = await client.post(f"/bookings/{ref(created)}/cancel?lang=en", data=form)
    page = html_page(response, 409)
    assert "The refund has changed" in text(page)
    assert tags(page, "input", name="shown_percent")[0]["value"] == "80"
    assert (await view(client, ref(created), token(created)))["status"] == "confirmed"
    # Confirming what is shown now cancels.
    response = await client.post(
        f"/bookings/{ref(created)}/cancel?lang=en", data={**form, "shown_percent": "80"}
    )
    assert response.status_code == 303
    assert (await view(client, ref(created), token(created)))["status"] == "cancelled"


async def test_cancellation_quote_api_matches_the_page_and_changes_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _trip, created = await confirmed_booking(client, operator)
    headers = {"X-Booking-Token": token(created)}

    quote = ok(await client.get(f"{BOOKINGS}/{ref(created)}/cancellation", headers=headers))
    assert quote["refund"]["amount"] == 10880
    assert quote["refund_percent"] == 80
    assert sorted((t["hours_before"], t["refund_percent"]) for t in quote["policy"]) == [
        (0, 10),
        (48, 80),
        (720, 100),
    ]
    assert quote["booking"]["reference"] == ref(created)
    assert quote["booking"]["status"] == "confirmed"
    again = ok(await client.get(f"{BOOKINGS}/{ref(created)}/cancellation", headers=headers))
    assert again["refund"] == quote["refund"]
    assert (await view(client, ref(created), token(created)))["status"] == "confirmed"

    problem(await client.get(f"{BOOKINGS}/{ref(created)}/cancellation"), 404)
    problem(
        await client.get(
            f"{BOOKINGS}/{ref(created)}/cancellation", headers={"X-Booking-Token": "wrong"}
        ),
        404,
    )


async def test_cancellation_quote_of_a_hold_refunds_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A"])

    quote = ok(
        await client.get(
            f"{BOOKINGS}/{ref(created)}/cancellation", headers={"X-Booking-Token": token(created)}
        )
    )
    assert (quote["refund"]["amount"], quote["refund_percent"]) == (0, 0)
    assert len(quote["policy"]) == 3
    page = html_page(
        await client.get(f"/bookings/{ref(created)}/cancel?token={token(created)}&lang=en"), 200
    )
    assert "Nothing has been paid yet, so there is nothing to refund." in text(page)


# ---------------------------------------------------------------- moving


async def test_rebook_page_lists_only_other_departures_with_room(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, trip = await bus_line(client, operator)
    later = await departure(client, operator, route, vehicle, days=14)
    closed = await departure(client, operator, route, vehicle, days=16, sales_open_at=in_days(5))
    created = await api_hold(client, trip["id"], ["4A", "4B"])
    await confirm(ref(created))

    page = html_page(
        await client.get(f"/bookings/{ref(created)}/rebook?token={token(created)}&lang=en"), 200
    )
    choices = [r["value"] for r in tags(page, "input", type="radio", name="departure_id")]
    assert choices == [later["id"]]
    assert trip["id"] not in choices
    assert closed["id"] not in choices


async def test_rebook_with_a_bad_departure_id_is_400_and_moves_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, trip = await bus_line(client, operator)
    await departure(client, operator, route, vehicle, days=14)
    created = await api_hold(client, trip["id"], ["4A", "4B"])
    await confirm(ref(created))

    response = await client.post(
        f"/bookings/{ref(created)}/rebook?lang=en",
        data={"token": token(created), "departure_id": "tomorrow"},
    )
    page = html_page(response, 400)
    assert problem_fields(page) == ["departure_id"]
    assert "Choose one of the listed departures." in text(page)
    booking = await view(client, ref(created), token(created))
    assert booking["departure_id"] == trip["id"]


async def test_rebook_to_the_same_departure_is_400_naming_departure_id(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, trip = await bus_line(client, operator)
    await departure(client, operator, route, vehicle, days=14)
    created = await api_hold(client, trip["id"], ["4A", "4B"])

    response = await client.post(
        f"/bookings/{ref(created)}/rebook?lang=en",
        data={"token": token(created), "departure_id": trip["id"]},
    )
    page = html_page(response, 400)
    assert problem_fields(page) == ["departure_id"]
    assert "The booking is already on this departure." in text(page)
    booking = await view(client, ref(created), token(created))
    assert sorted(line["seat_label"] for line in booking["lines"]) == ["4A", "4B"]


async def test_rebooking_from_the_page_moves_the_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, trip = await bus_line(client, operator)
    later = await departure(client, operator, route, vehicle, days=14)
    created = await api_hold(client, trip["id"], ["4A", "4B"])
    await confirm(ref(created))

    response = await client.post(
        f"/bookings/{ref(created)}/rebook?lang=en",
        data={"token": token(created), "departure_id": later["id"]},
    )
    reference, access_token, _lang = booking_location(response)
    assert (reference, access_token) == (ref(created), token(created))

    booking = await view(client, ref(created), token(created))
    assert booking["departure_id"] == later["id"]
    assert booking["status"] == "confirmed"
    assert len(booking["lines"]) == 2
    old = ok(await client.get(f"/api/v1/departures/{trip['id']}"))
    new = ok(await client.get(f"/api/v1/departures/{later['id']}"))
    assert (old["seats_left"], new["seats_left"]) == (45, 43)


# ---------------------------------------------------------------- the calendar


async def test_calendar_from_the_page_and_the_api(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator, pickup=False)
    created = await api_hold(client, trip["id"], ["4A", "4B"])
    await confirm(ref(created))
    departs = datetime.fromisoformat(trip["departs_at"].replace("Z", "+00:00"))
    start = departs.astimezone(UTC)

    page = await client.get(f"/bookings/{ref(created)}/calendar.ics?token={token(created)}")
    api = await client.get(
        f"{BOOKINGS}/{ref(created)}/calendar", headers={"X-Booking-Token": token(created)}
    )
    for response in (page, api):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/calendar")
        assert f'filename="{ref(created)}.ics"' in response.headers["content-disposition"]
        body = response.text
        assert body.startswith("BEGIN:VCALENDAR\r\n")
        assert body.rstrip().endswith("END:VCALENDAR")
        assert ref(created) in body
        # In the departure's zone (RFC 5545 form 3), with that zone's VTIMEZONE.
        zone = trip["time_zone"]
        local = start.astimezone(ZoneInfo(zone))
        assert f"DTSTART;TZID={zone}:{local:%Y%m%dT%H%M%S}\r\n" in body
        assert f"BEGIN:VTIMEZONE\r\nTZID:{zone}\r\n" in body
        [event] = icalendar.Calendar.from_ical(body).walk("VEVENT")
        assert event.decoded("DTSTART") == start
        assert "4A\\, 4B" in body  # RFC 5545 escapes the comma

    html_page(await client.get(f"/bookings/{ref(created)}/calendar.ics"), 404)
    html_page(await client.get(f"/bookings/{ref(created)}/calendar.ics?token=bad"), 404)
    problem(await client.get(f"{BOOKINGS}/{ref(created)}/calendar"), 404)


async def test_a_confirmed_booking_has_a_printable_ticket_by_a_signed_link(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _trip, created = await confirmed_booking(client, operator)
    page = html_page(
        await client.get(f"/bookings/{ref(created)}?token={token(created)}&lang=zh"), 200
    )
    [link] = [a["href"] for a in tags(page, "a") if "/ticket.pdf" in a.get("href", "")]
    assert "token" not in link  # the link is signed: it carries no guest token

    response = await client.get(html.unescape(link))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="ticket-{ref(created)}.pdf"' in response.headers["content-disposition"]
    text = pypdf.PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert ref(created) in text
    assert "4A" in text
    assert "4B" in text
    assert "成人" in text  # in the reader's language

    # Another device, no cookie, no token: the link alone opens it; a forged one does not.
    client.cookies.clear()
    assert (await client.get(html.unescape(link))).status_code == 200
    signature = urlsplit(link).path.split("/")[3]
    forged = link.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    html_page(await client.get(html.unescape(forged)), 404)
    other = urlsplit(link).path.replace(ref(created), "ZZZZZZZZ")
    html_page(await client.get(other), 404)

    # Cancelled, the ticket is no longer valid.
    ok(
        await client.post(
            f"{BOOKINGS}/{ref(created)}/cancel", headers={"X-Booking-Token": token(created)}
        )
    )
    html_page(await client.get(html.unescape(link)), 409)


# ---------------------------------------------------------------- the waiting list


async def test_waitlist_without_contact_is_400_naming_every_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    trip = await sold_out_departure(client, operator)

    response = await client.post(
        f"/departures/{trip['id']}/waitlist?lang=en",
        data={"seat_class": "standard", "party_size": "2", "contact.email": "a@example.com"},
    )
    page = html_page(response, 400)
    assert problem_fields(page) == ["contact-name", "contact-phone"]
    assert tags(page, "input", name="contact.email")[0]["value"] == "a@example.com"
    assert await WaitlistEntry.count().run() == 0


async def test_joining_the_waitlist_from_the_page_shows_the_place(
    client: httpx.AsyncClient, operator: Account
) -> None:
    trip = await sold_out_departure(client, operator)
    form = {"seat_class": "standard", "party_size": "2", **CONTACT_FORM}

    first = html_page(
        await client.post(f"/departures/{trip['id']}/waitlist?lang=en", data=form), 201
    )
    assert "You are on the waiting list" in text(first)
    assert re.search(r"Place 1 for 2 in ", text(first))
    second = html_page(
        await client.post(
            f"/departures/{trip['id']}/waitlist?lang=en", data={**form, "party_size": "1"}
        ),
        201,
    )
    assert re.search(r"Place 2 for 1 in ", text(second))
    entries = await WaitlistEntry.select().order_by(WaitlistEntry.created_at).run()
    assert [(e["party_size"], e["contact_email"], e["locale"]) for e in entries] == [
        (2, "wang.fang@example.com", "en"),
        (1, "wang.fang@example.com", "en"),
    ]


async def test_waitlist_when_seats_are_free_says_book_them_instead(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)

    response = await client.post(
        f"/departures/{trip['id']}/waitlist?lang=en",
        data={"seat_class": "standard", "party_size": "2", **CONTACT_FORM},
    )
    page = html_page(response, 409)
    assert "Seats are available: book them instead." in text(page)
    assert await WaitlistEntry.count().run() == 0


# ---------------------------------------------------------------- language


async def test_pages_speak_the_language_asked_for(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A"])
    await confirm(ref(created))  # only a confirmed booking has a page to move it
    booking = f"/bookings/{ref(created)}?token={token(created)}"
    pages = [
        f"/departures/{trip['id']}/book?x=1",
        booking,
        f"/bookings/{ref(created)}/cancel?token={token(created)}",
        f"/bookings/{ref(created)}/rebook?token={token(created)}",
        f"/departures/{uuid4()}/book?x=1",
    ]
    for path in pages:
        english = (await client.get(f"{path}&lang=en")).text
        chinese = (await client.get(f"{path}&lang=zh")).text
        assert html_lang(english) == "en", path
        assert html_lang(chinese) == "zh-Hans", path
        assert english != chinese
    assert "Hold these seats" in (await client.get(f"{pages[0]}&lang=en")).text
    assert "Hold these seats" not in (await client.get(f"{pages[0]}&lang=zh")).text

    # The redirect after holding keeps the reader's language.
    response = await book_form(client, trip["id"], {ADULT_FIELD: "1"}, lang="zh")
    _reference, _token, lang = booking_location(response)
    assert lang == "zh"
    page = await client.get(response.headers["location"])
    assert html_lang(html_page(page, 200)) == "zh-Hans"


async def test_the_language_switch_keeps_the_reader_on_their_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """The token travels in the link: switching language must not lose the booking."""
    _route, _vehicle, trip = await bus_line(client, operator)
    created = await api_hold(client, trip["id"], ["4A"])
    await confirm(ref(created))
    for suffix in ("", "/cancel", "/rebook"):
        path = f"/bookings/{ref(created)}{suffix}?token={token(created)}&lang=en"
        english = html_page(await client.get(path), 200)
        switch = tags(english, "a", hreflang="zh-Hans")
        assert len(switch) == 1
        chinese = await client.get(html.unescape(switch[0]["href"]))
        assert chinese.status_code == 200, (suffix, switch[0]["href"])
        assert html_lang(chinese.text) == "zh-Hans"
        assert ref(created) in text(chinese.text)
