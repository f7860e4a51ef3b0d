"""Operators' money views: one booking's payments and refunds, and the reconciliation
report of every mismatch between the money and the bookings."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.booking.rows import BookingRow
from app.booking.services.access import booking_not_found, normalize_reference
from app.booking.tables import Booking, BookingStatus
from app.catalogue.services.common import get_operator_row, local_day_range
from app.core import clock
from app.core.errors import DomainError
from app.core.money import PriceOut
from app.payments.providers import UnknownObject, get_provider
from app.payments.schemas import (
    BookingMoneyOut,
    PaymentOut,
    Reconciliation,
    ReconciliationLine,
    RefundOut,
)
from app.payments.services.refunds import MAX_REFUND_ATTEMPTS
from app.payments.services.sweep import SYNC_WINDOW, _unsettled
from app.payments.tables import Payment, PaymentStatus, Refund, RefundStatus

# A provider refund not settled after this long is stuck: the operator's report lists it.
REFUND_OVERDUE = timedelta(days=1)
# The report asks Stripe about at most this many unsettled intents per request.
REPORT_PROVIDER_CHECKS = 100


def _payment_out(row: dict[str, Any]) -> PaymentOut:
    return PaymentOut(
        id=row["id"], provider=row["provider"], provider_id=row["provider_id"],
        attempt=row["attempt"], amount=PriceOut.minor(row["amount"], row["currency"]),
        status=PaymentStatus(row["status"]), failure_reason=row["failure_reason"],
        created_at=row["created_at"], succeeded_at=row["succeeded_at"],
    )  # fmt: skip


def _refund_out(row: dict[str, Any]) -> RefundOut:
    return RefundOut(
        id=row["id"], provider=row["provider"], provider_id=row["provider_id"],
        amount=PriceOut.minor(row["amount"], row["currency"]), reason=row["reason"],
        status=RefundStatus(row["status"]), attempts=row["attempts"],
        last_error=row["last_error"], created_at=row["created_at"],
    )  # fmt: skip


async def money_of(booking_id: UUID) -> tuple[int, int]:
    payments = (
        await Payment.select(Payment.amount)
        .where((Payment.booking == booking_id) & (Payment.status == PaymentStatus.succeeded.value))
        .run()
    )
    refunds = await Refund.select(Refund.amount).where(Refund.booking == booking_id).run()
    return sum(p["amount"] for p in payments), sum(r["amount"] for r in refunds)


def money_problem(booking: BookingRow, paid: int, refunded: int) -> str | None:
    """Why a booking's money does not add up, or None when it does."""
    status = booking.status
    if status == BookingStatus.confirmed:
        # The ledger: what was paid less what goes back is the price, to the unit. (A
        # balance left unpaid by an older rebooking shows here until it is settled.)
        if paid - refunded != booking.total_amount:
            return "confirmed_but_paid_differs"
        return None
    if status == BookingStatus.on_hold:
        return "paid_while_on_hold" if paid else None
    # Cancelled or expired: everything owed back is recorded as refunds.
    if refunded != min(booking.refund_amount, paid) + max(0, booking.refund_amount - paid):
        return "refund_owed_not_recorded"
    return None


async def booking_money(principal: OperatorPrincipal, reference: str) -> BookingMoneyOut:
    booking = (
        await Booking.select()
        .where(
            (Booking.reference == normalize_reference(reference))
            & (Booking.operator == principal.operator_id)
        )
        .first()
        .run()
    )
    if booking is None:
        raise booking_not_found()
    payments = (
        await Payment.select()
        .where(Payment.booking == booking["id"])
        .order_by(Payment.created_at)
        .run()
    )
    refunds = (
        await Refund.select()
        .where(Refund.booking == booking["id"])
        .order_by(Refund.created_at)
        .run()
    )
    paid, refunded = await money_of(booking["id"])
    currency = booking["currency"]
    return BookingMoneyOut(
        reference=booking["reference"], booking_status=booking["status"],
        total=PriceOut.minor(booking["total_amount"], currency),
        paid=PriceOut.minor(paid, currency), refunded=PriceOut.minor(refunded, currency),
        payments=[_payment_out(p) for p in payments], refunds=[_refund_out(r) for r in refunds],
    )  # fmt: skip


