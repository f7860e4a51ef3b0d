"""Signed webhooks to agencies: booking confirmed / cancelled / expired / changed,
departure changed / cancelled, allotment released.

An event is written as a `WebhookDelivery` row in the transaction that causes it (or by
the outbox dispatcher for booking and departure events), with its JSON body fixed then.
`deliver_due_webhooks` claims a due row in a committed statement before the POST (the
attempt's number and a lease: two workers never post the same one at once), cuts the POST
off well inside the lease, records the outcome only if the claim is still this attempt's,
logs every attempt, retries with growing pauses for up to three days, and stops for good
on 410 Gone, which also disables the agency's endpoint until its URL is set again. A
claim whose worker died is posted again when its lease runs out, with the same event id
(`Tourline-Event-Id`): agencies dedupe by it.

Signature (documented for agencies in the README): header
`Tourline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.booking.services.agency import agency_booking
from app.booking.services.state import LIVE_STATUSES
from app.booking.tables import Booking, BookingEvent, BookingStatus
from app.catalogue.services.common import in_zone
from app.catalogue.tables import Departure
from app.core import clock, http_clients
from app.core.errors import Conflict, NotFound
from app.core.i18n import _
from app.core.pagination import Page, PageParams, fetch_page, page_of
from app.notifications.services.sending import send_lease
from app.partners.octo import utc_text
from app.partners.octo_bookings.view import booking_object
from app.partners.schemas import WebhookAttemptOut, WebhookDeliveryOut
from app.partners.services import owned_agency
from app.partners.tables import Agency, WebhookAttempt, WebhookDelivery, WebhookStatus

logger = logging.getLogger("tourline.webhooks")

SIGNATURE_HEADER = "Tourline-Signature"
# Deliveries are retried until this long after the event; then they fail.
RETRY_WINDOW = timedelta(days=3)
# Pauses after the 1st, 2nd ... failed attempt; the last one repeats.
RETRY_PAUSES = [timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440)]
# The longest a POST may take; within half the claim's lease (TOURLINE_SEND_LEASE_SECONDS).
TIMEOUT_SECONDS = 10.0


def post_timeout(claim_lease: timedelta) -> float:
    """The POST is cut off well inside the claim's lease: no second worker posts a copy
    while a slow endpoint still holds the first."""
    return min(TIMEOUT_SECONDS, claim_lease.total_seconds() / 2)


def sign(secret: str, timestamp: int, body: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def signature_header(secret: str, body: str, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={sign(secret, moment, body)}"


def retry_pause(attempts: int) -> timedelta:
    return RETRY_PAUSES[min(attempts, len(RETRY_PAUSES)) - 1]


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
    body = {"booking": await booking_object(booking)}
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


# No older event of the same subject for the same agency is still to be delivered (the
# row being claimed is `webhook_delivery`; `older` is the other one).
_NOTHING_OLDER_PENDING = WhereRaw(
    "(webhook_delivery.subject IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM webhook_delivery AS older"
    " WHERE older.agency = webhook_delivery.agency"
    " AND older.subject = webhook_delivery.subject"
    " AND older.status = {}"
    " AND (older.created_at < webhook_delivery.created_at"
    " OR (older.created_at = webhook_delivery.created_at AND older.id < webhook_delivery.id))))",
    WebhookStatus.pending.value,
)


async def _claim(delivery_id: UUID, now: datetime, claim_lease: timedelta) -> int | None:
    """Claim a due delivery for one attempt (committed before the POST); the attempt's
    number, or None if another worker has it, or an older event of its subject is still
    to be delivered to the agency: it waits for that one (retried, it keeps its turn), so
    that "confirmed" never arrives after "cancelled"."""
    claimed = (
        await WebhookDelivery.update(
            {
                WebhookDelivery.next_attempt_at: now + claim_lease,
                WebhookDelivery.attempts: WebhookDelivery.attempts + 1,
            }
        )
        .where(
            (WebhookDelivery.id == delivery_id)
            & (WebhookDelivery.status == WebhookStatus.pending.value)
            & (WebhookDelivery.next_attempt_at <= now)
            & _NOTHING_OLDER_PENDING
        )
        .returning(WebhookDelivery.attempts)
        .run()
    )
    return int(claimed[0]["attempts"]) if claimed else None


def _still_claimed(delivery_id: UUID, attempt: int) -> Combinable:
    """Fencing: an outcome is recorded only by the attempt that holds the claim."""
    return (
        (WebhookDelivery.id == delivery_id)
        & (WebhookDelivery.status == WebhookStatus.pending.value)
        & (WebhookDelivery.attempts == attempt)
    )


async def _post_within(
    seconds: float, url: str, secret: str, delivery: dict[str, Any]
) -> tuple[int | None, str, int]:
    """`_post`, cut off after `seconds` whatever the endpoint does (a slow trickle too)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            return await _post(url, secret, delivery)
    except TimeoutError:
        error = f"no answer within {seconds:g} s: the outcome is unknown"
        return None, error, int((time.monotonic() - started) * 1000)


