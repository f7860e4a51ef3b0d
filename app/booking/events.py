"""What the booking domain tells the others (`app.core.events`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from app.core.events import Event


class BookingStatusChanged(Event, frozen=True, kw_only=True):
    """A booking reached a new status (`name` says which)."""

    booking_id: UUID
    reference: str
    reason: str
    # Set for an agency's booking: the agency hears of it.
    agency_id: UUID | None = None
    # Owed back to the payer because of this change (minor units of `currency`).
    refund_amount: int = 0
    currency: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}:{self.reference}"


class BookingConfirmed(BookingStatusChanged, frozen=True, kw_only=True):
    name = "booking.confirmed"


class BookingCancelled(BookingStatusChanged, frozen=True, kw_only=True):
    name = "booking.cancelled"


class BookingExpired(BookingStatusChanged, frozen=True, kw_only=True):
    name = "booking.expired"


class BookingChanged(Event, frozen=True, kw_only=True):
    """A live booking changed without changing status: rebooked, passengers boarded."""

    name = "booking.changed"

    booking_id: UUID
    reference: str
    # The BookingEvent that records the change: one event per change.
    change_id: UUID
    reason: str
    agency_id: UUID | None = None
    refund_amount: int = 0
    currency: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}:{self.reference}:{self.change_id}"


class ChangeReverted(Event, frozen=True, kw_only=True):
    """A pending change (a move waiting for its difference) was dropped: its difference was
    not paid in time, another rebooking superseded it, or the booking ended. The seats it
    held on `departure_id` are free again; the booking stays where it was."""

    name = "booking.change_reverted"

    booking_id: UUID
    reference: str
    change_id: UUID
    departure_id: UUID
    reason: str
    agency_id: UUID | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.change_id}"


class SeatsFreed(Event, frozen=True, kw_only=True):
    """Seats of a departure came back on sale, in the transaction that holds its lock."""

    name = "booking.seats_freed"
    stored = False

    departure_id: UUID

    @property
    def key(self) -> str:
        return f"{self.name}:{self.departure_id}"


class WaitlistOfferMade(Event, frozen=True, kw_only=True):
    """Seats were held for a waiting tourist, who has until `expires_at` to pay."""

    name = "waitlist.offer"
    secret_fields = frozenset({"access_token"})

    entry_id: UUID
    reference: str
    # The tourist needs the token to open the offer; the message carries it.
    access_token: str
    email: str
    locale: str
    expires_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.entry_id}"


class BookingLinkRequested(Event, frozen=True, kw_only=True):
    """A fresh link to a booking (a new access token) was made for its contact."""

    name = "booking.link"
    secret_fields = frozenset({"access_token"})

    booking_id: UUID
    token_hash_prefix: str
    email: str
    locale: str
    access_token: str

    @property
    def key(self) -> str:
        return f"{self.name}:{self.booking_id}:{self.token_hash_prefix}"


class AllotmentReleased(Event, frozen=True, kw_only=True):
    """An agency's allotment reached its release time: its unused seats went back on sale."""

    name = "allotment.released"

    allotment_id: UUID
    agency_id: UUID
    departure_id: UUID
    seat_class: str
    # What the allotment kept, what the agency used of it, and what went back on sale.
    seats: int
    used: int
    released: int

    @property
    def key(self) -> str:
        return f"{self.name}:{self.allotment_id}"


BOOKING_STATUS_EVENTS: dict[str, type[BookingStatusChanged]] = {
    event.name: event for event in (BookingConfirmed, BookingCancelled, BookingExpired)
}
