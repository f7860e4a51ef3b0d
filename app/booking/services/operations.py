"""What operators do with bookings: manifests, check-in, sales figures, cancelling a run."""

from __future__ import annotations

from datetime import date
from typing import Literal
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.booking.rows import BookingRow
from app.booking.schemas import (
    CheckInIn,
    CheckInOut,
    ClassSales,
    DepartureCancellationOut,
    DepartureLoad,
    Manifest,
    ManifestLine,
    SalesOverview,
)
from app.booking.services.access import normalize_reference
from app.booking.services.availability import ClassCounts, class_counts
from app.booking.services.cancel import cancel_booking
from app.booking.services.inventory import lock_departure
from app.booking.services.state import LIVE_STATUSES, publish_change, record_event
from app.booking.tables import (
    Booking,
    BookingLine,
    BookingStatus,
    WaitlistEntry,
    WaitlistStatus,
)
from app.catalogue.events import DepartureCancelled
from app.catalogue.services.common import as_dict, get_operator_row, in_zone, owned_departure
from app.catalogue.services.crew import crew_of
from app.catalogue.services.departure_status import change_departure_status
from app.catalogue.services.departures import departure_out, list_departures
from app.catalogue.tables import DepartureStatus, DepartureStop, PassengerType, Route
from app.core import clock
from app.core.csv_files import csv_text
from app.core.database import for_update, write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.events import publish
from app.core.i18n import _, localize
from app.core.labels import crew_role_label
from app.core.money import Money, PriceOut
from app.core.pagination import Page, PageParams, page_of

LIVE = [status.value for status in LIVE_STATUSES]


async def manifest(
    principal: OperatorPrincipal, departure_id: UUID, sort: Literal["seat", "pickup"] = "seat"
) -> Manifest:
    """Every passenger of the live bookings: seat, pick-up, contact, check-in."""
    departure = await owned_departure(principal, departure_id)
    tz = departure.time_zone
    route = await Route.select(Route.slug).where(Route.id == departure.route_id).first().run()
    assert route is not None
    bookings = {
        row["id"]: row
        for row in await Booking.select()
        .where((Booking.departure == departure_id) & Booking.status.is_in(LIVE))
        .run()
    }
    lines = []
    if bookings:
        lines = (
            await BookingLine.select(
                *BookingLine.all_columns(),
                BookingLine.seat.car,
                BookingLine.seat.compartment,
                BookingLine.seat.sort_key,
            )
            .where(
                (BookingLine.departure == departure_id)
                & BookingLine.booking.is_in(list(bookings))
                & (BookingLine.live == True)  # noqa: E712
            )
            .run()
        )
    stops = {
        row["id"]: row
        for row in await DepartureStop.select()
        .where(DepartureStop.departure == departure_id)
        .output(load_json=True)
        .run()
    }
    result = []
    for line in lines:
        booking = bookings[line["booking"]]
        stop = stops.get(booking["pickup_stop"]) if booking["pickup_stop"] else None
        result.append(
            (
                line["seat.sort_key"],
                # Passengers without a pick-up stop board at the end of the list.
                stop["stop_order"] if stop else 10_000,
                ManifestLine(
                    reference=booking["reference"],
                    status=BookingStatus(booking["status"]),
                    seat_label=line["seat_label"],
                    seat_class=line["seat_class"],
                    car=line["seat.car"],
                    compartment=line["seat.compartment"],
                    passenger_type=PassengerType(line["passenger_type"]),
                    passenger_name=line["passenger_name"],
                    pickup_stop=localize(as_dict(stop["name"])) if stop else None,
                    pickup_at=in_zone(stop["at"], tz) if stop else None,
                    contact_name=booking["contact_name"],
                    contact_phone=booking["contact_phone"],
                    checked_in_at=in_zone(line["checked_in_at"], tz)
                    if line["checked_in_at"]
                    else None,
                ),
            )
        )
    if sort == "pickup":
        result.sort(key=lambda item: (item[1], item[2].reference, item[0]))
    else:
        result.sort(key=lambda item: item[0])
    manifest_lines = [item[2] for item in result]
    return Manifest(
        departure_id=departure_id,
        route_slug=route["slug"],
        departs_at=in_zone(departure.departs_at, tz),
        time_zone=tz,
        passengers=len(manifest_lines),
        checked_in=sum(1 for line in manifest_lines if line.checked_in_at),
        lines=manifest_lines,
        crew=await crew_of(departure_id),
    )