async def _post(url: str, secret: str, delivery: dict[str, Any]) -> tuple[int | None, str, int]:
    """POST the body; (status code or None, error text, milliseconds)."""
    body: str = delivery["body"]
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Tourline-Webhooks/1",
        SIGNATURE_HEADER: signature_header(secret, body),
        "Tourline-Event-Id": str(delivery["id"]),
        "Tourline-Event-Type": delivery["event_type"],
    }
    started = time.monotonic()
    try:
        client = http_clients.shared(
            "webhooks",
            lambda: httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False),
        )
        response = await client.post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], int((time.monotonic() - started) * 1000)
    elapsed = int((time.monotonic() - started) * 1000)
    error = "" if response.is_success else response.text[:500]
    return response.status_code, error, elapsed


async def _disable_endpoint(agency_id: UUID, now: datetime) -> None:
    await (
        Agency.update({Agency.webhook_disabled_at: now})
        .where((Agency.id == agency_id) & Agency.webhook_disabled_at.is_null())
        .run()
    )
    await (
        WebhookDelivery.update({WebhookDelivery.status: WebhookStatus.disabled.value})
        .where(
            (WebhookDelivery.agency == agency_id)
            & (WebhookDelivery.status == WebhookStatus.pending.value)
        )
        .run()
    )


# Agencies posted to at once; each agency's deliveries go one after the other (in order,
# over one keep-alive connection): a slow or dead endpoint holds up only its own agency.
CONCURRENT_AGENCIES = 8


async def deliver_due_webhooks(
    limit: int = 100, claim_lease: timedelta | None = None, deadline: float | None = None
) -> int:
    """Post the due deliveries, at most `limit` per agency, agencies at once; returns how
    many the agencies accepted. With a `deadline` (time.monotonic()), no delivery is
    claimed once less time is left than one POST may take."""
    claim_lease = claim_lease or send_lease()
    seconds = post_timeout(claim_lease)
    due = WebhookDelivery.status == WebhookStatus.pending.value
    agencies = [
        row["agency"]
        for row in await WebhookDelivery.select(WebhookDelivery.agency)
        .where(due & (WebhookDelivery.next_attempt_at <= clock.now()))
        .distinct()
        .run()
    ]
    slots = asyncio.Semaphore(CONCURRENT_AGENCIES)

    async def deliver_for(agency_id: UUID) -> int:
        async with slots:
            rows = (
                await WebhookDelivery.select(WebhookDelivery.id)
                .where(
                    due
                    & (WebhookDelivery.agency == agency_id)
                    & (WebhookDelivery.next_attempt_at <= clock.now())
                )
                .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
                .limit(limit)
                .run()
            )
            delivered = 0
            for row in rows:
                if deadline is not None and time.monotonic() + seconds > deadline:
                    break  # the next call takes it, with time to record its outcome
                delivered += await _deliver(row["id"], claim_lease, seconds)
            return delivered

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(deliver_for(agency_id)) for agency_id in agencies]
    return sum(task.result() for task in tasks)


