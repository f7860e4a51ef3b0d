"""Signed webhooks to partner agencies, received by a real HTTP server the way an agency
would: booking confirmed / cancelled / expired / changed, departure changed / cancelled,
allotment released; signature checks on the raw bytes; retries with growing pauses on the
frozen clock; 410 Gone disabling the endpoint; secret rotation; the operator's log of
every attempt and its retry button."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from multidict import CIMultiDict
from standardwebhooks import Webhook, WebhookVerificationError

from app.core import clock
from app.partners.tables import WebhookAttempt, WebhookDelivery
from tests.assertions import ok, problem
from tests.conftest import STAFF_PASSWORD, Account, Mailbox
from tests.factories import create_departure, in_days, published_bus_departure
from tests.servers import start_web_endpoint
from workers.jobs import tick

AGENCIES = "/api/v1/operator/agencies"
DEPARTURES = "/api/v1/operator/departures"
CAPABILITIES = {"Octo-Capabilities": "octo/pricing, octo/content"}
# The pauses after each failed attempt, as documented: 1, 5, 15, 60 minutes, 3, 6, 12 hours,
# then every 24 hours.
PAUSES = [timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440, 1440)]


# ---------------------------------------------------------------- the agency's receiver


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """An agency's webhook endpoint: records every request and answers `status`."""

    base: str = ""
    status: int = 200
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"{self.base}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, CIMultiDict(request.headers), body))
        text = "ok" if self.status < 300 else f"receiver says {self.status}"
        return web.Response(status=self.status, text=text)


@pytest.fixture
async def receiver(private_webhook_targets: None) -> AsyncIterator[Receiver]:
    state = Receiver()
    runner, state.base = await start_web_endpoint({"/{tail:.*}": state.handle})
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def _smtp(mailbox: Mailbox) -> None:
    """The tick also mails the tourists: give it a real SMTP server to talk to."""


