"""What the catalogue tells the others (`app.core.events`)."""

from __future__ import annotations

from uuid import UUID

from app.core.events import Event


class DepartureChanged(Event, frozen=True, kw_only=True):
    """A departure with live bookings changed what its travellers were told (times, stops)."""

    name = "departure.changed"

    departure_id: UUID
    # When the change was made (ISO 8601): one event per change.
    version: str
    changes: list[str]

    @property
    def key(self) -> str:
        return f"{self.name}:{self.departure_id}:{self.version}"


class DepartureCancelled(Event, frozen=True, kw_only=True):
    """A departure was cancelled with its bookings."""

    name = "departure.cancelled"

    departure_id: UUID

    @property
    def key(self) -> str:
        return f"{self.name}:{self.departure_id}"
