"""What operators see of agency sales: each agency's bookings, and statements per period
(bookings, gross, commission, net owed, refunds, settlements, credit used) as JSON or CSV.

Money of agency bookings: `retail_amount` is what the seats cost at retail, and
`total_amount` the net the agency owes; refunds are in net terms (they give back what was
charged on account).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.services.common import get_operator_row, in_zone, require_calendar_date
from app.catalogue.tables import Departure
from app.core import clock
from app.core.csv_files import csv_text
from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.labels import status_label
from app.core.money import Money, PriceOut
from app.core.pagination import Page, PageParams, fetch_page, page_of
from app.partners.schemas import (
    AgencyBookingOut,
    StatementLine,
    StatementOut,
    StatementTotals,
)
from app.partners.services import credit, owned_agency
from app.partners.tables import Agency, Settlement

# The longest period one statement covers.
MAX_PERIOD_DAYS = 366


async def agency_bookings(
    principal: OperatorPrincipal,
    params: PageParams,
    agency_id: UUID | None = None,
    departure_id: UUID | None = None,
    status: BookingStatus | None = None,
) -> Page[AgencyBookingOut]:
    """Bookings every agency made on the operator's departures, newest first."""
    where: Combinable = (Booking.operator == principal.operator_id) & Booking.agency.is_not_null()
    if agency_id is not None:
        await owned_agency(principal, agency_id)
        where = where & (Booking.agency == agency_id)
    if departure_id is not None:
        where = where & (Booking.departure == departure_id)
    if status is not None:
        where = where & (Booking.status == status.value)
    rows, total = await fetch_page(
        Booking, where, params, [(Booking.created_at, False), (Booking.id, False)]
    )
    ids = [row["id"] for row in rows]
    seats: dict[UUID, list[str]] = {booking_id: [] for booking_id in ids}
    for line in (
        await BookingLine.select(BookingLine.booking, BookingLine.seat_label, BookingLine.departure)
        .where(BookingLine.booking.is_in(ids or [None]))
        .order_by(BookingLine.position)
        .run()
    ):
        seats[line["booking"]].append(line["seat_label"])
    departs = await _departs_at([row["departure"] for row in rows])
    names = {
        row["id"]: row["name"]
        for row in await Agency.select(Agency.id, Agency.name)
        .where(Agency.operator == principal.operator_id)
        .run()
    }

    items = [
        AgencyBookingOut(
            reference=row["reference"],
            agency_id=UUID(str(row["agency"])),
            agency_name=names.get(UUID(str(row["agency"])), ""),
            partner_uuid=row["partner_uuid"],
            reseller_reference=row["reseller_reference"],
            status=row["status"],
            departure_id=row["departure"],
            departs_at=departs[row["departure"]],
            seats=seats[row["id"]],
            contact_name=row["contact_name"],
            retail=PriceOut.minor(
                _gross(row["retail_amount"], row["total_amount"]), row["currency"]
            ),
            net=PriceOut.minor(row["total_amount"], row["currency"]),
            refunded=PriceOut.minor(row["refund_amount"], row["currency"]),
            created_at=row["created_at"],
            confirmed_at=row["confirmed_at"],
            cancelled_at=row["cancelled_at"],
        )
        for row in rows
    ]
    return page_of(items, params, total)


def _gross(retail_amount: int | None, total_amount: int) -> int:
    """What the seats cost at retail; the net if no retail price was recorded."""
    return int(retail_amount if retail_amount is not None else total_amount)


async def _departs_at(departure_ids: list[UUID]) -> dict[UUID, datetime]:
    return {
        row["id"]: row["departs_at"]
        for row in await Departure.select(Departure.id, Departure.departs_at)
        .where(Departure.id.is_in(departure_ids or [None]))
        .run()
    }