def signed_with(secret: str, received: Received) -> bool:
    """The agency's check, as in the README: the Standard Webhooks library verifies the
    signature of "<webhook-id>.<webhook-timestamp>.<raw body>" in constant time, and a
    timestamp no older than five minutes."""
    try:
        Webhook(secret).verify(received.body, dict(received.headers))
    except WebhookVerificationError:
        return False
    return True


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The event, after every check an agency makes on it."""
    signature = received.headers["webhook-signature"]
    assert signature.startswith("v1,"), signature
    assert signed_with(secret, received), signature
    assert received.headers["Content-Type"].startswith("application/json")
    event = received.event
    assert set(event) == {"id", "type", "utcCreatedAt", "data"}
    assert received.headers["webhook-id"] == event["id"]
    assert abs(time.time() - int(received.headers["webhook-timestamp"])) <= 300
    assert received.headers["Tourline-Event-Type"] == event["type"]
    assert event["utcCreatedAt"].endswith("Z")
    return event


# ---------------------------------------------------------------- API steps


async def _agency(
    client: httpx.AsyncClient, operator: Account, url: str | None, **terms: Any
) -> tuple[str, dict[str, str]]:
    """An agency on account with a webhook URL: its id and OCTO headers."""
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example",
            "credit_limit": 1_000_000, **terms}  # fmt: skip
    if url is not None:
        body["webhook_url"] = url
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    assert agency["webhook_url"] == url
    assert agency["webhook_disabled_at"] is None
    key = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "test"}, headers=operator.headers
        ),
        201,
    )
    return agency["id"], {"Authorization": f"Bearer {key['key']}", **CAPABILITIES}


async def _secret(client: httpx.AsyncClient, operator: Account, agency_id: str) -> str:
    body = ok(await client.get(f"{AGENCIES}/{agency_id}/webhook-secret", headers=operator.headers))
    return str(body["webhook_secret"])


async def _hold(
    client: httpx.AsyncClient, headers: dict[str, str], departure: dict[str, Any], uuid: str,
    units: tuple[str, ...] = ("adult",), minutes: int = 30,
) -> dict[str, Any]:  # fmt: skip
    body = {"uuid": uuid, "productId": departure["route_id"], "optionId": "standard",
            "availabilityId": departure["id"], "unitItems": [{"unitId": u} for u in units],
            "expirationMinutes": minutes, "resellerReference": f"R-{uuid}"}  # fmt: skip
    held = ok(await client.post("/octo/bookings", json=body, headers=headers))
    assert held["status"] == "ON_HOLD"
    return dict(held)


async def _book(
    client: httpx.AsyncClient, headers: dict[str, str], departure: dict[str, Any], uuid: str,
    units: tuple[str, ...] = ("adult",),
) -> dict[str, Any]:  # fmt: skip
    """A confirmed OCTO booking (the contact's name is Chinese: the body is UTF-8)."""
    await _hold(client, headers, departure, uuid, units)
    contact = {"contact": {"fullName": "王 芳", "emailAddress": f"{uuid}@example.cn"}}
    confirmed = ok(
        await client.post(f"/octo/bookings/{uuid}/confirm", json=contact, headers=headers)
    )
    assert confirmed["status"] == "CONFIRMED"
    return dict(confirmed)


async def _cancel(client: httpx.AsyncClient, headers: dict[str, str], uuid: str) -> None:
    cancelled = ok(
        await client.post(f"/octo/bookings/{uuid}/cancel", json={"reason": "x"}, headers=headers)
    )
    assert cancelled["status"] == "CANCELLED"


async def _events(
    client: httpx.AsyncClient, operator: Account, agency_id: str, status: str | None = None
) -> dict[str, Any]:
    params = {"status": status} if status else {}
    response = await client.get(
        f"{AGENCIES}/{agency_id}/webhooks", params=params, headers=operator.headers
    )
    return dict(ok(response))


async def _retry(
    client: httpx.AsyncClient, operator: Account, agency_id: str, event_id: str
) -> httpx.Response:
    return await client.post(
        f"{AGENCIES}/{agency_id}/webhooks/{event_id}/retry", headers=operator.headers
    )


async def _logged_in_now(client: httpx.AsyncClient, account: Account) -> Account:
    """The same staff member logged in again at the (frozen) clock's time: a token from
    the real present has run out days later."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": STAFF_PASSWORD}
    )
    token = str(ok(response)["access_token"])
    return Account(account.operator_id, account.slug, account.email, token)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    return departure


# ---------------------------------------------------------------- booking events


async def test_a_confirmed_booking_sends_one_signed_booking_confirmed_event(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    assert len(secret) == 64
    await _book(client, headers, departure, "wh-1", ("adult", "child"))
    assert receiver.requests == []  # nothing is sent before the worker runs

    done = await tick()
    assert done["webhooks_delivered"] == 1
    [received] = receiver.requests
    assert received.path == "/hook"
    event = verified(secret, received)
    assert event["type"] == "booking.confirmed"
    booking = event["data"]["booking"]
    assert set(event["data"]) == {"booking"}
    # The booking in the event is the OCTO booking the agency can fetch.
    assert booking == ok(await client.get("/octo/bookings/wh-1", headers=headers))
    assert booking["status"] == "CONFIRMED"
    assert booking["uuid"] == "wh-1"
    assert booking["resellerReference"] == "R-wh-1"
    assert booking["contact"]["fullName"] == "王 芳"
    assert "王 芳".encode() in received.body  # raw UTF-8, signed as sent
    assert [u["unitId"] for u in booking["unitItems"]] == ["adult", "child"]

    # Running the worker again sends nothing new, and the event is logged as delivered.
    assert (await tick())["webhooks_delivered"] == 0
    assert len(receiver.requests) == 1
    page = await _events(client, operator, agency_id)
    assert page["total"] == 1
    [row] = page["items"]
    assert row["id"] == event["id"]
    assert row["event_type"] == "booking.confirmed"
    assert row["status"] == "delivered"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] is None
    assert row["delivered_at"] is not None
    assert row["body"].encode() == received.body
    [attempt] = row["attempt_log"]
    assert attempt["status_code"] == 200
    assert attempt["url"] == receiver.url()
    assert attempt["error"] == ""


async def test_cancellation_and_expiry_send_their_events(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    await _book(client, headers, departure, "to-cancel")
    held = await _hold(client, headers, departure, "to-expire", minutes=5)
    await tick()
    assert [verified(secret, r)["type"] for r in receiver.requests] == ["booking.confirmed"]

    await _cancel(client, headers, "to-cancel")
    await tick()
    assert len(receiver.requests) == 2
    cancelled = verified(secret, receiver.requests[1])
    assert cancelled["type"] == "booking.cancelled"
    booking = cancelled["data"]["booking"]
    assert (booking["uuid"], booking["status"]) == ("to-cancel", "CANCELLED")
    assert booking["cancellation"]["refund"] == "FULL"
    assert booking["cancellable"] is False

    # The hold runs out: the worker expires it and tells the agency in the same tick.
    with clock.frozen(_moment(held["utcExpiresAt"]) + timedelta(seconds=1)):
        done = await tick()
    assert done["expired"] == 1
    assert len(receiver.requests) == 3
    expired = verified(secret, receiver.requests[2])
    assert expired["type"] == "booking.expired"
    assert expired["data"]["booking"]["uuid"] == "to-expire"
    assert expired["data"]["booking"]["status"] == "EXPIRED"
    assert expired["data"]["booking"]["utcExpiresAt"] is None
    # Three distinct events, each once.
    assert len({r.event["id"] for r in receiver.requests}) == 3
    assert (await tick())["webhooks_delivered"] == 0
    assert len(receiver.requests) == 3
    page = await _events(client, operator, agency_id, status="delivered")
    assert page["total"] == 3


async def test_check_in_by_the_operator_sends_booking_changed(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    booked = await _book(client, headers, departure, "boarding", ("adult", "adult"))
    await tick()
    assert len(receiver.requests) == 1

    checked = ok(
        await client.post(
            f"{DEPARTURES}/{departure['id']}/check-in",
            json={"reference": booked["supplierReference"]},
            headers=operator.headers,
        )
    )
    assert len(checked["checked_in"]) == 2
    await tick()
    assert len(receiver.requests) == 2
    event = verified(secret, receiver.requests[1])
    assert event["type"] == "booking.changed"
    booking = event["data"]["booking"]
    assert booking["uuid"] == "boarding"
    assert booking["status"] == "CONFIRMED"
    assert all(item["utcRedeemedAt"] is not None for item in booking["unitItems"])
    assert len(booking["unitItems"]) == 2


# ---------------------------------------------------------------- departure events


async def test_departure_changed_and_cancelled_reach_only_agencies_booked_on_it(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    route, vehicle, departure = await published_bus_departure(client, operator.headers)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    booked_id, booked = await _agency(client, operator, receiver.url("/booked"))
    elsewhere_id, elsewhere = await _agency(client, operator, receiver.url("/elsewhere"))
    _idle_id, _idle = await _agency(client, operator, receiver.url("/idle"))
    await _book(client, booked, departure, "on-it-1")
    await _book(client, booked, departure, "on-it-2")
    await _book(client, elsewhere, other, "other-day")
    await tick()
    assert len(receiver.to("/booked")) == 2
    assert len(receiver.to("/elsewhere")) == 1
    receiver.requests.clear()

    # The operator moves the departure by an hour.
    departs_at = _moment(departure["departs_at"]) + timedelta(hours=1)
    returns_at = _moment(departure["returns_at"]) + timedelta(hours=1)
    ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"departs_at": departs_at.isoformat(), "returns_at": returns_at.isoformat()},
            headers=operator.headers,
        )
    )
    await tick()
    assert [r.path for r in receiver.requests] == ["/booked"]
    event = verified(await _secret(client, operator, booked_id), receiver.requests[0])
    assert event["type"] == "departure.changed"
    data = event["data"]
    assert data["availabilityId"] == departure["id"]
    assert data["productId"] == route["id"]
    assert data["bookingUuids"] == ["on-it-1", "on-it-2"]
    assert sorted(data["changes"]) == ["departs_at", "returns_at"]
    assert data["status"] == "PUBLISHED"
    assert _moment(data["localDateTimeStart"]) == departs_at
    assert _moment(data["localDateTimeEnd"]) == returns_at
    receiver.requests.clear()

    # The operator cancels it: the agency hears of the departure and of each booking.
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    await tick()
    assert {r.path for r in receiver.requests} == {"/booked"}
    secret = await _secret(client, operator, booked_id)
    events = [verified(secret, r) for r in receiver.requests]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in events:
        by_type.setdefault(item["type"], []).append(item)
    assert sorted(by_type) == ["booking.cancelled", "departure.cancelled"]
    [cancelled] = by_type["departure.cancelled"]
    assert cancelled["data"]["availabilityId"] == departure["id"]
    assert cancelled["data"]["status"] == "CANCELLED"
    assert cancelled["data"]["bookingUuids"] == ["on-it-1", "on-it-2"]
    assert sorted(e["data"]["booking"]["uuid"] for e in by_type["booking.cancelled"]) == [
        "on-it-1",
        "on-it-2",
    ]
    assert all(e["data"]["booking"]["status"] == "CANCELLED" for e in by_type["booking.cancelled"])
    # The other agency's log has only its own booking's event.
    page = await _events(client, operator, elsewhere_id)
    assert [item["event_type"] for item in page["items"]] == ["booking.confirmed"]


async def test_departure_changed_skips_an_agency_whose_booking_was_cancelled_before(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    _live_id, live = await _agency(client, operator, receiver.url("/live"))
    gone_id, gone = await _agency(client, operator, receiver.url("/gone"))
    await _book(client, live, departure, "still-going")
    await _book(client, gone, departure, "not-going")
    await _cancel(client, gone, "not-going")
    await tick()
    receiver.requests.clear()

    departs_at = _moment(departure["departs_at"]) + timedelta(hours=1)
    returns_at = _moment(departure["returns_at"]) + timedelta(hours=1)
    ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"departs_at": departs_at.isoformat(), "returns_at": returns_at.isoformat()},
            headers=operator.headers,
        )
    )
    await tick()
    [changed] = receiver.to("/live")
    assert changed.event["type"] == "departure.changed"
    assert changed.event["data"]["bookingUuids"] == ["still-going"]
    # The agency has no booking on the departure any more: a change is none of its business.
    assert [r.event["data"] for r in receiver.to("/gone")] == []
    page = await _events(client, operator, gone_id)
    assert sorted(i["event_type"] for i in page["items"]) == [
        "booking.cancelled",
        "booking.confirmed",
    ]


# ---------------------------------------------------------------- allotments


async def test_an_allotment_release_sends_allotment_released(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    release_at = clock.now() + timedelta(hours=2)
    allotment = ok(
        await client.post(
            f"{AGENCIES}/{agency_id}/allotments",
            json={"departure_id": departure["id"], "seat_class": "standard", "seats": 4,
                  "release_at": release_at.isoformat()},
            headers=operator.headers,
        ),
        201,
    )  # fmt: skip
    await _book(client, headers, departure, "in-allotment")
    await tick()
    assert [r.event["type"] for r in receiver.requests] == ["booking.confirmed"]

    with clock.frozen(release_at - timedelta(seconds=1)):
        assert (await tick())["allotments_released"] == 0
    assert len(receiver.requests) == 1
    with clock.frozen(release_at):
        assert (await tick())["allotments_released"] == 1
        assert (await tick())["allotments_released"] == 0
    assert len(receiver.requests) == 2
    event = verified(secret, receiver.requests[1])
    assert event["type"] == "allotment.released"
    assert event["data"] == {
        "allotmentId": allotment["id"],
        "availabilityId": departure["id"],
        "optionId": "standard",
        "seats": 4,
        "used": 1,
        "released": 3,
    }


# ---------------------------------------------------------------- retries


async def test_failures_are_retried_after_growing_pauses_then_fail_after_three_days(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    await _book(client, headers, departure, "flaky")
    receiver.status = 500
    start = clock.now() + timedelta(seconds=5)
    with clock.frozen(start):
        assert (await tick())["webhooks_delivered"] == 0
        assert len(receiver.requests) == 1
        [row] = (await _events(client, operator, agency_id, status="pending"))["items"]
        assert row["attempts"] == 1
        assert row["last_status_code"] == 500
        assert row["last_error"] == "HTTP 500"  # the answer's body is never kept
        assert _moment(row["next_attempt_at"]) == start + PAUSES[0]
        # Still being delivered: the operator cannot push it.
        problem(await _retry(client, operator, agency_id, row["id"]), 409, "webhook_pending")

        expected_at = [start]
        for attempt, pause in enumerate(PAUSES, start=2):
            # Just before the pause is over nothing is sent; at its end the next try goes.
            clock.advance(pause - timedelta(seconds=1))
            await tick()
            assert len(receiver.requests) == attempt - 1, f"attempt {attempt} came early"
            clock.advance(timedelta(seconds=1))
            await tick()
            assert len(receiver.requests) == attempt, f"attempt {attempt} did not come"
            expected_at.append(clock.now())

        # The next pause would end more than three days after the event: it has failed.
        assert clock.now() - start < timedelta(days=3)
        assert clock.now() + PAUSES[-1] - start > timedelta(days=3)
        staff = await _logged_in_now(client, operator)
        [row] = (await _events(client, staff, agency_id, status="failed"))["items"]
        assert row["attempts"] == 10
        assert row["next_attempt_at"] is None
        assert row["delivered_at"] is None
        assert [a["status_code"] for a in row["attempt_log"]] == [500] * 10
        assert [_moment(a["at"]) for a in row["attempt_log"]] == expected_at
        assert await WebhookAttempt.count().where(WebhookAttempt.delivery == row["id"]) == 10
        assert (await _events(client, staff, agency_id, status="pending"))["total"] == 0
        clock.advance(timedelta(days=2))
        await tick()
        assert len(receiver.requests) == 10

    # Every retry was the same event with the same bytes, each freshly signed.
    assert {r.body for r in receiver.requests} == {row["body"].encode()}
    assert {r.headers["webhook-id"] for r in receiver.requests} == {row["id"]}
    assert all(signed_with(secret, r) for r in receiver.requests)


async def test_a_connection_error_is_a_failed_attempt(
    client: httpx.AsyncClient, operator: Account, private_webhook_targets: None
) -> None:
    departure = await _departure(client, operator)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    agency_id, headers = await _agency(client, operator, url)
    await _book(client, headers, departure, "unreachable")
    start = clock.now() + timedelta(seconds=5)
    with clock.frozen(start):
        assert (await tick())["webhooks_delivered"] == 0
    [row] = (await _events(client, operator, agency_id, status="pending"))["items"]
    assert row["attempts"] == 1
    assert row["last_status_code"] is None
    assert row["last_error"].startswith("ConnectError")
    assert _moment(row["next_attempt_at"]) == start + PAUSES[0]
    [attempt] = row["attempt_log"]
    assert (attempt["url"], attempt["status_code"]) == (url, None)
    assert attempt["error"] == row["last_error"]


# ---------------------------------------------------------------- 410 Gone


async def test_410_gone_disables_the_endpoint_until_the_url_is_set_again(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    await _book(client, headers, departure, "first")
    await _book(client, headers, departure, "second")
    receiver.status = 410
    await tick()
    # The first event is answered 410; the second, still pending, is not even tried.
    assert len(receiver.requests) == 1
    agency = ok(await client.get(f"{AGENCIES}/{agency_id}", headers=operator.headers))
    assert agency["webhook_disabled_at"] is not None
    assert agency["webhook_url"] == receiver.url()
    page = await _events(client, operator, agency_id, status="disabled")
    assert page["total"] == 2
    tried = next(item for item in page["items"] if item["attempts"] == 1)
    assert tried["id"] == receiver.requests[0].event["id"]
    assert tried["last_status_code"] == 410
    assert [a["status_code"] for a in tried["attempt_log"]] == [410]
    untried = next(item for item in page["items"] if item["id"] != tried["id"])
    assert (untried["attempts"], untried["attempt_log"]) == (0, [])

    # A later event is recorded as disabled and not sent, even with the endpoint back.
    receiver.status = 200
    await _cancel(client, headers, "first")
    await tick()
    assert len(receiver.requests) == 1
    page = await _events(client, operator, agency_id, status="disabled")
    assert page["total"] == 3
    [later] = [i for i in page["items"] if i["event_type"] == "booking.cancelled"]
    assert (later["attempts"], later["attempt_log"]) == (0, [])

    # The operator sets the URL again: new events go out; the disabled ones stay put.
    agency = ok(
        await client.patch(
            f"{AGENCIES}/{agency_id}", json={"webhook_url": receiver.url()},
            headers=operator.headers,
        )
    )  # fmt: skip
    assert agency["webhook_disabled_at"] is None
    await _cancel(client, headers, "second")
    await tick()
    assert len(receiver.requests) == 2
    event = verified(secret, receiver.requests[1])
    assert event["type"] == "booking.cancelled"
    assert event["data"]["booking"]["uuid"] == "second"
    assert (await _events(client, operator, agency_id, status="disabled"))["total"] == 3
    assert (await _events(client, operator, agency_id, status="delivered"))["total"] == 1

    # A disabled event can be sent again by hand.
    response = ok(await _retry(client, operator, agency_id, untried["id"]))
    assert response["status"] == "pending"
    await tick()
    assert len(receiver.requests) == 3
    assert verified(secret, receiver.requests[2])["id"] == untried["id"]
    assert (await _events(client, operator, agency_id, status="delivered"))["total"] == 2


# ---------------------------------------------------------------- secret rotation


async def test_rotating_the_secret_changes_the_signature(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    old = await _secret(client, operator, agency_id)
    await _book(client, headers, departure, "rotating")
    await tick()
    [before] = receiver.requests
    assert signed_with(old, before)

    rotated = ok(
        await client.post(f"{AGENCIES}/{agency_id}/webhook-secret/rotate", headers=operator.headers)
    )
    new = rotated["webhook_secret"]
    assert new != old
    assert len(new) == 64
    assert await _secret(client, operator, agency_id) == new

    await _cancel(client, headers, "rotating")
    await tick()
    [_before, after] = receiver.requests
    assert verified(new, after)["type"] == "booking.cancelled"
    assert not signed_with(old, after)
    assert not signed_with(new, before)
    # A tampered body fails the check.
    tampered = Received(after.path, after.headers, after.body.replace(b"CANCELLED", b"CONFIRMED"))
    assert tampered.body != after.body
    assert not signed_with(new, tampered)


# ---------------------------------------------------------------- operator view


async def test_the_operator_log_shows_attempts_and_is_private_to_the_operator(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver, make_operator: Any
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    await _book(client, headers, departure, "logged-1")
    await _book(client, headers, departure, "logged-2")
    receiver.status = 503
    start = clock.now() + timedelta(seconds=5)
    with clock.frozen(start):
        await tick()
        receiver.status = 200
        clock.advance(PAUSES[0])
        await tick()
    assert len(receiver.requests) == 4

    page = await _events(client, operator, agency_id)
    assert page["total"] == 2
    assert (page["page"], len(page["items"])) == (1, 2)
    for item in page["items"]:
        assert item["status"] == "delivered"
        assert item["attempts"] == 2
        assert [a["status_code"] for a in item["attempt_log"]] == [503, 200]
        assert [a["error"] for a in item["attempt_log"]] == ["HTTP 503", ""]
        assert [_moment(a["at"]) for a in item["attempt_log"]] == [start, start + PAUSES[0]]
        assert all(a["url"] == receiver.url() for a in item["attempt_log"])
        assert all(a["duration_ms"] >= 0 for a in item["attempt_log"])
        assert _moment(item["delivered_at"]) == start + PAUSES[0]
    uuids = sorted(json.loads(i["body"])["data"]["booking"]["uuid"] for i in page["items"])
    assert uuids == ["logged-1", "logged-2"]
    rows = await WebhookDelivery.count().where(WebhookDelivery.agency == agency_id)
    assert rows == 2
    assert await WebhookAttempt.count() == 4

    # Paged.
    first = ok(
        await client.get(f"{AGENCIES}/{agency_id}/webhooks?page_size=1", headers=operator.headers)
    )
    second = ok(
        await client.get(
            f"{AGENCIES}/{agency_id}/webhooks?page_size=1&page=2", headers=operator.headers
        )
    )
    assert (first["total"], second["total"]) == (2, 2)
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {i["id"] for i in page["items"]}
    assert (await _events(client, operator, agency_id, status="failed"))["total"] == 0
    problem(
        await client.get(f"{AGENCIES}/{agency_id}/webhooks?status=lost", headers=operator.headers),
        400,
    )

    # Another operator sees none of it, and cannot push it.
    stranger = await make_operator("other-bus")
    event_id = page["items"][0]["id"]
    problem(
        await client.get(f"{AGENCIES}/{agency_id}/webhooks", headers=stranger.headers),
        404,
        "agency_not_found",
    )
    problem(
        await client.post(
            f"{AGENCIES}/{agency_id}/webhooks/{event_id}/retry", headers=stranger.headers
        ),
        404,
        "agency_not_found",
    )
    problem(
        await client.get(f"{AGENCIES}/{agency_id}/webhook-secret", headers=stranger.headers),
        404,
        "agency_not_found",
    )


async def test_the_retry_endpoint_sends_a_failed_event_again(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    await _book(client, headers, departure, "retried")
    receiver.status = 500
    start = clock.now() + timedelta(seconds=5)
    with clock.frozen(start):
        await tick()
        for pause in PAUSES:
            clock.advance(pause)
            await tick()
        clock.advance(timedelta(days=1))
        staff = await _logged_in_now(client, operator)
        [failed] = (await _events(client, staff, agency_id, status="failed"))["items"]
        assert failed["attempts"] == 10

        problem(
            await _retry(client, staff, agency_id, "00000000-0000-0000-0000-000000000000"),
            404,
            "webhook_not_found",
        )
        again = ok(await _retry(client, staff, agency_id, failed["id"]))
        assert again["id"] == failed["id"]
        assert again["status"] == "pending"
        assert _moment(again["next_attempt_at"]) == clock.now()
        assert len(again["attempt_log"]) == 10

        # Failing again, it is retried on the schedule (the window starts over).
        await tick()
        assert len(receiver.requests) == 11
        [row] = (await _events(client, staff, agency_id, status="pending"))["items"]
        assert row["attempts"] == 11
        assert _moment(row["next_attempt_at"]) == clock.now() + PAUSES[-1]
        problem(await _retry(client, staff, agency_id, row["id"]), 409, "webhook_pending")

        receiver.status = 200
        clock.advance(PAUSES[-1])
        assert (await tick())["webhooks_delivered"] == 1
    assert len(receiver.requests) == 12
    assert verified(secret, receiver.requests[-1])["id"] == failed["id"]
    [row] = (await _events(client, operator, agency_id, status="delivered"))["items"]
    assert row["attempts"] == 12
    problem(await _retry(client, operator, agency_id, row["id"]), 409, "webhook_delivered")
    # An event of another agency is not this agency's.
    other_id, _other = await _agency(client, operator, receiver.url("/other"))
    problem(await _retry(client, operator, other_id, row["id"]), 404, "webhook_not_found")


async def test_a_refused_event_keeps_its_turn_before_the_next_event_of_its_booking(
    client: httpx.AsyncClient, operator: Account, receiver: Receiver
) -> None:
    """The agency refuses "confirmed" and the booking is cancelled meanwhile: "cancelled"
    waits for "confirmed" (the agency ends with the booking cancelled, having seen
    every event in order); another booking's events do not wait."""
    departure = await _departure(client, operator)
    agency_id, headers = await _agency(client, operator, receiver.url())
    secret = await _secret(client, operator, agency_id)
    start = clock.now()
    with clock.frozen(start):
        await _book(client, headers, departure, "in-order")
        receiver.status = 500
        assert (await tick())["webhooks_delivered"] == 0
        receiver.status = 200
        await _cancel(client, headers, "in-order")
        await _book(client, headers, departure, "other")
        assert (await tick())["webhooks_delivered"] == 1
    seen = [(r.event["type"], r.event["data"]["booking"]["uuid"]) for r in receiver.requests]
    assert seen == [("booking.confirmed", "in-order"), ("booking.confirmed", "other")]

    with clock.frozen(start + PAUSES[0]):
        assert (await tick())["webhooks_delivered"] == 2
    events = [verified(secret, r) for r in receiver.requests[2:]]
    assert [(e["type"], e["data"]["booking"]["status"]) for e in events] == [
        ("booking.confirmed", "CONFIRMED"),
        ("booking.cancelled", "CANCELLED"),
    ]
    assert {e["data"]["booking"]["uuid"] for e in events} == {"in-order"}
    assert (await _events(client, operator, agency_id, status="delivered"))["total"] == 3