def manifest_csv(data: Manifest) -> str:
    """The manifest as CSV with translated headers, for printing or a spreadsheet."""
    header = [
        _("Seat"),
        _("Class"),
        _("Passenger"),
        _("Passenger type"),
        _("Booking"),
        _("Status"),
        _("Pick-up stop"),
        _("Pick-up time"),
        _("Contact"),
        _("Phone"),
        _("Checked in"),
    ]
    rows: list[list[object]] = [
        [
            line.seat_label,
            line.seat_class,
            line.passenger_name,
            line.passenger_type.value,
            line.reference,
            line.status.value,
            line.pickup_stop or "",
            line.pickup_at.strftime("%Y-%m-%d %H:%M") if line.pickup_at else "",
            line.contact_name,
            line.contact_phone,
            line.checked_in_at.strftime("%H:%M") if line.checked_in_at else "",
        ]
        for line in data.lines
    ]
    if data.crew:
        # The crew below the passengers, after an empty row, every row as wide as the
        # header: the first row stays the passengers' header for spreadsheets.
        width = len(header)
        crew_rows: list[list[object]] = [
            [""] * width,
            [_("Crew"), _("Role"), _("Phone"), _("Car"), _("Coach")],
        ]
        crew_rows.extend(
            [
                member.name,
                crew_role_label(member.role.value),
                member.phone,
                member.car if member.car is not None else "",
                member.coach,
            ]
            for member in data.crew
        )
        rows.extend([*row, *[""] * (width - len(row))] for row in crew_rows)
    return csv_text(header, rows)


async def check_in(principal: OperatorPrincipal, departure_id: UUID, data: CheckInIn) -> CheckInOut:
    """Mark passengers of a confirmed booking as boarded (all, or the listed seats)."""
    async with write_transaction():
        await owned_departure(principal, departure_id)
        booking = await for_update(
            Booking.select()
            .where(
                (Booking.reference == normalize_reference(data.reference))
                & (Booking.departure == departure_id)
            )
            .first()
        ).run()
        if booking is None:
            raise NotFound(_("Booking not found."), code="booking_not_found")
        if booking["status"] != BookingStatus.confirmed:
            raise Conflict(_("Only a confirmed booking can board."), code="booking_not_confirmed")
        lines = (
            await BookingLine.select()
            .where(
                (BookingLine.booking == booking["id"])
                & (BookingLine.departure == booking["departure"])
                & (BookingLine.live == True)  # noqa: E712
            )
            .order_by(BookingLine.position)
            .run()
        )
        if data.seat_labels is not None:
            known = {line["seat_label"] for line in lines}
            for index, label in enumerate(data.seat_labels):
                if label not in known:
                    raise InvalidInput(f"seat_labels[{index}]", _("This booking has no such seat."))
            lines = [line for line in lines if line["seat_label"] in data.seat_labels]
        now = clock.now()
        boarding = [line for line in lines if line["checked_in_at"] is None]
        if boarding:
            await (
                BookingLine.update({BookingLine.checked_in_at: now})
                .where(BookingLine.id.is_in([line["id"] for line in boarding]))
                .run()
            )
            event_id = await record_event(
                booking["id"], f"staff:{principal.staff_id}", booking["status"],
                booking["status"], "checked_in",
                {"seats": [line["seat_label"] for line in boarding]},
            )  # fmt: skip
            await publish_change(BookingRow.from_row(booking), event_id, "checked_in")
    return CheckInOut(
        reference=booking["reference"],
        checked_in=[line["seat_label"] for line in boarding],
        already_checked_in=[line["seat_label"] for line in lines if line["checked_in_at"]],
    )


def _class_sales(seat_class: str, counts: ClassCounts) -> ClassSales:
    return ClassSales(
        seat_class=seat_class, capacity=counts.capacity, sold=counts.sold, held=counts.held,
        allotted=counts.allotted, free=counts.free,
    )  # fmt: skip


