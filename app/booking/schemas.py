"""Request and response structures of bookings.

Inputs forbid unknown fields: a client sending `status`, `total`, `price` or an owner gets a
400 naming that field. Prices and totals are always computed on the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.booking.tables import BookingStatus, WaitlistStatus
from app.catalogue.schemas.common import SeatClass, SeatLabel
from app.catalogue.schemas.crew import CrewMemberOut
from app.catalogue.schemas.departures import DepartureOut
from app.catalogue.schemas.public import TripDay
from app.catalogue.schemas.routes import PolicyTierOut
from app.catalogue.tables import PassengerType
from app.core.money import PriceOut
from app.core.schemas import Email, Phone

MAX_PARTY = 10

PersonName = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
IdDocument = Annotated[str, msgspec.Meta(min_length=4, max_length=64, pattern="^[A-Za-z0-9 -]+$")]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are an error."""


class ClassCount(Input, kw_only=True):
    seat_class: SeatClass
    passenger_type: PassengerType = PassengerType.adult
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTY)]


class SeatChoice(Input, kw_only=True):
    label: SeatLabel
    passenger_type: PassengerType = PassengerType.adult


class ContactIn(Input, kw_only=True):
    name: PersonName
    email: Email
    phone: Phone
    locale: Literal["zh_Hans", "en"] = "zh_Hans"


class PassengerIn(Input, kw_only=True):
    """Details of the passenger on the line at the same position."""

    name: PersonName
    id_document: IdDocument | None = None


class BookingCreate(Input, kw_only=True):
    departure_id: UUID
    counts: Annotated[list[ClassCount], msgspec.Meta(min_length=1, max_length=6)] | None = None
    seats: Annotated[list[SeatChoice], msgspec.Meta(min_length=1, max_length=MAX_PARTY)] | None = (
        None
    )
    pickup_stop_id: UUID | None = None
    contact: ContactIn | None = None
    passengers: Annotated[list[PassengerIn], msgspec.Meta(max_length=MAX_PARTY)] | None = None


class BookingUpdate(Input, kw_only=True):
    contact: ContactIn | msgspec.UnsetType = msgspec.UNSET
    passengers: (
        Annotated[list[PassengerIn], msgspec.Meta(max_length=MAX_PARTY)] | msgspec.UnsetType
    ) = msgspec.UNSET
    pickup_stop_id: UUID | msgspec.UnsetType | None = msgspec.UNSET


class RebookIn(Input, kw_only=True):
    departure_id: UUID


class CancelIn(Input, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ContactOut(msgspec.Struct, kw_only=True):
    name: str
    email: str
    phone: str
    locale: str


class BookingLineOut(msgspec.Struct, kw_only=True):
    position: int
    seat_label: str
    seat_class: str
    passenger_type: PassengerType
    price: PriceOut
    passenger_name: str
    has_id_document: bool
    checked_in_at: datetime | None


class PickupOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    at: datetime


class PendingChangeOut(msgspec.Struct, kw_only=True):
    """A move to a dearer departure, waiting for `amount_due`: its seats are held until
    `expires_at`; paid, the booking moves; unpaid, it stays where it is."""

    departure_id: UUID
    departs_at: datetime
    seats: list[str]
    new_total: PriceOut
    amount_due: PriceOut
    expires_at: datetime | None


class AgencyContactOut(msgspec.Struct, kw_only=True):
    """The agency that made a booking: the one to ask to change, cancel or pay for it."""

    name: str
    email: str
    phone: str | None


class BookingOut(msgspec.Struct, kw_only=True):
    reference: str
    status: BookingStatus
    departure_id: UUID
    route_slug: str
    route_name: str
    departs_at: datetime
    time_zone: str
    expires_at: datetime | None
    pickup_stop: PickupOut | None
    contact: ContactOut | None
    lines: list[BookingLineOut]
    total: PriceOut
    refund: PriceOut | None
    balance_due: PriceOut | None
    created_at: datetime
    pending_change: PendingChangeOut | None = None
    # The trip day by day on its dates (sights, meals, where the night is spent, when to be
    # back on board); null in the answer that holds the seats.
    itinerary: list[TripDay] | None = None
    # Set when an agency made the booking: the agency (or the operator), not its
    # traveller, changes, cancels or pays for it; the traveller can see it and its ticket.
    agency: AgencyContactOut | None = None


class BookingCreated(msgspec.Struct, kw_only=True):
    """The new booking and its access token, which is shown this once."""

    access_token: str
    booking: BookingOut


class CancellationOut(msgspec.Struct, kw_only=True):
    refund: PriceOut
    refund_percent: int
    booking: BookingOut


class CancellationQuote(msgspec.Struct, kw_only=True):
    """What cancelling now would refund under the policy, before the guest confirms."""

    refund: PriceOut
    refund_percent: int
    policy: list[PolicyTierOut]
    booking: BookingOut


class WaitlistIn(Input, kw_only=True):
    seat_class: SeatClass
    party_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTY)]
    contact: ContactIn


