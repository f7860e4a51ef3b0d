"""Webhook events for agencies, recorded once per natural key in the transaction that
causes them: booking confirmed / cancelled / expired / changed, departure changed /
cancelled, allotment released. The JSON body is fixed when the event is recorded, so
every retry sends the same bytes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from app.booking.services.agency import agency_booking
from app.booking.services.state import LIVE_STATUSES
from app.booking.tables import Booking, BookingEvent, BookingStatus
from app.catalogue.services.common import in_zone
from app.catalogue.tables import Departure
from app.core import clock
from app.partners.octo import utc_text
from app.partners.octo_bookings.view import booking_object
from app.partners.tables import Agency, WebhookDelivery, WebhookStatus


async def queue_event(
    agency_id: UUID,
    event_type: str,
    key: str,
    data: dict[str, Any],
    subject: str | None = None,
) -> bool:
    """Record an event for an agency, once per `key`; True if this call recorded it.
    Nothing is recorded for an agency without a webhook URL; an event for a disabled
    endpoint is recorded as `disabled` (visible to the operator, not sent). Events with
    the same `subject` reach the agency in the order they were recorded."""
    agency = (
        await Agency.select(Agency.webhook_url, Agency.webhook_disabled_at)
        .where(Agency.id == agency_id)
        .first()
        .run()
    )
    if agency is None or not agency["webhook_url"]:
        return False
    now = clock.now()
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": event_type, "utcCreatedAt": utc_text(now), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    disabled = agency["webhook_disabled_at"] is not None
    queued_at = now
    if subject is not None:
        # Its place in the subject's order: after every earlier event of it, even one
        # recorded at the same instant (a frozen or coarse clock).
        latest = (
            await WebhookDelivery.select(WebhookDelivery.created_at)
            .where((WebhookDelivery.agency == agency_id) & (WebhookDelivery.subject == subject))
            .order_by(WebhookDelivery.created_at, ascending=False)
            .first()
            .run()
        )
        if latest is not None and latest["created_at"] >= now:
            queued_at = latest["created_at"] + timedelta(microseconds=1)
    created = await (
        WebhookDelivery.insert(
            WebhookDelivery(
                id=event_id,
                agency=agency_id,
                key=key,
                event_type=event_type,
                body=body,
                status=(WebhookStatus.disabled if disabled else WebhookStatus.pending).value,
                next_attempt_at=now,
                created_at=queued_at,
                retry_from=now,
                subject=subject,
            )
        )
        .on_conflict(target=WebhookDelivery.key, action="DO NOTHING")
        .returning(WebhookDelivery.id)
        .run()
    )
    return bool(created)


async def booking_event(kind: str, key: str, booking_id: UUID) -> bool:
    """The agency's event for a change of one of its bookings, recorded in the transaction
    that made the change, so the body shows the booking as that change left it."""

    booking = await agency_booking(booking_id)
    if booking is None:
        return False
    # Webhook bodies carry the booking's prices, as they always have.
    body = {"booking": await booking_object(booking, ("octo/pricing",))}
    return await queue_event(
        booking.agency_id, kind, f"webhook:{key}", body, subject=f"booking:{booking_id}"
    )


async def departure_event(kind: str, key: str, departure_id: UUID, details: dict[str, Any]) -> int:
    """A departure changed or was cancelled: tell each agency with bookings on it."""
    departure = await Departure.select().where(Departure.id == departure_id).first().run()
    if departure is None:
        return 0
    # Agencies with live bookings; for a cancelled departure, also those whose bookings
    # that cancellation just ended.
    on_it = (Booking.departure == departure_id) & Booking.agency.is_not_null()
    rows = [
        dict(row)
        for row in await Booking.select(Booking.agency, Booking.partner_uuid)
        .where(on_it & Booking.status.is_in([s.value for s in LIVE_STATUSES]))
        .run()
    ]
    if kind == "departure.cancelled":
        ended = [
            event["booking"]
            for event in await BookingEvent.select(BookingEvent.booking)
            .where(
                (BookingEvent.booking.departure == departure_id)
                & (BookingEvent.reason == "departure_cancelled")
                & (BookingEvent.to_status == BookingStatus.cancelled.value)
            )
            .run()
        ]
        if ended:
            rows += [
                dict(row)
                for row in await Booking.select(Booking.agency, Booking.partner_uuid)
                .where(on_it & Booking.id.is_in(ended))
                .run()
            ]
    uuids: dict[UUID, list[str]] = {}
    for row in rows:
        uuids.setdefault(UUID(str(row["agency"])), []).append(str(row["partner_uuid"]))
    tz = departure["time_zone"]
    queued = 0
    for agency_id, booking_uuids in uuids.items():
        data = {
            "availabilityId": str(departure_id),
            "productId": str(departure["route"]),
            "status": departure["status"].upper(),
            "localDateTimeStart": in_zone(departure["departs_at"], tz).isoformat(),
            "localDateTimeEnd": in_zone(departure["returns_at"], tz).isoformat(),
            "bookingUuids": sorted(booking_uuids),
            **details,
        }
        queued += await queue_event(
            agency_id, kind, f"webhook:{key}:{agency_id}", data, subject=f"departure:{departure_id}"
        )
    return queued
