"""Bookings, their passenger lines, audit trail, waiting list, agencies' allotments.

The inventory invariant lives in the database: a partial unique index on
booking_line (departure, seat) WHERE live, created in a migration, lets a seat belong
to at most one live booking line per departure.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.reference import LazyTableReference
from piccolo.table import Table

from app.accounts.tables import Operator
from app.catalogue.tables import Departure, DepartureStop, Seat


class BookingStatus(StrEnum):
    on_hold = "on_hold"
    confirmed = "confirmed"
    cancelled = "cancelled"
    expired = "expired"


class BookingChannel(StrEnum):
    public = "public"
    agency = "agency"
    waitlist = "waitlist"


class Booking(Table):
    id = UUID(primary_key=True)
    reference = Varchar(length=8, unique=True)
    # SHA-256 of the guest access token; the token itself is shown once and never stored.
    token_hash = Varchar(length=64)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.restrict, null=False, index=True)
    channel = Varchar(length=16, choices=BookingChannel, default=BookingChannel.public)
    status = Varchar(length=16, choices=BookingStatus, default=BookingStatus.on_hold, index=True)
    expires_at = Timestamptz(null=True, default=None, index=True)
    pickup_stop = ForeignKey(DepartureStop, on_delete=OnDelete.set_null, null=True, default=None)
    contact_name = Varchar(length=120, default="")
    contact_email = Varchar(length=254, default="")
    contact_phone = Varchar(length=32, default="")
    locale = Varchar(length=16, default="zh_Hans")
    total_amount = Integer(default=0)
    currency = Varchar(length=3)
    # Money owed back to the tourist after a cancellation or a cheaper rebooking.
    refund_amount = Integer(default=0)
    # Money the tourist still owes after a dearer rebooking.
    balance_due = Integer(default=0)
    cancelled_at = Timestamptz(null=True, default=None)
    confirmed_at = Timestamptz(null=True, default=None)
    # For bookings made by a partner agency: which one, its booking uuid (unique per
    # agency, an index in migrations) and its own reference.
    agency = UUID(null=True, default=None, index=True)
    partner_uuid = Varchar(length=64, null=True, default=None)
    reseller_reference = Varchar(length=64, default="")
    # Agency bookings: the retail price of the seats; `total_amount` is then the net the
    # agency owes (retail less commission, or the contract's net rates).
    retail_amount = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    # The booker's notes for the operator, and notes about its lead contact (e.g. needs).
    notes = Text(default="")
    contact_notes = Text(default="")
    # The lead contact's country (ISO 3166-1 alpha-2) and postal code, where given.
    contact_country = Varchar(length=2, default="")
    contact_postal_code = Varchar(length=16, default="")


class BookingChangeStatus(StrEnum):
    pending = "pending"
    completed = "completed"
    reverted = "reverted"


class BookingChange(Table):
    """A paid booking's move to a dearer departure, waiting for the difference.

    While `pending`, the new seats are held by lines whose `change` is this row and the
    booking stays on its old departure at its old price; the move completes when the
    difference is paid, and reverts (the new seats freed) when `expires_at` passes. At
    most one pending change per booking (a partial unique index in migrations)."""

    id = UUID(primary_key=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.cascade, null=False, index=True)
    from_departure = ForeignKey(Departure, on_delete=OnDelete.restrict, null=False)
    to_departure = ForeignKey(Departure, on_delete=OnDelete.restrict, null=False)
    old_total = Integer()
    new_total = Integer()
    # What the payer owes for the move: new_total less what the booking keeps paid.
    amount_due = Integer()
    currency = Varchar(length=3)
    status = Varchar(
        length=16, choices=BookingChangeStatus, default=BookingChangeStatus.pending, index=True
    )
    expires_at = Timestamptz(null=True, default=None, index=True)
    actor = Varchar(length=80, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    decided_at = Timestamptz(null=True, default=None)


class BookingLine(Table):
    """One passenger: a seat or berth on the booking's departure, at a price."""

    id = UUID(primary_key=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.cascade, null=False, index=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.restrict, null=False, index=True)
    seat = ForeignKey(Seat, on_delete=OnDelete.restrict, null=False)
    seat_label = Varchar(length=16)
    seat_class = Varchar(length=32)
    passenger_type = Varchar(length=16)
    price_amount = Integer()
    currency = Varchar(length=3)
    # Agency bookings: the retail price; `price_amount` is then the agency's net price.
    retail_amount = Integer(null=True, default=None)
    position = Integer(default=0)
    passenger_name = Varchar(length=120, default="")
    id_document = Varchar(length=64, default="")
    # How to reach this passenger, where an agency gave it (OCTO unit item contacts).
    passenger_email = Varchar(length=254, default="")
    passenger_phone = Varchar(length=32, default="")
    passenger_country = Varchar(length=2, default="")
    passenger_notes = Text(default="")
    # Agency bookings: the agency's own uuid and reference for this passenger's unit item.
    partner_uuid = Varchar(length=64, null=True, default=None)
    reseller_reference = Varchar(length=64, default="")
    # True while the booking holds the seat (on hold or confirmed).
    live = Boolean(default=True)
    checked_in_at = Timestamptz(null=True, default=None)
    # Set while the line holds a seat for a pending change (BookingChange), not yet the
    # booking's own.
    change = ForeignKey(BookingChange, on_delete=OnDelete.cascade, null=True, default=None)


class BookingEvent(Table):
    """Audit trail: who changed a booking, when, from what to what, and why."""

    id = UUID(primary_key=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.cascade, null=False, index=True)
    at = Timestamptz(default=TimestamptzNow())
    actor = Varchar(length=80)
    from_status = Varchar(length=16, null=True, default=None)
    to_status = Varchar(length=16)
    reason = Varchar(length=64)
    details = JSON(null=True, default=None)


class WaitlistStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"
    booked = "booked"
    expired = "expired"
    withdrawn = "withdrawn"


class WaitlistEntry(Table):
    id = UUID(primary_key=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    seat_class = Varchar(length=32)
    party_size = Integer()
    contact_name = Varchar(length=120)
    contact_email = Varchar(length=254)
    contact_phone = Varchar(length=32, default="")
    locale = Varchar(length=16, default="zh_Hans")
    status = Varchar(length=16, choices=WaitlistStatus, default=WaitlistStatus.waiting)
    offered_booking = ForeignKey(Booking, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    notes = Text(default="")


class Allotment(Table):
    """Seats of a class on a departure that only one agency may book, until `release_at`.

    Counted, not pinned to seats: while it runs, everybody else sees `seats` minus what
    the agency has booked in that class as taken. Unique per (agency, departure, seat
    class), an index in migrations."""

    id = UUID(primary_key=True)
    # The agency's table is the partners' (a domain above booking): named, not imported.
    agency: ForeignKey[Table] = ForeignKey(
        LazyTableReference("Agency", module_path="app.partners.tables"),
        on_delete=OnDelete.cascade,
        null=False,
        index=True,
    )
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    seat_class = Varchar(length=32)
    seats = Integer()
    release_at = Timestamptz(index=True)
    # Set once by the release job; the unused seats it gave back to general sale.
    released_at = Timestamptz(null=True, default=None)
    released_seats = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