async def sales_overview(principal: OperatorPrincipal, departure_id: UUID) -> SalesOverview:
    departure = await owned_departure(principal, departure_id)
    counts = (await class_counts([departure_id]))[departure_id]
    bookings = (
        await Booking.select(
            Booking.status, Booking.total_amount, Booking.refund_amount, Booking.currency
        )
        .where(Booking.departure == departure_id)
        .run()
    )
    currency = (await get_operator_row(departure.operator_id)).currency
    confirmed = [b for b in bookings if b["status"] == BookingStatus.confirmed]
    now = clock.now()
    on_hold = (
        await Booking.count()
        .where(
            (Booking.departure == departure_id)
            & (Booking.status == BookingStatus.on_hold.value)
            & (Booking.expires_at > now)
        )
        .run()
    )
    return SalesOverview(
        departure_id=departure_id,
        classes=[_class_sales(seat_class, c) for seat_class, c in counts.items()],
        bookings_confirmed=len(confirmed),
        bookings_on_hold=int(on_hold),
        revenue=PriceOut.of(
            Money(amount=sum(b["total_amount"] for b in confirmed), currency=currency)
        ),
        refunds_owed=PriceOut.of(
            Money(amount=sum(b["refund_amount"] for b in bookings), currency=currency)
        ),
    )


async def departure_board(
    principal: OperatorPrincipal, params: PageParams, date_from: date | None = None
) -> Page[DepartureLoad]:
    """The operator's departures from `date_from` (local, default today) with the load of
    each seat class, counted for the whole page at once."""
    operator = await get_operator_row(principal.operator_id)
    today = in_zone(clock.now(), operator.time_zone).date()
    page = await list_departures(principal, params, date_from=date_from or today)
    ids = [d.id for d in page.items]
    counts = await class_counts(ids)
    route_ids = list({d.route_id for d in page.items})
    routes = (
        await Route.select(Route.id, Route.name)
        .where(Route.id.is_in(route_ids))
        .output(load_json=True)
        .run()
        if route_ids
        else []
    )
    names = {r["id"]: localize(as_dict(r["name"]), operator.default_locale) for r in routes}
    return page_of(
        [
            DepartureLoad(
                departure=d,
                route_name=names.get(d.route_id, d.route_slug),
                classes=[_class_sales(seat_class, c) for seat_class, c in counts[d.id].items()],
            )
            for d in page.items
        ],
        params,
        page.total,
    )


async def cancel_departure(
    principal: OperatorPrincipal, departure_id: UUID
) -> DepartureCancellationOut:
    """Cancel the run and every live booking on it with a full refund and a notice.

    Safe to retry: a cancelled departure with no live booking left is simply reported.
    """
    require_operator_admin(principal)

    cancelled = 0
    refunds = 0
    async with write_transaction():
        departure = await owned_departure(principal, departure_id)
        await lock_departure(departure_id)
        if departure.status != DepartureStatus.cancelled:
            await change_departure_status(principal, departure_id, DepartureStatus.cancelled)
        live = await for_update(
            Booking.select().where((Booking.departure == departure_id) & Booking.status.is_in(LIVE))
        ).run()
        for booking in live:
            refund, _percent = await cancel_booking(
                BookingRow.from_row(booking), actor=f"staff:{principal.staff_id}",
                reason="departure_cancelled", full_refund=True,
            )  # fmt: skip
            cancelled += 1
            refunds += refund
        await publish(DepartureCancelled(departure_id=departure_id))
        # Waiting entries, and offers whose hold was just cancelled, are withdrawn.
        await (
            WaitlistEntry.update({WaitlistEntry.status: WaitlistStatus.withdrawn.value})
            .where(
                (WaitlistEntry.departure == departure_id)
                & WaitlistEntry.status.is_in(
                    [WaitlistStatus.waiting.value, WaitlistStatus.offered.value]
                )
            )
            .run()
        )

    currency = (await get_operator_row(departure.operator_id)).currency
    return DepartureCancellationOut(
        departure=await departure_out(departure_id),
        bookings_cancelled=cancelled,
        refunds_total=PriceOut.minor(refunds, currency),
    )
