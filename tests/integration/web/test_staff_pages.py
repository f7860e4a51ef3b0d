"""The operator's pages behind staff login (/staff): logging in and out with the HttpOnly,
SameSite=Strict cookie, the departures board with the load of each class (seats kept for
agencies included), a departure's page with check-in by reference, advisories and
cancelling the run (each form guarded by its token and the staff role), the manifest as HTML
and CSV, and the audit log of the changes made through the pages. Through HTTP against a
real database; the API is the reference the pages are checked against."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.catalogue.tables import Departure
from app.core import clock
from app.core.database import write_transaction
from tests.assertions import ok
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)

COOKIE = "tourline_staff"
DEPARTURES = "/api/v1/operator/departures"
BOOKINGS = "/api/v1/bookings"
AGENCIES = "/api/v1/operator/agencies"
ADULT = 6800
CSV_HEADER = [
    "Seat",
    "Class",
    "Passenger",
    "Passenger type",
    "Booking",
    "Status",
    "Pick-up stop",
    "Pick-up time",
    "Contact",
    "Phone",
    "Checked in",
]
EXPIRED_FORM = "This form has expired; reload the page and try again."
ADMIN_ONLY = "Only an operator admin can change this."


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_stored_cookies(client: httpx.AsyncClient) -> Iterator[None]:
    """The client is shared by the session: a staff cookie must not leak between tests."""
    client.cookies.clear()
    yield
    client.cookies.clear()


def cookie(account: Account) -> dict[str, str]:
    """The staff cookie as the browser sends it (the API token is the cookie's value)."""
    return {"Cookie": f"{COOKIE}={account.token}"}


async def get_page(
    client: httpx.AsyncClient, account: Account | None, path: str, **params: str
) -> httpx.Response:
    headers = cookie(account) if account else {}
    return await client.get(path, params={"lang": "en", **params}, headers=headers)


async def post_form(
    client: httpx.AsyncClient, account: Account | None, path: str, data: dict[str, Any]
) -> httpx.Response:
    headers = cookie(account) if account else {}
    return await client.post(path, params={"lang": "en"}, data=data, headers=headers)


def html_of(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def text_of(fragment: str) -> str:
    """The text of an HTML fragment, tags dropped, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def csrf_of(html: str) -> str:
    tokens = set(re.findall(r'name="csrf" value="([^"]*)"', html))
    assert len(tokens) == 1, tokens
    return str(tokens.pop())


async def csrf_for(client: httpx.AsyncClient, account: Account, departure_id: str) -> str:
    """The form token of the departure's page, as the browser would post it back."""
    return csrf_of(html_of(await get_page(client, account, f"/staff/departures/{departure_id}")))


def field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">(.*?)</p>', html, re.S)
    assert match, f"no error beside #{field_id}"
    return text_of(match.group(1))


def problems_box(html: str) -> str:
    match = re.search(r'<div class="problems"[^>]*>(.*?)</div>', html, re.S)
    assert match, "no error summary on the page"
    return match.group(1)


def done_notice(html: str) -> str:
    match = re.search(r'<p class="notice done" role="status">(.*?)</p>', html, re.S)
    assert match, "no notice of what was done"
    return text_of(match.group(1))


def forbidden_message(html: str) -> str:
    match = re.search(r'<p class="notice" role="alert">(.*?)</p>', html, re.S)
    assert match, "no message on the page"
    return text_of(match.group(1))


def body_rows(table: str) -> list[list[str]]:
    """The cells (as text) of each row in a table's body."""
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S)
    assert body
    return [
        [text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def load_table(html: str) -> dict[str, list[str]]:
    """The departure page's load table: class label -> [sold, held, agencies, free, seats]."""
    section = re.search(r'<section aria-labelledby="load-title">(.*?)</section>', html, re.S)
    assert section
    return {row[0]: row[1:] for row in body_rows(section.group(1))}


def manifest_rows(html: str) -> list[list[str]]:
    table = re.search(r'<table class="staff-table manifest">.*?</table>', html, re.S)
    assert table
    return body_rows(table.group(0))


def board_rows(html: str) -> dict[str, str]:
    """The board's rows by departure id, as text."""
    body = re.search(r'<table class="staff-table board">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
        match = re.search(r'href="/staff/departures/([0-9a-f-]{36})\?', row)
        assert match, row
        rows[match.group(1)] = text_of(row)
    return rows


def links(html: str) -> dict[str, str]:
    """The page's links: text -> address (entities decoded)."""
    return {
        text_of(label): unescape(href)
        for href, label in re.findall(r'<a [^>]*?href="([^"]*)"[^>]*>(.*?)</a>', html, re.S)
    }


def set_cookie_attributes(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The staff cookie's value and attributes (names in lower case) as set by `response`."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, response.headers
    first, *attributes = [part.strip() for part in headers[0].split(";")]
    value = first.split("=", 1)[1].strip('"')
    parsed = {}
    for attribute in attributes:
        name, _sep, setting = attribute.partition("=")
        parsed[name.lower()] = setting
    return value, parsed


def contact(name: str) -> dict[str, str]:
    return {
        "name": name,
        "email": f"{name.lower().replace(' ', '.')}@example.com",
        "phone": "+86 138 0000 0000",
        "locale": "en",
    }


async def hold(
    client: httpx.AsyncClient, departure_id: str, seats: list[str], name: str, **extra: Any
) -> str:
    """A public hold of these seats (adults); its reference."""
    body = {
        "departure_id": departure_id,
        "seats": [{"label": seat, "passenger_type": "adult"} for seat in seats],
        "contact": contact(name),
        **extra,
    }
    created = ok(await client.post(BOOKINGS, json=body), 201)
    return str(created["booking"]["reference"])


async def confirm(reference: str) -> None:
    """Confirmed as if paid."""
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )


async def booked(client: httpx.AsyncClient, departure_id: str, seats: list[str], name: str) -> str:
    reference = await hold(client, departure_id, seats, name)
    await confirm(reference)
    return reference


async def booking_status(reference: str) -> str:
    row = await Booking.select(Booking.status).where(Booking.reference == reference).first().run()
    assert row is not None
    return str(row["status"])


async def bus_departure(
    client: httpx.AsyncClient, account: Account, slug: str = "picking-line"
) -> dict[str, Any]:
    """A published departure (ten days ahead) of a 45-seat bus on a route with fares."""
    _route, _vehicle, departure = await published_bus_departure(client, account.headers, slug)
    return departure


async def api_manifest(
    client: httpx.AsyncClient, account: Account, departure_id: str
) -> dict[str, Any]:
    return dict(
        ok(await client.get(f"{DEPARTURES}/{departure_id}/manifest", headers=account.headers))
    )


async def api_sales(
    client: httpx.AsyncClient, account: Account, departure_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"{DEPARTURES}/{departure_id}/sales", headers={**account.headers, "Accept-Language": "en"}
    )
    return dict(ok(response))


async def api_departure(
    client: httpx.AsyncClient, account: Account, departure_id: str
) -> dict[str, Any]:
    return dict(ok(await client.get(f"{DEPARTURES}/{departure_id}", headers=account.headers)))


async def advisories(
    client: httpx.AsyncClient, account: Account, departure_id: str
) -> list[dict[str, Any]]:
    listed = ok(
        await client.get(f"{DEPARTURES}/{departure_id}/notifications", headers=account.headers)
    )
    return [item for item in listed if item["kind"] == "advisory"]


def load_text(seat_class: dict[str, Any]) -> str:
    """How the board writes a class's load, from the sales API's figures."""
    return (
        f"standard seat: {seat_class['sold']} sold, {seat_class['held']} held, "
        f"{seat_class['free']} free of {seat_class['capacity']}"
    )


# ---------------------------------------------------------------- login and logout


async def test_pages_without_a_valid_cookie_lead_to_the_login_page(
    client: httpx.AsyncClient, operator: Account, platform_admin: Account
) -> None:
    departure = await bus_departure(client, operator)
    paths = [
        "/staff",
        f"/staff/departures/{departure['id']}",
        f"/staff/departures/{departure['id']}/manifest",
    ]
    not_operator_staff = [
        {},
        {"Cookie": f"{COOKIE}=not-a-token"},
        # A platform admin's own token is no way in either.
        {"Cookie": f"{COOKIE}={platform_admin.token}"},
    ]
    for path in paths:
        for headers in not_operator_staff:
            response = await client.get(path, params={"lang": "en"}, headers=headers)
            assert response.status_code == 303, (path, headers, response.text)
            location = urlsplit(response.headers["location"])
            assert location.path == "/staff/login"
            query = parse_qs(location.query)
            assert query["lang"] == ["en"]
            # Back to the page asked for, once logged in.
            assert query["next"] == [f"{path}?lang=en"]


async def test_login_page_has_labelled_fields_and_only_keeps_a_staff_page_to_go_back_to(
    client: httpx.AsyncClient,
) -> None:
    html = html_of(await client.get("/staff/login", params={"lang": "en", "next": "/staff/x"}))
    for name, kind in (("email", "email"), ("password", "password")):
        assert re.search(rf'<label for="{name}">', html), name
        assert re.search(rf'<input id="{name}" name="{name}" type="{kind}"', html), name
    assert 'name="next" value="/staff/x"' in html
    assert 'action="/staff/login?lang=en"' in html
    for elsewhere in ("https://evil.example/staff", "//evil.example"):
        html = html_of(await client.get("/staff/login", params={"lang": "en", "next": elsewhere}))
        assert 'name="next" value="/staff"' in html
        assert "evil.example" not in html


async def test_login_without_email_or_password_names_both_fields(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.post(
        "/staff/login", params={"lang": "en"}, data={"email": "", "password": ""}
    )
    html = html_of(response, 400)
    assert field_error(html, "email") == "This field is required."
    assert field_error(html, "password") == "This field is required."
    assert 'href="#email"' in problems_box(html)
    assert 'href="#password"' in problems_box(html)
    assert "set-cookie" not in response.headers

    # The email typed is kept; only the missing password is named.
    response = await client.post(
        "/staff/login", params={"lang": "en"}, data={"email": operator.email}
    )
    html = html_of(response, 400)
    assert field_error(html, "password") == "This field is required."
    assert 'id="email-error"' not in html
    assert f'value="{operator.email}"' in html


async def test_login_with_a_wrong_password_is_refused_with_a_message(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": operator.email, "password": "not-the-password", "next": "/staff"},
    )
    html = html_of(response, 401)
    assert "The email or password is wrong." in text_of(problems_box(html))
    assert "set-cookie" not in response.headers
    assert COOKIE not in client.cookies


async def test_a_platform_admin_cannot_log_in_to_the_operator_pages(
    client: httpx.AsyncClient, platform_admin: Account
) -> None:
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": platform_admin.email, "password": STAFF_PASSWORD},
    )
    html = html_of(response, 403)
    assert "Only an operator's staff can use the operator API." in text_of(problems_box(html))
    assert "set-cookie" not in response.headers
    assert COOKIE not in client.cookies


async def test_login_sets_a_strict_http_only_cookie_and_goes_back_to_the_page(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    next_page = f"/staff/departures/{departure['id']}?lang=en"
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": operator.email, "password": STAFF_PASSWORD, "next": next_page},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_page
    token, attributes = set_cookie_attributes(response)
    assert token
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/staff"
    assert int(attributes["max-age"]) > 0

    # The cookie opens the page it was sent back to.
    html = html_of(await client.get(next_page, headers={"Cookie": f"{COOKIE}={token}"}))
    assert "Picking Line" in html

    # Without a page to go back to: the board, in the reader's language.
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": operator.email, "password": STAFF_PASSWORD},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff?lang=en"


@pytest.mark.parametrize(
    "elsewhere",
    ["//evil.example", "https://evil.example", "https://evil.example/staff", "/logout"],
)
async def test_login_never_sends_the_staff_to_another_site(
    client: httpx.AsyncClient, operator: Account, elsewhere: str
) -> None:
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": operator.email, "password": STAFF_PASSWORD, "next": elsewhere},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff?lang=en"
    set_cookie_attributes(response)


async def test_logout_clears_the_cookie(client: httpx.AsyncClient, operator: Account) -> None:
    # The client keeps cookies like a browser here.
    response = await client.post(
        "/staff/login",
        params={"lang": "en"},
        data={"email": operator.email, "password": STAFF_PASSWORD},
    )
    assert response.status_code == 303, response.text
    html_of(await client.get("/staff", params={"lang": "en"}))

    response = await client.post("/staff/logout", params={"lang": "en"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/staff/login?lang=en"
    value, attributes = set_cookie_attributes(response)
    assert value == ""
    assert int(attributes["max-age"]) <= 0
    assert attributes["path"] == "/staff"
    response = await client.get("/staff", params={"lang": "en"})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/staff/login?")


# ---------------------------------------------------------------- the board


async def test_board_lists_the_operators_departures_from_today_with_their_load(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    soon = await create_departure(client, operator.headers, route, vehicle, in_days(10))
    later = await create_departure(client, operator.headers, route, vehicle, in_days(20))
    gone = await create_departure(client, operator.headers, route, vehicle, in_days(30))
    # One that left two days ago.
    left_at = clock.now() - timedelta(days=2)
    await (
        Departure.update(
            {Departure.departs_at: left_at, Departure.returns_at: left_at + timedelta(hours=9)}
        )
        .where(Departure.id == gone["id"])
        .run()
    )
    await booked(client, soon["id"], ["1A", "1B"], "Paid Pair")
    await hold(client, soon["id"], ["2A"], "Held Guest")
    await booked(client, later["id"], ["3C"], "Paid Single")

    rival = await make_operator("yy-tours")
    rival_route = await create_route(
        client, rival.headers, slug="rival-line", name={"zh_Hans": "对手线", "en": "Rival Line"}
    )
    rival_vehicle = await create_vehicle(client, rival.headers)
    await set_route_fares(client, rival.headers, rival_route["id"], ["standard"])
    rival_departure = await create_departure(
        client, rival.headers, rival_route, rival_vehicle, in_days(10)
    )

    html = html_of(await get_page(client, operator, "/staff"))
    rows = board_rows(html)
    assert list(rows) == [soon["id"], later["id"]]
    assert rival_departure["id"] not in html
    assert "Rival Line" not in html
    for departure_id, row in rows.items():
        assert "Picking Line" in row
        assert "published" in row
        [standard] = (await api_sales(client, operator, departure_id))["classes"]
        assert load_text(standard) in row
    [soon_sales] = (await api_sales(client, operator, soon["id"]))["classes"]
    assert (soon_sales["sold"], soon_sales["held"], soon_sales["free"]) == (2, 1, 42)
    assert "kept for agencies" not in html
    assert "Next page" not in html
    assert "Earlier page" not in html

    # From a later date, only the later departure.
    later_day = in_days(15).date().isoformat()
    html = html_of(await get_page(client, operator, "/staff", **{"from": later_day}))
    assert list(board_rows(html)) == [later["id"]]
    assert f'value="{later_day}"' in html

    # The rival's board has its own departure only.
    assert list(board_rows(html_of(await get_page(client, rival, "/staff")))) == [
        rival_departure["id"]
    ]


async def test_board_pages_through_many_departures(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    created = [
        await create_departure(client, operator.headers, route, None, in_days(3 + day), False)
        for day in range(26)
    ]
    first = html_of(await get_page(client, operator, "/staff"))
    assert list(board_rows(first)) == [d["id"] for d in created[:25]]
    assert links(first)["Next page"] == "/staff?lang=en&page=2"
    assert "Earlier page" not in links(first)

    second = html_of(await get_page(client, operator, "/staff", page="2"))
    assert list(board_rows(second)) == [created[25]["id"]]
    assert links(second)["Earlier page"] == "/staff?lang=en&page=1"
    assert "Next page" not in links(second)


# ---------------------------------------------------------------- a departure's page


async def test_departure_page_shows_the_load_and_the_checked_in_count(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    pair = await booked(client, departure["id"], ["1A", "1B"], "Paid Pair")
    await hold(client, departure["id"], ["2A"], "Held Guest")
    ok(
        await client.post(
            f"{DEPARTURES}/{departure['id']}/check-in",
            json={"reference": pair, "seat_labels": ["1A"]},
            headers=operator.headers,
        )
    )
    html = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    assert "<h1>Picking Line · " in html
    assert load_table(html) == {"standard seat": ["2", "1", "0", "42", "45"]}
    assert "Checked in: 1 of 3" in text_of(html)
    assert "1 bookings confirmed, 1 on hold" in text_of(html)
    assert f'href="/staff/departures/{departure["id"]}/manifest?lang=en"' in html
    # Each form carries the same token.
    assert len(re.findall(r'name="csrf"', html)) == 3
    csrf_of(html)


async def test_another_operators_departure_is_not_found(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    rival = await make_operator("yy-tours")
    rival_departure = await bus_departure(client, rival, slug="rival-line")
    base = f"/staff/departures/{departure['id']}"

    for path in (base, f"{base}/manifest"):
        html = html_of(await get_page(client, rival, path), 404)
        assert "Picking Line" not in html
    response = await get_page(client, rival, f"{base}/manifest", format="csv")
    assert response.status_code == 404, response.text
    assert reference not in response.text

    rival_csrf = await csrf_for(client, rival, rival_departure["id"])
    response = await post_form(
        client, rival, f"{base}/check-in", {"csrf": rival_csrf, "reference": reference}
    )
    html_of(response, 404)
    response = await post_form(
        client, rival, f"{base}/cancel", {"csrf": rival_csrf, "confirm": "yes"}
    )
    html_of(response, 404)
    assert (await api_manifest(client, operator, departure["id"]))["checked_in"] == 0
    assert (await api_departure(client, operator, departure["id"]))["status"] == "published"
    assert await booking_status(reference) == "confirmed"


# ---------------------------------------------------------------- check-in


async def test_check_in_needs_the_cookie_and_the_form_token(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    url = f"/staff/departures/{departure['id']}/check-in"
    colleague = await make_operator("zz-bus", role="operator_staff")
    colleague_csrf = await csrf_for(client, colleague, departure["id"])
    assert colleague_csrf != await csrf_for(client, operator, departure["id"])

    response = await post_form(client, None, url, {"reference": reference})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/staff/login?")
    for form in (
        {"reference": reference},
        {"reference": reference, "csrf": ""},
        {"reference": reference, "csrf": "0" * 40},
        # Another staff member's token is no good with this cookie.
        {"reference": reference, "csrf": colleague_csrf},
    ):
        html = html_of(await post_form(client, operator, url, form), 403)
        assert forbidden_message(html) == EXPIRED_FORM
    manifest = await api_manifest(client, operator, departure["id"])
    assert manifest["checked_in"] == 0
    assert all(line["checked_in_at"] is None for line in manifest["lines"])


async def test_check_in_of_an_unknown_reference_says_so_beside_the_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    url = f"/staff/departures/{departure['id']}/check-in"
    csrf = await csrf_for(client, operator, departure["id"])

    html = html_of(
        await post_form(client, operator, url, {"csrf": csrf, "reference": "ZZZZZZZZ"}), 404
    )
    assert field_error(html, "reference") == "Booking not found."
    assert 'aria-invalid="true" aria-describedby="reference-error"' in html
    # Still the departure's page, to try again.
    assert "<h1>Picking Line · " in html
    assert csrf_of(html) == csrf

    # Too short to be a reference: named before anything is looked up.
    html = html_of(await post_form(client, operator, url, {"csrf": csrf, "reference": "AB"}), 400)
    assert field_error(html, "reference")
    assert (await api_manifest(client, operator, departure["id"]))["checked_in"] == 0


async def test_check_in_of_a_confirmed_booking_then_again(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A", "1B"], "Paid Pair")
    await booked(client, departure["id"], ["3A"], "Other Guest")
    url = f"/staff/departures/{departure['id']}/check-in"
    csrf = await csrf_for(client, operator, departure["id"])

    # Typed in lower case at the door.
    response = await post_form(
        client, operator, url, {"csrf": csrf, "reference": reference.lower()}
    )
    html = html_of(response)
    assert done_notice(html) == f"{reference}: checked in 1A, 1B."
    assert "Checked in: 2 of 3" in text_of(html)
    manifest = await api_manifest(client, operator, departure["id"])
    checked = {line["seat_label"]: line["checked_in_at"] for line in manifest["lines"]}
    assert checked["1A"]
    assert checked["1B"]
    assert checked["3A"] is None

    html = html_of(await post_form(client, operator, url, {"csrf": csrf, "reference": reference}))
    assert done_notice(html) == f"{reference} was already checked in (1A, 1B)."
    assert "Checked in: 2 of 3" in text_of(html)
    again = await api_manifest(client, operator, departure["id"])
    assert {line["seat_label"]: line["checked_in_at"] for line in again["lines"]} == checked


async def test_check_in_of_a_booking_on_hold_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    reference = await hold(client, departure["id"], ["1A"], "Held Guest")
    csrf = await csrf_for(client, operator, departure["id"])
    response = await post_form(
        client, operator, f"/staff/departures/{departure['id']}/check-in",
        {"csrf": csrf, "reference": reference},
    )  # fmt: skip
    html = html_of(response, 409)
    assert field_error(html, "reference") == "Only a confirmed booking can board."
    assert 'class="notice done"' not in html
    assert (await api_manifest(client, operator, departure["id"]))["checked_in"] == 0


async def test_operator_staff_can_check_in(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    colleague = await make_operator("zz-bus", role="operator_staff")
    csrf = await csrf_for(client, colleague, departure["id"])
    response = await post_form(
        client, colleague, f"/staff/departures/{departure['id']}/check-in",
        {"csrf": csrf, "reference": reference},
    )  # fmt: skip
    assert done_notice(html_of(response)) == f"{reference}: checked in 1A."
    assert (await api_manifest(client, operator, departure["id"]))["checked_in"] == 1


# ---------------------------------------------------------------- advisories


async def test_an_advisory_without_a_message_names_the_chinese_message_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    csrf = await csrf_for(client, operator, departure["id"])
    response = await post_form(
        client, operator, f"/staff/departures/{departure['id']}/advisory",
        {"csrf": csrf, "kind": "weather", "message.zh_Hans": " ", "message.en": ""},
    )  # fmt: skip
    html = html_of(response, 400)
    field = re.search(
        r'<div class="field invalid">\s*<label for="message-zh_Hans">(.*?)</div>', html, re.S
    )
    assert field, "the Chinese message is not marked"
    assert "Write the message in at least one language." in text_of(field.group(1))
    assert 'href="#message-zh_Hans"' in problems_box(html)
    assert await advisories(client, operator, departure["id"]) == []


async def test_an_advisory_of_an_unknown_kind_or_a_mild_heat_day_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    url = f"/staff/departures/{departure['id']}/advisory"
    csrf = await csrf_for(client, operator, departure["id"])

    response = await post_form(
        client, operator, url, {"csrf": csrf, "kind": "tornado", "message.en": "Storm & hail"}
    )
    html = html_of(response, 400)
    assert 'href="#kind"' in problems_box(html)
    # What was written is kept for the next try.
    assert "Storm &amp; hail</textarea>" in html

    response = await post_form(
        client, operator, url,
        {"csrf": csrf, "kind": "heat", "message.en": "Hot", "max_temperature_c": "30"},
    )  # fmt: skip
    html = html_of(response, 400)
    assert "35 °C" in field_error(html, "max_temperature_c")
    assert await advisories(client, operator, departure["id"]) == []


async def test_an_advisory_goes_to_every_live_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    await hold(client, departure["id"], ["2A"], "Held Guest")
    gone = await hold(client, departure["id"], ["3A"], "Gone Guest")
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == gone).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row),
            BookingStatus.cancelled,
            actor="test",
            reason="guest_cancelled",
        )
    csrf = await csrf_for(client, operator, departure["id"])
    response = await post_form(
        client, operator, f"/staff/departures/{departure['id']}/advisory",
        {"csrf": csrf, "kind": "heat", "message.zh_Hans": "高温天气，请注意防暑。",
         "message.en": "A hot day: stay in the shade.", "max_temperature_c": "37,5"},
    )  # fmt: skip
    html = html_of(response)
    assert done_notice(html) == "The advisory goes to 2 booking contacts."
    queued = await advisories(client, operator, departure["id"])
    assert sorted(item["recipient"] for item in queued) == [
        "held.guest@example.com",
        "paid.guest@example.com",
    ]
    assert {item["locale"] for item in queued} == {"en"}


async def test_an_advisory_needs_an_operator_admin(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    """As through the API (POST .../advisories answers 403 to operator staff)."""
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    colleague = await make_operator("zz-bus", role="operator_staff")
    api = await client.post(
        f"{DEPARTURES}/{departure['id']}/advisories",
        json={"kind": "weather", "message": {"en": "Rain"}},
        headers=colleague.headers,
    )
    assert api.status_code == 403, api.text
    csrf = await csrf_for(client, colleague, departure["id"])
    response = await post_form(
        client, colleague, f"/staff/departures/{departure['id']}/advisory",
        {"csrf": csrf, "kind": "weather", "message.en": "Rain"},
    )  # fmt: skip
    html = html_of(response, 403)
    assert ADMIN_ONLY in text_of(problems_box(html))
    assert await advisories(client, operator, departure["id"]) == []


# ---------------------------------------------------------------- cancelling the departure


async def test_cancelling_needs_the_confirm_box(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    csrf = await csrf_for(client, operator, departure["id"])
    for form in ({"csrf": csrf}, {"csrf": csrf, "confirm": "no"}):
        html = html_of(
            await post_form(client, operator, f"/staff/departures/{departure['id']}/cancel", form),
            400,
        )
        assert "Tick the box to confirm cancelling the departure." in text_of(problems_box(html))
        assert '<div class="choice invalid">' in html
    assert (await api_departure(client, operator, departure["id"]))["status"] == "published"
    assert await booking_status(reference) == "confirmed"


async def test_cancelling_with_the_box_ticked_cancels_and_refunds_every_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    pair = await booked(client, departure["id"], ["1A", "1B"], "Paid Pair")
    held = await hold(client, departure["id"], ["2A"], "Held Guest")
    csrf = await csrf_for(client, operator, departure["id"])
    response = await post_form(
        client, operator, f"/staff/departures/{departure['id']}/cancel",
        {"csrf": csrf, "confirm": "yes"},
    )  # fmt: skip
    html = html_of(response)
    sales = await api_sales(client, operator, departure["id"])
    assert sales["refunds_owed"]["amount"] == 2 * ADULT
    assert done_notice(html) == (
        "The departure is cancelled: 2 bookings cancelled, "
        f"{sales['refunds_owed']['formatted']} to refund."
    )
    assert '<p class="status status-cancelled">cancelled</p>' in html
    # Nothing left to cancel.
    assert f'action="/staff/departures/{departure["id"]}/cancel' not in html
    assert (await api_departure(client, operator, departure["id"]))["status"] == "cancelled"
    assert await booking_status(pair) == "cancelled"
    assert await booking_status(held) == "cancelled"


async def test_cancelling_needs_an_operator_admin(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    colleague = await make_operator("zz-bus", role="operator_staff")
    csrf = await csrf_for(client, colleague, departure["id"])
    response = await post_form(
        client, colleague, f"/staff/departures/{departure['id']}/cancel",
        {"csrf": csrf, "confirm": "yes"},
    )  # fmt: skip
    html = html_of(response, 403)
    assert ADMIN_ONLY in text_of(problems_box(html))
    assert 'class="notice done"' not in html
    assert (await api_departure(client, operator, departure["id"]))["status"] == "published"
    assert await booking_status(reference) == "confirmed"


# ---------------------------------------------------------------- the manifest


async def pickup_departure(client: httpx.AsyncClient, operator: Account) -> tuple[str, list[str]]:
    """A published bus departure with two pick-up stops (an hour and half an hour before):
    (its id, the stop ids in order)."""
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    departs_at = in_days(10)
    payload = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": [
            {"kind": "pickup", "name": name, "at": (departs_at - timedelta(minutes=m)).isoformat()}
            for name, m in (
                ({"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"}, 60),
                ({"zh_Hans": "新郑", "en": "Xinzheng"}, 30),
            )
        ],
    }
    departure = ok(await client.post(DEPARTURES, json=payload, headers=operator.headers), 201)
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/publish", headers=operator.headers))
    stops = ok(await client.get(f"/api/v1/departures/{departure['id']}"))["stops"]
    return departure["id"], [stop["id"] for stop in stops]


async def test_manifest_page_has_a_row_per_passenger_sorted_by_seat_or_pickup(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure_id, stops = await pickup_departure(client, operator)
    late = await hold(client, departure_id, ["1A"], "Late Stop", pickup_stop_id=stops[1])
    await confirm(late)
    early = await hold(
        client, departure_id, ["5A", "5B"], "Early Stop", pickup_stop_id=stops[0],
        passengers=[{"name": "Early One"}, {"name": "Early Two"}],
    )  # fmt: skip
    await confirm(early)
    ok(
        await client.post(
            f"{DEPARTURES}/{departure_id}/check-in",
            json={"reference": late},
            headers=operator.headers,
        )
    )
    path = f"/staff/departures/{departure_id}/manifest"

    html = html_of(await get_page(client, operator, path))
    assert "3 passengers, 1 checked in" in text_of(html)
    rows = manifest_rows(html)
    assert [row[0] for row in rows] == ["1A", "5A", "5B"]
    by_seat = {row[0]: row for row in rows}
    assert by_seat["5A"][1:3] == ["Early One", early]
    assert by_seat["5B"][1] == "Early Two"
    assert by_seat["1A"][3].startswith("Xinzheng")
    assert by_seat["5A"][3].startswith("Zhengzhou East Station")
    assert by_seat["1A"][5].startswith("✓")
    assert "☐" in by_seat["5A"][5]
    assert links(html)["Sort by pick-up stop"] == "?sort=pickup&lang=en"

    html = html_of(await get_page(client, operator, path, sort="pickup"))
    rows = manifest_rows(html)
    assert [row[0] for row in rows] == ["5A", "5B", "1A"]
    assert links(html)["Sort by seat"] == "?sort=seat&lang=en"
    assert links(html)["CSV"] == "?format=csv&sort=pickup&lang=en"


async def test_manifest_as_csv_with_a_bom_and_the_header_row(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure_id, stops = await pickup_departure(client, operator)
    late = await hold(client, departure_id, ["1A"], "Late Stop", pickup_stop_id=stops[1])
    early = await hold(client, departure_id, ["5A"], "Early Stop", pickup_stop_id=stops[0])
    await confirm(early)
    path = f"/staff/departures/{departure_id}/manifest"

    response = await get_page(client, operator, path, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="manifest-{departure_id}.csv"' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == CSV_HEADER
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [(r["Seat"], r["Booking"], r["Status"]) for r in records] == [
        ("1A", late, "on_hold"),
        ("5A", early, "confirmed"),
    ]
    assert records[0]["Pick-up stop"] == "Xinzheng"

    response = await get_page(client, operator, path, format="csv", sort="pickup")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == ["5A", "1A"]

    # Same as the API's CSV.
    api = await client.get(
        f"{DEPARTURES}/{departure_id}/manifest",
        params={"format": "csv"},
        headers={**operator.headers, "Accept-Language": "en"},
    )
    assert api.content.decode("utf-8-sig") == (
        await get_page(client, operator, path, format="csv")
    ).content.decode("utf-8-sig")


# ---------------------------------------------------------------- the audit log


async def test_a_check_in_on_the_page_is_audited_without_the_form_token(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    reference = await booked(client, departure["id"], ["1A"], "Paid Guest")
    csrf = await csrf_for(client, operator, departure["id"])
    path = f"/staff/departures/{departure['id']}/check-in"
    html_of(await post_form(client, operator, path, {"csrf": csrf, "reference": reference}))
    html_of(
        await post_form(client, operator, path, {"csrf": "forged", "reference": reference}), 403
    )

    response = await client.get("/api/v1/operator/audit", headers=operator.headers)
    entries = [entry for entry in ok(response)["items"] if entry["path"] == path]
    assert len(entries) == 2, entries
    by_status = {entry["status_code"]: entry for entry in entries}
    checked_in = by_status[200]
    assert checked_in["method"] == "POST"
    assert checked_in["changes"] == {"csrf": "[redacted]", "reference": reference}
    assert checked_in["route"].startswith("/staff/departures/")
    assert by_status[403]["changes"] == {"csrf": "[redacted]", "reference": reference}
    assert csrf not in response.text
    assert "forged" not in response.text
    # Reading pages is no change; the login form (and its password) is never logged.
    staff_entries = [e for e in ok(response)["items"] if e["path"].startswith("/staff")]
    assert staff_entries == entries
    assert STAFF_PASSWORD not in response.text


# ---------------------------------------------------------------- seats kept for agencies


async def test_sales_and_board_count_the_seats_kept_for_agencies(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    agency = ok(
        await client.post(
            AGENCIES,
            json={
                "name": "Beijing Tours",
                "contact_email": "ops@bj.example",
                "credit_limit": 10_000_000,
            },
            headers=operator.headers,
        ),
        201,
    )
    key = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    allotment = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/allotments",
            json={"departure_id": departure["id"], "seat_class": "standard", "seats": 5},
            headers=operator.headers,
        ),
        201,
    )
    held = ok(
        await client.post(
            "/octo/bookings",
            json={
                "uuid": "agency-hold-1",
                "productId": route["id"],
                "optionId": "standard",
                "availabilityId": departure["id"],
                "unitItems": [{"unitId": "adult"}] * 2,
            },
            headers={"Authorization": f"Bearer {key['key']}", "Octo-Capabilities": "octo/pricing"},
        )
    )
    assert held["status"] == "ON_HOLD"
    await booked(client, departure["id"], ["10C"], "Paid Guest")
    [listed] = ok(
        await client.get(f"{AGENCIES}/{agency['id']}/allotments", headers=operator.headers)
    )
    assert listed["id"] == allotment["id"]
    assert (listed["used"], listed["unused"]) == (2, 3)

    [standard] = (await api_sales(client, operator, departure["id"]))["classes"]
    assert standard == {
        "seat_class": "standard",
        "capacity": 45,
        "sold": 1,
        "held": 2,
        "allotted": listed["unused"],
        "free": 45 - 1 - 2 - 3,
    }
    # The public sees the same seats left.
    public = ok(await client.get(f"/api/v1/departures/{departure['id']}"))
    assert public["seats_left"] == standard["free"]

    row = board_rows(html_of(await get_page(client, operator, "/staff")))[departure["id"]]
    assert f"{load_text(standard)}, 3 kept for agencies" in row
    html = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    assert load_table(html) == {"standard seat": ["1", "2", "3", "39", "45"]}


async def test_an_advisory_form_sent_twice_writes_to_each_passenger_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await bus_departure(client, operator)
    await booked(client, departure["id"], ["1A"], "Paid Guest")
    page = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    found = re.search(r'name="form_key" value="([0-9a-f-]{36})"', page)
    assert found, "the advisory form carries no key"
    form = {
        "csrf": await csrf_for(client, operator, departure["id"]),
        "form_key": found.group(1),
        "kind": "weather",
        "message.en": "Rain in the afternoon: bring a coat.",
    }
    url = f"/staff/departures/{departure['id']}/advisory"
    for _ in range(2):  # a double click, or a reload that sends the form again
        html_of(await post_form(client, operator, url, form), 200)
    assert len(await advisories(client, operator, departure["id"])) == 1
    # A new form is a new advisory.
    fresh = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    key = re.search(r'name="form_key" value="([0-9a-f-]{36})"', fresh)
    assert key
    assert key.group(1) != found.group(1)
    html_of(await post_form(client, operator, url, {**form, "form_key": key.group(1)}), 200)
    assert len(await advisories(client, operator, departure["id"])) == 2