class WaitlistOut(msgspec.Struct, kw_only=True):
    id: UUID
    departure_id: UUID
    seat_class: str
    party_size: int
    status: WaitlistStatus
    position: int
    created_at: datetime


# ---------------------------------------------------------------- operator views


class ManifestLine(msgspec.Struct, kw_only=True):
    reference: str
    status: BookingStatus
    seat_label: str
    seat_class: str
    car: int | None
    compartment: int | None
    passenger_type: PassengerType
    passenger_name: str
    pickup_stop: str | None
    pickup_at: datetime | None
    contact_name: str
    contact_phone: str
    checked_in_at: datetime | None


class Manifest(msgspec.Struct, kw_only=True):
    departure_id: UUID
    route_slug: str
    departs_at: datetime
    time_zone: str
    passengers: int
    checked_in: int
    lines: list[ManifestLine]
    # Who travels with the departure besides its passengers.
    crew: list[CrewMemberOut] = []


class CheckInIn(Input, kw_only=True):
    reference: Annotated[str, msgspec.Meta(min_length=6, max_length=12)]
    seat_labels: list[SeatLabel] | None = None


class CheckInOut(msgspec.Struct, kw_only=True):
    reference: str
    checked_in: list[str]
    already_checked_in: list[str]


class ClassSales(msgspec.Struct, kw_only=True):
    seat_class: str
    capacity: int
    sold: int
    held: int
    # Unused seats kept for agencies by their running allotments.
    allotted: int
    free: int


class SalesOverview(msgspec.Struct, kw_only=True):
    departure_id: UUID
    classes: list[ClassSales]
    bookings_confirmed: int
    bookings_on_hold: int
    revenue: PriceOut
    refunds_owed: PriceOut


class DepartureLoad(msgspec.Struct, kw_only=True):
    """A departure on the operator's board: its line and its seats per class."""

    departure: DepartureOut
    route_name: str
    classes: list[ClassSales]


class DepartureCancellationOut(msgspec.Struct, kw_only=True):
    departure: DepartureOut
    bookings_cancelled: int
    refunds_total: PriceOut


# Allotments: an operator keeps seats for one of its partner agencies.


class AllotmentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    departure_id: UUID
    # Checked against the departure's seat classes, not against a pattern.
    seat_class: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    seats: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    # Default: three days before departure.
    release_at: datetime | None = None


class AllotmentUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seats: Annotated[int, msgspec.Meta(ge=1, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    release_at: datetime | msgspec.UnsetType = msgspec.UNSET


class AllotmentOut(msgspec.Struct, kw_only=True):
    id: UUID
    agency_id: UUID
    departure_id: UUID
    departs_at: datetime
    seat_class: str
    seats: int
    # Seats of the class the agency holds or has sold on the departure.
    used: int
    # Still kept for the agency (0 once released).
    unused: int
    release_at: datetime
    released_at: datetime | None
    released_seats: int
