"""Bookings partner agencies make: found by the agency's own booking uuid, read as typed
rows, and the details an agency adds to its hold (its reference, the lead contact, the
travellers' names). The partner API calls these; it never writes booking rows itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from app.booking.rows import BookingRow
from app.booking.services import state
from app.booking.services.access import lock_booking
from app.booking.services.cancel import cancel_booking
from app.booking.tables import Booking, BookingEvent, BookingLine, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict
from app.core.i18n import _


@dataclass(frozen=True, slots=True)
class AgencyBookingLine:
    """One passenger of an agency's booking, at the agency's net price."""

    position: int
    seat_label: str
    seat_class: str
    passenger_type: str
    passenger_name: str
    price_amount: int
    # The retail price of the seat (None for bookings made before it was recorded).
    retail_amount: int | None
    checked_in_at: datetime | None
    passenger_email: str
    passenger_phone: str
    passenger_country: str
    passenger_notes: str
    # The agency's uuid and reference for the passenger's unit item, where it gave them.
    partner_uuid: str | None
    reseller_reference: str


@dataclass(frozen=True, slots=True)
class AgencyBooking:
    """An agency's booking as the partner API shows it."""

    id: UUID
    agency_id: UUID
    partner_uuid: str
    reference: str
    reseller_reference: str
    status: BookingStatus
    departure_id: UUID
    pickup_stop_id: UUID | None
    contact_name: str
    contact_email: str
    contact_phone: str
    locale: str
    currency: str
    # What the agency owes (its net price), and the retail price of the same seats.
    total_amount: int
    retail_amount: int | None
    refund_amount: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    notes: str
    contact_notes: str
    contact_country: str
    contact_postal_code: str

    @property
    def hold_running(self) -> bool:
        return state.hold_running(self.status, self.expires_at)


@dataclass(frozen=True, slots=True)
class UnitTraveller:
    """What an agency says of one passenger (an OCTO unit item); None keeps what the
    booking line has."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    notes: str | None = None
    partner_uuid: str | None = None
    reseller_reference: str | None = None


@dataclass(frozen=True, slots=True)
class AgencyContact:
    """The lead contact an agency gives when it confirms, pays or updates its booking."""

    name: str
    email: str
    phone: str
    locale: str
    # The agency's own reference; None keeps the one given with the hold.
    reseller_reference: str | None
    # Each passenger in the booking's order (fewer, or none: the rest keep theirs). A
    # passenger left without a name is given the lead's.
    travellers: tuple[UnitTraveller, ...] = ()
    # Notes about the lead contact (e.g. needs); None keeps those given before.
    contact_notes: str | None = None
    # The agency's notes on the booking; None keeps those given before.
    notes: str | None = None
    # The lead's country (ISO 3166-1 alpha-2) and postal code; None keeps them.
    country: str | None = None
    postal_code: str | None = None


def _typed(booking: BookingRow) -> AgencyBooking:
    # Callers pass an agency's booking: both are set (not checked, as ever).
    agency_id, partner_uuid = cast(UUID, booking.agency_id), cast(str, booking.partner_uuid)
    return AgencyBooking(
        id=booking.id, agency_id=agency_id, partner_uuid=partner_uuid,
        reference=booking.reference, reseller_reference=booking.reseller_reference,
        status=booking.status, departure_id=booking.departure_id,
        pickup_stop_id=booking.pickup_stop_id, contact_name=booking.contact_name,
        contact_email=booking.contact_email, contact_phone=booking.contact_phone,
        locale=booking.locale, currency=booking.currency, total_amount=booking.total_amount,
        retail_amount=booking.retail_amount, refund_amount=booking.refund_amount,
        created_at=booking.created_at, updated_at=booking.updated_at,
        expires_at=booking.expires_at, confirmed_at=booking.confirmed_at,
        cancelled_at=booking.cancelled_at, notes=booking.notes,
        contact_notes=booking.contact_notes, contact_country=booking.contact_country,
        contact_postal_code=booking.contact_postal_code,
    )  # fmt: skip


async def find_agency_booking(agency_id: UUID, partner_uuid: str) -> AgencyBooking | None:
    """The agency's booking with its own uuid, if it made one."""
    row = (
        await Booking.select()
        .where((Booking.agency == agency_id) & (Booking.partner_uuid == partner_uuid))
        .first()
        .run()
    )
    return _typed(BookingRow.from_row(row)) if row is not None else None


async def agency_booking(booking_id: UUID) -> AgencyBooking | None:
    """The booking, if an agency made it (None for a tourist's or an unknown one)."""
    row = await Booking.select().where(Booking.id == booking_id).first().run()
    return (
        _typed(BookingRow.from_row(row)) if row is not None and row["agency"] is not None else None
    )


async def agency_bookings(
    agency_id: UUID, *, reseller_reference: str | None = None, reference: str | None = None
) -> list[AgencyBooking]:
    """The agency's bookings, oldest first, with the given references if any."""
    select = Booking.select().where(Booking.agency == agency_id)
    if reseller_reference is not None:
        select = select.where(Booking.reseller_reference == reseller_reference)
    if reference is not None:
        select = select.where(Booking.reference == reference)
    return [
        _typed(BookingRow.from_row(row)) for row in await select.order_by(Booking.created_at).run()
    ]


async def agency_booking_lines(booking: AgencyBooking) -> list[AgencyBookingLine]:
    """The passengers of the booking on its current departure, in order."""
    rows = (
        await BookingLine.select()
        .where(
            (BookingLine.booking == booking.id) & (BookingLine.departure == booking.departure_id)
        )
        .order_by(BookingLine.position)
        .run()
    )
    return [_typed_line(row) for row in rows]