async def statement(
    principal: OperatorPrincipal, agency_id: UUID, start: date, end: date
) -> StatementOut:
    """Bookings confirmed in [start, end] (local dates in the operator's zone), as they
    stand now (later refunds included), and settlements received in the period."""
    require_calendar_date("start", start)
    require_calendar_date("end", end)
    if end < start:
        raise InvalidInput("end", _("The end must not be before the start."), source="query")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidInput(
            "end",
            _("A statement covers at most {days} days.").format(days=MAX_PERIOD_DAYS),
            source="query",
        )
    agency = await owned_agency(principal, agency_id)
    operator = await get_operator_row(principal.operator_id)
    tz = clock.zone(operator.time_zone)
    currency = operator.currency
    since = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    rows = (
        await Booking.select()
        .where(
            (Booking.agency == agency_id)
            & (Booking.confirmed_at >= since)
            & (Booking.confirmed_at < until)
        )
        .order_by(Booking.confirmed_at)
        .run()
    )
    seat_counts: dict[UUID, int] = {row["id"]: 0 for row in rows}
    for line in (
        await BookingLine.select(BookingLine.booking, BookingLine.departure)
        .where(BookingLine.booking.is_in(list(seat_counts) or [None]))
        .run()
    ):
        seat_counts[line["booking"]] += 1
    departs = await _departs_at([row["departure"] for row in rows])
    lines = []
    for row in rows:
        net, refunded = row["total_amount"], row["refund_amount"]
        gross = _gross(row["retail_amount"], net)
        lines.append(
            StatementLine(
                reference=row["reference"],
                partner_uuid=row["partner_uuid"],
                reseller_reference=row["reseller_reference"],
                status=row["status"],
                departure_id=row["departure"],
                departs_at=departs[row["departure"]],
                seats=seat_counts[row["id"]],
                confirmed_at=row["confirmed_at"],
                cancelled_at=row["cancelled_at"],
                gross=gross,
                commission=gross - net,
                net=net,
                refunded=refunded,
                net_owed=net - refunded,
            )
        )
    settled = sum(
        int(row["amount"])
        for row in await Settlement.select(Settlement.amount)
        .where(
            (Settlement.agency == agency_id)
            & (Settlement.received_on >= start)
            & (Settlement.received_on <= end)
        )
        .run()
    )

    def price(amount: int) -> PriceOut:
        return PriceOut.minor(amount, currency)

    totals = StatementTotals(
        bookings=len(lines),
        seats=sum(line.seats for line in lines),
        gross=price(sum(line.gross for line in lines)),
        commission=price(sum(line.commission for line in lines)),
        net=price(sum(line.net for line in lines)),
        refunded=price(sum(line.refunded for line in lines)),
        net_owed=price(sum(line.net_owed for line in lines)),
        settled=price(settled),
    )
    return StatementOut(
        agency_id=agency_id, agency_name=agency.name, period_start=start, period_end=end,
        time_zone=operator.time_zone, currency=currency, totals=totals,
        credit=await credit(agency, currency), lines=lines,
    )  # fmt: skip


def statement_csv(data: StatementOut) -> str:
    """One row per booking and a totals row; amounts in major units with the currency."""
    header = [
        _("Booking"),
        _("Agency reference"),
        _("Status"),
        _("Departure"),
        _("Seats"),
        _("Confirmed"),
        _("Gross"),
        _("Commission"),
        _("Net"),
        _("Refunded"),
        _("Net owed"),
        _("Currency"),
    ]

    def major(amount: int) -> Decimal:
        return Money(amount=amount, currency=data.currency).to_decimal()

    rows: list[list[object]] = [
        [
            line.reference,
            line.reseller_reference,
            status_label(line.status),
            in_zone(line.departs_at, data.time_zone).date().isoformat(),
            line.seats,
            in_zone(line.confirmed_at, data.time_zone).date().isoformat()
            if line.confirmed_at
            else "",
            major(line.gross),
            major(line.commission),
            major(line.net),
            major(line.refunded),
            major(line.net_owed),
            data.currency,
        ]
        for line in data.lines
    ]
    totals = data.totals
    rows.append(
        [
            _("Total"),
            "",
            "",
            "",
            totals.seats,
            "",
            major(totals.gross.amount),
            major(totals.commission.amount),
            major(totals.net.amount),
            major(totals.refunded.amount),
            major(totals.net_owed.amount),
            data.currency,
        ]
    )
    return csv_text(header, rows)