async def _deliver(delivery_id: UUID, claim_lease: timedelta, seconds: float) -> int:
    """Claim one delivery, post it and record the outcome; 1 if the agency accepted it."""
    attempts = await _claim(delivery_id, clock.now(), claim_lease)
    if attempts is None:
        return 0  # Another worker has it, or it waits for an older one.
    delivery = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first().run()
    assert delivery is not None
    agency = (
        await Agency.select(Agency.webhook_url, Agency.webhook_secret, Agency.webhook_disabled_at)
        .where(Agency.id == delivery["agency"])
        .first()
        .run()
    )
    now = clock.now()
    if agency is None or not agency["webhook_url"] or agency["webhook_disabled_at"]:
        await (
            WebhookDelivery.update(
                {
                    WebhookDelivery.status: WebhookStatus.disabled.value,
                    WebhookDelivery.attempts: attempts - 1,  # nothing was posted
                }
            )
            .where(_still_claimed(delivery_id, attempts))
            .run()
        )
        return 0
    code, error, elapsed = await _post_within(
        seconds, agency["webhook_url"], agency["webhook_secret"], delivery
    )
    now = clock.now()
    # The attempt was made, whoever holds the claim now: it is logged either way.
    await WebhookAttempt.insert(
        WebhookAttempt(
            delivery=delivery_id,
            at=now,
            url=agency["webhook_url"],
            status_code=code,
            error=error,
            duration_ms=elapsed,
        )
    ).run()
    values: dict[Any, Any] = {
        WebhookDelivery.attempts: attempts,
        WebhookDelivery.last_status_code: code,
        WebhookDelivery.last_error: error,
    }
    accepted = code is not None and 200 <= code < 300
    if accepted:
        values[WebhookDelivery.status] = WebhookStatus.delivered.value
        values[WebhookDelivery.delivered_at] = now
    elif code == 410:
        values[WebhookDelivery.status] = WebhookStatus.disabled.value
    else:
        # Refused, or the outcome is unknown (no answer): posted again after a pause.
        retry_at = now + retry_pause(attempts)
        if retry_at - delivery["retry_from"] > RETRY_WINDOW:
            values[WebhookDelivery.status] = WebhookStatus.failed.value
        else:
            values[WebhookDelivery.next_attempt_at] = retry_at
    recorded = (
        await WebhookDelivery.update(values)
        .where(_still_claimed(delivery_id, attempts))
        .returning(WebhookDelivery.id)
        .run()
    )
    if not recorded:
        logger.warning(
            "webhook %s: attempt %s lost its claim before its outcome was recorded",
            delivery_id, attempts,
        )  # fmt: skip
        return 0
    if code == 410:
        logger.warning("agency %s answered 410 Gone: webhooks disabled", delivery["agency"])
        await _disable_endpoint(delivery["agency"], now)
    return int(accepted)


# ---------------------------------------------------------------- operator view


def _delivery_out(row: dict[str, Any], attempts: list[dict[str, Any]]) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=row["id"], event_type=row["event_type"], status=WebhookStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == WebhookStatus.pending else None,
        last_status_code=row["last_status_code"], last_error=row["last_error"],
        created_at=row["created_at"], delivered_at=row["delivered_at"], body=row["body"],
        attempt_log=[
            WebhookAttemptOut(
                at=a["at"], url=a["url"], status_code=a["status_code"], error=a["error"],
                duration_ms=a["duration_ms"],
            )
            for a in attempts
        ],
    )  # fmt: skip


async def list_deliveries(
    principal: OperatorPrincipal, agency_id: UUID, status: WebhookStatus | None, params: PageParams
) -> Page[WebhookDeliveryOut]:
    """The agency's webhook events, newest first, each with every attempt made."""
    await owned_agency(principal, agency_id)
    where: Combinable = WebhookDelivery.agency == agency_id
    if status is not None:
        where = where & (WebhookDelivery.status == status.value)
    rows, total = await fetch_page(
        WebhookDelivery, where, params,
        [(WebhookDelivery.created_at, False), (WebhookDelivery.id, False)],
    )  # fmt: skip
    attempts: dict[UUID, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    if rows:
        for attempt in (
            await WebhookAttempt.select()
            .where(WebhookAttempt.delivery.is_in(list(attempts)))
            .order_by(WebhookAttempt.at)
            .run()
        ):
            attempts[attempt["delivery"]].append(dict(attempt))
    return page_of([_delivery_out(row, attempts[row["id"]]) for row in rows], params, total)


async def retry_delivery(
    principal: OperatorPrincipal, agency_id: UUID, delivery_id: UUID
) -> WebhookDeliveryOut:
    """Send a failed or disabled event again, now (the retry window starts over)."""
    await owned_agency(principal, agency_id)
    row = (
        await WebhookDelivery.select()
        .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.agency == agency_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("Webhook event not found."), code="webhook_not_found")
    if row["status"] == WebhookStatus.pending:
        raise Conflict(_("This event is still being delivered."), code="webhook_pending")
    if row["status"] == WebhookStatus.delivered:
        raise Conflict(_("This event has been delivered."), code="webhook_delivered")
    now = clock.now()
    await (
        WebhookDelivery.update(
            {
                WebhookDelivery.status: WebhookStatus.pending.value,
                WebhookDelivery.next_attempt_at: now,
                WebhookDelivery.retry_from: now,
            }
        )
        .where(WebhookDelivery.id == delivery_id)
        .run()
    )
    return await _one(delivery_id)


async def _one(delivery_id: UUID) -> WebhookDeliveryOut:
    row = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first().run()
    assert row is not None
    attempts = (
        await WebhookAttempt.select()
        .where(WebhookAttempt.delivery == delivery_id)
        .order_by(WebhookAttempt.at)
        .run()
    )
    return _delivery_out(dict(row), [dict(a) for a in attempts])