def _typed_line(row: dict[str, Any]) -> AgencyBookingLine:
    return AgencyBookingLine(
        position=row["position"], seat_label=row["seat_label"],
        seat_class=row["seat_class"], passenger_type=row["passenger_type"],
        passenger_name=row["passenger_name"], price_amount=row["price_amount"],
        retail_amount=row["retail_amount"], checked_in_at=row["checked_in_at"],
        passenger_email=row["passenger_email"], passenger_phone=row["passenger_phone"],
        passenger_country=row["passenger_country"], passenger_notes=row["passenger_notes"],
        partner_uuid=row["partner_uuid"], reseller_reference=row["reseller_reference"],
    )  # fmt: skip


async def cancellation_reason(booking_id: UUID) -> str | None:
    """The agency's own words when it cancelled, else why we did (e.g. departure_cancelled)."""
    event = (
        await BookingEvent.select(BookingEvent.reason, BookingEvent.details)
        .where(
            (BookingEvent.booking == booking_id)
            & (BookingEvent.to_status == BookingStatus.cancelled.value)
        )
        .order_by(BookingEvent.at, ascending=False)
        .first()
        .output(load_json=True)
        .run()
    )
    if event is None:
        return None
    details = event["details"] if isinstance(event["details"], dict) else {}
    return str(details.get("note") or event["reason"])


async def lock_agency_booking(booking_id: UUID) -> AgencyBooking:
    """Lock the booking (its departure first) inside the caller's write transaction, for
    checks of the agency's contract (credit, cut-off) that its change must not outrun."""
    booking, _departure = await lock_booking(booking_id)
    return _typed(booking)


async def set_reseller_reference(booking_id: UUID, reseller_reference: str) -> None:
    """The agency's own reference for its booking."""
    await (
        Booking.update({Booking.reseller_reference: reseller_reference[:64]})
        .where(Booking.id == booking_id)
        .run()
    )


async def record_agency_contact(booking_id: UUID, contact: AgencyContact) -> None:
    """Store the lead contact and the travellers' names of a hold (the lead's name for
    each traveller the agency did not name, unless the line has one already)."""
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        if not state.hold_running(booking.status, booking.expires_at):
            raise Conflict(_("Only a booking on hold can be changed."), code="booking_not_on_hold")
        await _write_contact(booking, contact)


async def update_agency_booking(booking_id: UUID, contact: AgencyContact) -> None:
    """An agency's change to its running hold or confirmed booking: lead contact, notes,
    its reference, travellers' names. Its contract's cut-off is the caller's check, made
    under the same lock (`lock_agency_booking`)."""
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        running = state.hold_running(booking.status, booking.expires_at)
        if not running and booking.status != BookingStatus.confirmed:
            raise Conflict(
                _("Only a booking on hold or confirmed can be changed."),
                code="booking_not_changeable",
            )
        await _write_contact(booking, contact)


async def _write_contact(booking: BookingRow, contact: AgencyContact) -> None:
    """`contact` onto the locked booking and its lines."""
    name = contact.name[:120]
    changes: dict[Any, Any] = {
        Booking.contact_name: name,
        Booking.contact_email: contact.email[:254],
        Booking.contact_phone: contact.phone[:32],
        Booking.locale: contact.locale,
        Booking.reseller_reference: (contact.reseller_reference or booking.reseller_reference)[:64],
        Booking.updated_at: clock.now(),
    }
    if contact.contact_notes is not None:
        changes[Booking.contact_notes] = contact.contact_notes[:2000]
    if contact.notes is not None:
        changes[Booking.notes] = contact.notes[:2000]
    if contact.country is not None:
        changes[Booking.contact_country] = contact.country[:2]
    if contact.postal_code is not None:
        changes[Booking.contact_postal_code] = contact.postal_code[:16]
    await Booking.update(changes).where(Booking.id == booking.id).run()
    lines = (
        await BookingLine.select()
        .where(
            (BookingLine.booking == booking.id) & (BookingLine.departure == booking.departure_id)
        )
        .order_by(BookingLine.position)
        .run()
    )
    for index, line in enumerate(lines):
        given = contact.travellers[index] if index < len(contact.travellers) else UnitTraveller()
        fields = {
            BookingLine.passenger_name: (given.name, 120),
            BookingLine.passenger_email: (given.email, 254),
            BookingLine.passenger_phone: (given.phone, 32),
            BookingLine.passenger_country: (given.country, 2),
            BookingLine.passenger_notes: (given.notes, 2000),
            BookingLine.reseller_reference: (given.reseller_reference, 64),
            BookingLine.partner_uuid: (given.partner_uuid, 64),
        }
        updates: dict[Any, Any] = {
            column: value[:limit]
            for column, (value, limit) in fields.items()
            if value is not None and value[:limit] != line[column._meta.name]
        }
        if not (updates.get(BookingLine.passenger_name) or line["passenger_name"]) and name:
            updates[BookingLine.passenger_name] = name
        if updates:
            await BookingLine.update(updates).where(BookingLine.id == line["id"]).run()


async def cancel_agency_booking(booking_id: UUID, *, actor: str, note: str) -> None:
    """Cancel an agency's booking, refunding all it paid: its contract's terms (checked
    by the partner API), not the route's policy, say what it may cancel."""
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        await cancel_booking(
            booking, actor=actor, reason="cancelled_by_agency", full_refund=True, note=note
        )