async def reconciliation(
    principal: OperatorPrincipal, date_from: date | None, date_to: date | None
) -> Reconciliation:
    """Bookings made in a date range (operator's local dates): what was paid and refunded,
    and every mismatch between the money and the bookings, one line per booking and
    problem, for as long as it lasts.

    Besides our own books, Stripe is asked about every intent of these bookings that is not
    settled yet: money it took that no webhook told us about shows as `paid_not_recorded`
    until the sweep confirms the booking or refunds it."""
    operator = await get_operator_row(principal.operator_id)
    start, end = local_day_range(date_from, date_to, operator.time_zone)
    in_range: Any = Booking.operator == principal.operator_id
    if start is not None:
        in_range &= Booking.created_at >= start
    if end is not None:
        in_range &= Booking.created_at < end
    bookings = await Booking.select().where(in_range).order_by(Booking.created_at).run()
    booking_ids = Booking.select(Booking.id).where(in_range)
    unrecorded, unverified, unsettled = await _unrecorded_at_provider(booking_ids)
    refund_problems = await _refund_problems(booking_ids)
    total_paid = total_refunded = 0
    mismatches = []
    for booking in bookings:
        paid, refunded = await money_of(booking["id"])
        total_paid += paid
        total_refunded += refunded
        problems = [money_problem(BookingRow.from_row(booking), paid, refunded)]
        if unrecorded.get(booking["id"]):
            problems.append("paid_not_recorded")
        if booking["id"] in unverified:
            problems.append("provider_unverified")
        if booking["id"] in unsettled:
            problems.append("payment_unsettled")
        problems += refund_problems.get(booking["id"], [])
        for problem in problems:
            if problem is None:
                continue
            mismatches.append(
                ReconciliationLine(
                    reference=booking["reference"],
                    booking_status=booking["status"],
                    paid=paid,
                    refunded=refunded,
                    expected_net=booking["total_amount"]
                    if booking["status"] == BookingStatus.confirmed
                    else 0,
                    problem=problem,
                    unrecorded=unrecorded.get(booking["id"], 0),
                )
            )
    currency = operator.currency
    return Reconciliation(
        currency=currency, bookings=len(bookings), paid=PriceOut.minor(total_paid, currency),
        refunded=PriceOut.minor(total_refunded, currency), mismatches=mismatches,
    )  # fmt: skip


async def _unrecorded_at_provider(
    booking_ids: Any,
) -> tuple[dict[UUID, int], set[UUID], set[UUID]]:
    """What Stripe holds that our books do not show, for the unsettled intents of these
    bookings: the amounts it took (asked now, for intents younger than SYNC_WINDOW, which
    the sweep may not have seen yet), by booking; the bookings it could not tell us about
    (unreachable, or beyond REPORT_PROVIDER_CHECKS); and those with an older intent the
    sweep has looked at and could not settle."""
    since = clock.now() - SYNC_WINDOW
    rows = (
        await Payment.select(
            Payment.booking,
            Payment.provider,
            Payment.provider_id,
            Payment.created_at,
            Payment.checked_at,
        )
        .where(_unsettled() & Payment.booking.is_in(booking_ids))
        .order_by(Payment.created_at, ascending=False)
        .run()
    )
    recent = [row for row in rows if row["created_at"] >= since]
    unsettled = {row["booking"] for row in rows if row["created_at"] < since and row["checked_at"]}
    unrecorded: dict[UUID, int] = {}
    unverified = {row["booking"] for row in recent[REPORT_PROVIDER_CHECKS:]}
    gate = asyncio.Semaphore(8)

    async def check(row: dict[str, Any]) -> None:
        async with gate:
            try:
                intent = await get_provider(row["provider"]).fetch(row["provider_id"])
            except UnknownObject:
                return
            except DomainError:
                unverified.add(row["booking"])
                return
        if intent.status == "succeeded":
            unrecorded[row["booking"]] = unrecorded.get(row["booking"], 0) + intent.amount

    await asyncio.gather(*(check(dict(row)) for row in recent[:REPORT_PROVIDER_CHECKS]))
    return unrecorded, unverified, unsettled


async def _refund_problems(booking_ids: Any) -> dict[UUID, list[str]]:
    """Refunds through a provider that will not complete by themselves: refused by it or
    out of retries (`refund_failed`), or still open a day after they were owed
    (`refund_stuck`). Manual refunds are a person's to-do, not a mismatch."""
    now = clock.now()
    rows = (
        await Refund.select()
        .where(
            Refund.booking.is_in(booking_ids)
            & (Refund.provider != "manual")
            & Refund.status.is_in(
                [RefundStatus.pending.value, RefundStatus.processing.value,
                 RefundStatus.failed.value]
            )
        )
        .run()
    )  # fmt: skip
    problems: dict[UUID, list[str]] = {}
    for row in rows:
        if row["status"] == RefundStatus.failed and (
            row["provider_id"] or row["attempts"] >= MAX_REFUND_ATTEMPTS
        ):
            problem = "refund_failed"
        elif row["created_at"] <= now - REFUND_OVERDUE or (
            row["attempts"] >= MAX_REFUND_ATTEMPTS and not row["provider_id"]
        ):
            problem = "refund_stuck"
        else:
            continue
        found = problems.setdefault(row["booking"], [])
        if problem not in found:
            found.append(problem)
    return problems
