"""OCTO reservations: an agency holds seats, idempotently by its own booking uuid."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any
from uuid import uuid4

import asyncpg
import msgspec

from app.booking.schemas import MAX_PARTY, BookingCreate
from app.booking.services.agency import (
    agency_booking_lines,
    find_agency_booking,
    record_agency_contact,
    set_reseller_reference,
)
from app.booking.services.hold import create_booking
from app.booking.tables import BookingChannel
from app.partners import octo
from app.partners.octo_bookings.contacts import contact_of, parse_contact
from app.partners.octo_bookings.view import booking_object, find, get
from app.partners.pricing import agency_price_channel
from app.partners.schemas import AgencyPrincipal

DEFAULT_HOLD_MINUTES = 30
MAX_HOLD_MINUTES = 24 * 60


def hold_minutes(body: dict[str, Any]) -> int:
    """The request's `expirationMinutes` (a hold's, or an extension's), checked."""
    minutes = body.get("expirationMinutes", DEFAULT_HOLD_MINUTES)
    if type(minutes) is not int or not 1 <= minutes <= MAX_HOLD_MINUTES:
        raise octo.OctoError("BAD_REQUEST", f"expirationMinutes must be 1 to {MAX_HOLD_MINUTES}")
    return minutes


def _is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, (sqlite3.IntegrityError, asyncpg.exceptions.UniqueViolationError))


def _unit_counts(body: dict[str, Any]) -> dict[str, int]:
    """How many units of each kind the request holds (at least one, at most a party)."""
    items = body.get("unitItems")
    if not isinstance(items, list) or not items:
        raise octo.OctoError("BAD_REQUEST", "unitItems must list at least one unit")
    counts: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            field = f"unitItems[{index}]"
            raise octo.OctoError("BAD_REQUEST", f"{field} must be an object", field=field)
        unit_id = octo.text_field(item, "unitId", where=f"unitItems[{index}].unitId")
        if unit_id not in ("adult", "child", "senior"):
            raise octo.OctoError("INVALID_UNIT_ID", "The unit ID was invalid", unitId=unit_id)
        counts[unit_id] = counts.get(unit_id, 0) + 1
    if sum(counts.values()) > MAX_PARTY:
        raise octo.OctoError("BAD_REQUEST", f"At most {MAX_PARTY} units per booking")
    return counts


def _uuid(body: dict[str, Any]) -> str:
    """The agency's uuid for the booking; one is made when the request has none (OCTO
    makes it optional)."""
    if body.get("uuid") is None:
        return str(uuid4())
    uuid = octo.text_field(body, "uuid")
    if not uuid or len(uuid) > 64:
        raise octo.OctoError("BAD_REQUEST", "uuid must be 1 to 64 characters", field="uuid")
    return uuid


async def hold(
    principal: AgencyPrincipal, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """Hold seats; the same `uuid` again returns the same booking (idempotent)."""
    uuid = _uuid(body)
    existing = await find_agency_booking(principal.agency_id, uuid)
    if existing is not None:
        return await booking_object(existing, capabilities)
    route = await octo.route_of(principal, octo.text_field(body, "productId"))
    option_id = octo.text_field(body, "optionId")
    await octo.check_option(route, option_id)
    departure_id = await octo.departure_of(route, octo.text_field(body, "availabilityId"))
    counts = _unit_counts(body)
    minutes = hold_minutes(body)
    # Checked in full now: nothing is held for a request refused for its contacts.
    contact = parse_contact(body)
    pickup_stop = None
    requested = body.get("pickupRequested", False)
    if not isinstance(requested, bool):
        raise octo.OctoError(
            "BAD_REQUEST", "pickupRequested must be true or false", field="pickupRequested"
        )
    location = octo.text_field(body, "pickupLocationId")
    reseller_reference = octo.text_field(body, "resellerReference")
    if requested or location:
        stop = (await octo.pickups_at([departure_id], location)).get(departure_id)
        if stop is None:
            raise octo.OctoError(
                "BAD_REQUEST",
                "pickupLocationId must be one of this availability's pickup locations",
                pickupLocationId=location,
            )
        pickup_stop = str(stop.id)
    request = msgspec.convert(
        {
            "departure_id": str(departure_id),
            "pickup_stop_id": pickup_stop,
            "counts": [
                {"seat_class": option_id, "passenger_type": kind, "count": n}
                for kind, n in counts.items()
            ],
        },
        BookingCreate,
    )
    price_channel = await agency_price_channel(principal.agency_id, route.id)
    try:
        await create_booking(
            request, channel=BookingChannel.agency, actor=f"agency:{principal.agency_id}",
            hold_minutes=minutes, agency_id=principal.agency_id, partner_uuid=uuid,
            price_channel=price_channel,
        )  # fmt: skip
    except Exception as exc:
        if not _is_unique_violation(exc):
            raise
        # The same uuid sent twice at once: the other request made the booking.
        return await get(principal, uuid, capabilities)
    made = await find(principal, uuid)
    if reseller_reference:
        await set_reseller_reference(made.id, reseller_reference)
    if body.get("contact") is not None or body.get("notes") is not None or contact.names_units:
        lines = await agency_booking_lines(made)
        await record_agency_contact(made.id, contact_of(contact, made, lines, required=False))
    return await get(principal, uuid, capabilities)
