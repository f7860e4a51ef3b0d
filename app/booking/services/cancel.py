"""Cancelling a booking: the refund its route's policy gives, by its guest or anyone else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow, DepartureRow
from app.booking.schemas import CancellationOut, CancellationQuote
from app.booking.services.access import lock_booking
from app.booking.services.expiry import _guest_booking_now
from app.booking.services.state import can_transition, transition
from app.booking.services.view import booking_out
from app.booking.tables import Booking, BookingStatus
from app.catalogue.schemas.routes import PolicyTierOut
from app.catalogue.services.common import as_list
from app.catalogue.tables import Departure, DepartureStatus, Route
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict
from app.core.events import publish
from app.core.i18n import _
from app.core.money import PriceOut


def refund_percent(policy: list[dict[str, int]], departs_at: datetime, now: datetime) -> int:
    """The refund of the first tier whose notice the cancellation still gives."""
    hours_before = (departs_at - now).total_seconds() / 3600
    for tier in sorted(policy, key=lambda t: -t["hours_before"]):
        if hours_before >= tier["hours_before"]:
            return int(tier["refund_percent"])
    return 0


@dataclass(frozen=True)
class RefundDue:
    amount: int
    percent: int
    policy: list[dict[str, int]]


async def refund_due(booking: BookingRow, departure: DepartureRow) -> RefundDue:
    """What cancelling now gives back under the route's policy.

    Nothing was paid for a hold, so nothing is refunded; a confirmed booking cannot be
    cancelled by its guest once the departure has left."""
    route = (
        await Route.select(Route.cancellation_policy)
        .where(Route.id == departure.route_id)
        .first()
        .output(load_json=True)
        .run()
    )
    assert route is not None
    policy = as_list(route["cancellation_policy"])
    if booking.status != BookingStatus.confirmed:
        return RefundDue(amount=0, percent=0, policy=policy)
    if clock.now() >= departure.departs_at:
        raise Conflict(
            _("The departure has left; the booking can no longer be cancelled."),
            code="departure_passed",
        )
    percent = refund_percent(policy, departure.departs_at, clock.now())
    return RefundDue(amount=_paid(booking) * percent // 100, percent=percent, policy=policy)


def _paid(booking: BookingRow) -> int:
    return booking.total_amount - booking.balance_due


async def cancel_booking(
    booking: BookingRow,
    *,
    actor: str,
    reason: str,
    full_refund: bool = False,
    note: str = "",
) -> tuple[int, int]:
    """Cancel inside the caller's transaction, which holds the departure's lock; returns
    (refund amount, percent).

    `reason` is a short code (the audit column holds 64 characters); a guest's own words
    (up to 200) go in the event's details as `note`. The freed seats are offered to the
    waiting list (`SeatsFreed`) whoever cancels, unless the departure itself is cancelled."""
    departure = await Departure.select().where(Departure.id == booking.departure_id).first().run()
    assert departure is not None
    if full_refund and booking.status == BookingStatus.confirmed:
        refund, percent = _paid(booking), 100
    else:
        due = await refund_due(booking, DepartureRow.from_row(departure))
        refund, percent = due.amount, due.percent
    details: dict[str, Any] = {"refund_percent": percent, "refund": refund}
    if note:
        details["note"] = note
    await transition(
        booking, BookingStatus.cancelled, actor=actor, reason=reason, refund_amount=refund,
        details=details,
    )  # fmt: skip
    if departure["status"] != DepartureStatus.cancelled.value:
        await publish(SeatsFreed(departure_id=booking.departure_id))
    return refund, percent


async def guest_cancel(reference: str, token: str | None, reason: str) -> CancellationOut:
    found = await _guest_booking_now(reference, token)
    async with write_transaction():
        booking, _departure = await lock_booking(found.id)
        refund, percent = await cancel_booking(
            booking, actor="guest", reason="cancelled_by_guest", note=reason
        )
    out = await booking_out(booking.id)
    return CancellationOut(
        refund=PriceOut.minor(refund, booking.currency),
        refund_percent=percent,
        booking=out,
    )


async def guest_cancellation_quote(reference: str, token: str | None) -> CancellationQuote:
    """What cancelling now would refund, shown before the guest confirms."""
    found = await _guest_booking_now(reference, token)
    # Re-read: a hold whose time ran out was just expired.
    booking = await Booking.select().where(Booking.id == found.id).first().run()
    assert booking is not None
    if not can_transition(booking["status"], BookingStatus.cancelled):
        raise Conflict(_("This booking can no longer be cancelled."), code="not_cancellable")
    departure = await Departure.select().where(Departure.id == booking["departure"]).first().run()
    assert departure is not None
    due = await refund_due(BookingRow.from_row(booking), DepartureRow.from_row(departure))
    return CancellationQuote(
        refund=PriceOut.minor(due.amount, booking["currency"]),
        refund_percent=due.percent,
        policy=[PolicyTierOut(**tier) for tier in due.policy],
        booking=await booking_out(booking["id"]),
    )
