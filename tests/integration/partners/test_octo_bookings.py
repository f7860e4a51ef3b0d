"""The OCTO booking flow an agency walks: products, availability, hold, extend, confirm,
get, search, cancel; idempotent holds; OCTO errors; credit limit; isolation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.booking.tables import Booking
from app.core import clock
from app.payments.tables import Payment, Refund
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    published_bus_departure,
    set_route_fares,
)

CAPABILITIES = {"Octo-Capabilities": "octo/pricing, octo/content"}


async def _agency(client: httpx.AsyncClient, operator: Account, **terms: Any) -> dict[str, str]:
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example", **terms}
    response = await client.post("/api/v1/operator/agencies", json=body, headers=operator.headers)
    assert response.status_code == 201, response.text
    agency_id = response.json()["id"]
    response = await client.post(
        f"/api/v1/operator/agencies/{agency_id}/keys",
        json={"name": "test"},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}", **CAPABILITIES}


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _octo_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["errorMessage"]
    return dict(body)


REQUIRED_BOOKING_FIELDS = {
    "id", "uuid", "testMode", "resellerReference", "supplierReference", "status",
    "utcCreatedAt", "utcUpdatedAt", "utcExpiresAt", "utcRedeemedAt", "utcConfirmedAt",
    "productId", "optionId", "cancellable", "cancellation", "freesale", "availabilityId",
    "availability", "contact", "notes", "deliveryMethods", "voucher", "unitItems",
}  # fmt: skip


async def _walk(
    client: httpx.AsyncClient, headers: dict[str, str], product_id: str, option_id: str,
    departure_id: str, units: list[str],
) -> None:  # fmt: skip
    products = _ok(await client.get("/octo/products", headers=headers))
    assert product_id in [p["id"] for p in products]
    day = _ok(await client.get(f"/octo/products/{product_id}", headers=headers))
    assert option_id in [o["id"] for o in day["options"]]
    slots = _ok(
        await client.post(
            "/octo/availability",
            json={
                "productId": product_id,
                "optionId": option_id,
                "availabilityIds": [departure_id],
            },
            headers=headers,
        )
    )
    assert [s["id"] for s in slots] == [departure_id]
    vacancies = slots[0]["vacancies"]

    hold_body = {
        "uuid": "agency-booking-1",
        "productId": product_id,
        "optionId": option_id,
        "availabilityId": departure_id,
        "unitItems": [{"unitId": unit} for unit in units],
        "expirationMinutes": 45,
        "resellerReference": "BJT-0001",
    }
    held = _ok(await client.post("/octo/bookings", json=hold_body, headers=headers))
    assert held.keys() >= REQUIRED_BOOKING_FIELDS
    assert held["status"] == "ON_HOLD"
    assert held["uuid"] == "agency-booking-1"
    assert held["utcExpiresAt"] is not None
    assert held["utcConfirmedAt"] is None
    assert held["cancellation"] is None
    assert len(held["unitItems"]) == len(units)
    expires = datetime.fromisoformat(held["utcExpiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=44) < expires - clock.now() <= timedelta(minutes=45)
    # The same uuid again is the same booking, not a second one.
    again = _ok(await client.post("/octo/bookings", json=hold_body, headers=headers))
    assert again["supplierReference"] == held["supplierReference"]
    assert await Booking.count().where(Booking.partner_uuid == "agency-booking-1").run() == 1
    slots = _ok(
        await client.post(
            "/octo/availability",
            json={
                "productId": product_id,
                "optionId": option_id,
                "availabilityIds": [departure_id],
            },
            headers=headers,
        )
    )
    assert slots[0]["vacancies"] == vacancies - len(units)

    extended = _ok(
        await client.post(
            "/octo/bookings/agency-booking-1/extend",
            json={"expirationMinutes": 90},
            headers=headers,
        )
    )
    assert extended["utcExpiresAt"] > held["utcExpiresAt"]

    confirmed = _ok(
        await client.post(
            "/octo/bookings/agency-booking-1/confirm",
            json={
                "contact": {
                    "fullName": "Wang Fang",
                    "emailAddress": "wang@example.cn",
                    "phoneNumber": "+86 139 0000 0000",
                    "locales": ["zh-CN"],
                }
            },
            headers=headers,
        )
    )
    assert confirmed["status"] == "CONFIRMED"
    assert confirmed["utcConfirmedAt"] is not None
    assert confirmed["utcExpiresAt"] is None
    assert confirmed["contact"]["emailAddress"] == "wang@example.cn"
    booking = await Booking.select().where(Booking.partner_uuid == "agency-booking-1").first().run()
    assert booking is not None
    payments = await Payment.select().where(Payment.booking == booking["id"]).run()
    assert [(p["provider"], p["status"], p["amount"]) for p in payments] == [
        ("on_account", "succeeded", booking["total_amount"])
    ]

    fetched = _ok(await client.get("/octo/bookings/agency-booking-1", headers=headers))
    assert fetched["status"] == "CONFIRMED"
    _octo_error(await client.get("/octo/bookings", headers=headers), "BAD_REQUEST")
    found = _ok(await client.get("/octo/bookings?resellerReference=BJT-0001", headers=headers))
    assert [b["uuid"] for b in found] == ["agency-booking-1"]
    found = _ok(
        await client.get(
            f"/octo/bookings?supplierReference={held['supplierReference']}", headers=headers
        )
    )
    assert len(found) == 1

    cancelled = _ok(
        await client.post(
            "/octo/bookings/agency-booking-1/cancel", json={"reason": "client"}, headers=headers
        )
    )
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellation"]["refund"] == "FULL"
    assert cancelled["cancellable"] is False
    refunds = await Refund.select().where(Refund.booking == booking["id"]).run()
    assert [(r["provider"], r["status"], r["amount"]) for r in refunds] == [
        ("on_account", "succeeded", booking["total_amount"])
    ]
    slots = _ok(
        await client.post(
            "/octo/availability",
            json={
                "productId": product_id,
                "optionId": option_id,
                "availabilityIds": [departure_id],
            },
            headers=headers,
        )
    )
    assert slots[0]["vacancies"] == vacancies


async def test_the_whole_octo_flow_on_a_bus_line(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await _agency(client, operator, credit_limit=1_000_000, commission_bp=1000)
    await _walk(
        client, headers, route["id"], "standard", departure["id"], ["adult", "adult", "child"]
    )


async def test_the_whole_octo_flow_on_the_train(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(
        client, operator.headers, slug="octo-train", kind="train", duration_days=3
    )
    vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    departure = await create_departure(client, operator.headers, route, vehicle)
    headers = await _agency(client, operator, credit_limit=1_000_000)
    await _walk(client, headers, route["id"], "soft_sleeper", departure["id"], ["adult", "child"])


async def test_octo_booking_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await _agency(client, operator, credit_limit=1_000_000)
    base = {"uuid": "e-1", "productId": route["id"], "optionId": "standard",
            "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}]}  # fmt: skip
    _octo_error(
        await client.post("/octo/bookings", json={**base, "productId": "x"}, headers=headers),
        "INVALID_PRODUCT_ID",
    )
    _octo_error(
        await client.post("/octo/bookings", json={**base, "optionId": "x"}, headers=headers),
        "INVALID_OPTION_ID",
    )
    _octo_error(
        await client.post("/octo/bookings", json={**base, "availabilityId": "x"}, headers=headers),
        "INVALID_AVAILABILITY_ID",
    )
    _octo_error(
        await client.post(
            "/octo/bookings", json={**base, "unitItems": [{"unitId": "infant"}]}, headers=headers
        ),
        "INVALID_UNIT_ID",
    )
    _octo_error(
        await client.post("/octo/bookings", json={**base, "uuid": ""}, headers=headers),
        "BAD_REQUEST",
    )
    _octo_error(
        await client.post("/octo/bookings", json={**base, "unitItems": []}, headers=headers),
        "BAD_REQUEST",
    )
    _octo_error(
        await client.get("/octo/bookings/unknown-uuid", headers=headers), "INVALID_BOOKING_UUID"
    )
    for action in ("confirm", "cancel", "extend"):
        _octo_error(
            await client.post(f"/octo/bookings/unknown-uuid/{action}", json={}, headers=headers),
            "INVALID_BOOKING_UUID",
        )
    _octo_error(await client.get("/octo/bookings/x", headers={}), "UNAUTHORIZED")
    # More seats than there are is a clear bad request, and nothing is held.
    many = {**base, "unitItems": [{"unitId": "adult"}] * 11}
    _octo_error(await client.post("/octo/bookings", json=many, headers=headers), "BAD_REQUEST")
    assert await Booking.count().where(Booking.partner_uuid == "e-1").run() == 0


async def test_confirm_beyond_the_credit_limit_fails_cleanly(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await _agency(client, operator, credit_limit=10_000)  # fares: 6800 per adult
    contact = {"contact": {"fullName": "Li Lei", "emailAddress": "li@example.cn"}}
    for uuid in ("c-1", "c-2"):
        body = {"uuid": uuid, "productId": route["id"], "optionId": "standard",
                "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}]}  # fmt: skip
        _ok(await client.post("/octo/bookings", json=body, headers=headers))
    assert (
        _ok(await client.post("/octo/bookings/c-1/confirm", json=contact, headers=headers))[
            "status"
        ]
        == "CONFIRMED"
    )
    body = _octo_error(
        await client.post("/octo/bookings/c-2/confirm", json=contact, headers=headers),
        "UNPROCESSABLE_ENTITY",
    )
    assert "credit limit" in body["errorMessage"]
    assert _ok(await client.get("/octo/bookings/c-2", headers=headers))["status"] == "ON_HOLD"


async def test_an_agency_sees_only_its_own_bookings(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    first = await _agency(client, operator, credit_limit=100_000)
    second = await _agency(client, operator, credit_limit=100_000)
    body = {"uuid": "shared-uuid", "productId": route["id"], "optionId": "standard",
            "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}]}  # fmt: skip
    mine = _ok(await client.post("/octo/bookings", json=body, headers=first))
    _octo_error(
        await client.get("/octo/bookings/shared-uuid", headers=second), "INVALID_BOOKING_UUID"
    )
    _octo_error(
        await client.post("/octo/bookings/shared-uuid/cancel", json={}, headers=second),
        "INVALID_BOOKING_UUID",
    )
    # The same uuid is the other agency's own new booking, not the first one's.
    theirs = _ok(await client.post("/octo/bookings", json=body, headers=second))
    assert theirs["supplierReference"] != mine["supplierReference"]


async def test_cancel_after_the_cutoff_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await _agency(client, operator, credit_limit=100_000, cancellation_cutoff_hours=48)
    body = {"uuid": "late", "productId": route["id"], "optionId": "standard",
            "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}]}  # fmt: skip
    _ok(await client.post("/octo/bookings", json=body, headers=headers))
    contact = {"contact": {"fullName": "Li Lei", "emailAddress": "li@example.cn"}}
    _ok(await client.post("/octo/bookings/late/confirm", json=contact, headers=headers))
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        body = _octo_error(
            await client.post("/octo/bookings/late/cancel", json={}, headers=headers),
            "UNPROCESSABLE_ENTITY",
        )
        assert "cut-off" in body["errorMessage"]
    assert _ok(await client.get("/octo/bookings/late", headers=headers))["status"] == "CONFIRMED"
