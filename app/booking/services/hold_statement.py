"""A booking hold on PostgreSQL in two statements: one read, one write.

The read takes what a hold needs that is not inventory (the departure, its route and
operator, the chosen pick-up stop, the fares) in one query. The write is
`booking_hold(...)` (migration 000031), run on its own: it locks the departure row, finds
the free seats after the lock, chooses and prices the party's seats and inserts the
booking, its lines and its audit event, or says why it did not. A statement run on its
own commits with its answer, so a hold is two round trips; inside a caller's transaction
(an idempotent request) it is two statements of that transaction.

`app.booking.services.hold` turns the outcomes into its answers and errors, and keeps the
multi-statement transaction for SQLite and for what this does not do (expiring run-out
holds first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from app.booking.rows import DepartureRow
from app.booking.tables import Booking
from app.catalogue.services.fares import EffectiveFares, FareKey, merged_fares
from app.catalogue.tables import Departure
from app.core.money import Money

# The departure, its route's and operator's part of a booking, the chosen pick-up stop
# (if it is one of the departure's and people board there) and the fares, in one read.
_CONTEXT = """
    SELECT d.id AS id, d.operator AS operator, d.route AS route, d.vehicle AS vehicle,
           d.departs_at AS departs_at, d.returns_at AS returns_at, d.time_zone AS time_zone,
           d.sales_open_at AS sales_open_at, d.sales_close_at AS sales_close_at,
           d.status AS status, d.notes AS notes, d.guide_phone AS guide_phone,
           d.created_at AS created_at, d.updated_at AS updated_at,
           r.status AS route_status, r.slug AS route_slug, r.name AS route_name,
           o.currency AS currency, o.hold_minutes AS hold_minutes,
           o.default_locale AS default_locale,
           st.id AS stop_id, st.name AS stop_name, st.at AS stop_at,
           (SELECT json_agg(json_build_array(
                       f.source, f.seat_class, f.passenger_type, f.amount, f.currency))
            FROM (SELECT 'route' AS source, rf.seat_class, rf.passenger_type, rf.amount,
                         rf.currency
                  FROM route_fare rf WHERE rf.route = d.route
                  UNION ALL
                  SELECT 'departure', df.seat_class, df.passenger_type, df.amount,
                         df.currency
                  FROM departure_fare df WHERE df.departure = d.id) f)::text AS fares
    FROM departure d
    JOIN route r ON r.id = d.route
    JOIN operator o ON o.id = d.operator
    LEFT JOIN departure_stop st
      ON st.id = {} AND st.departure = d.id AND st.kind IN ('boarding', 'pickup')
    WHERE d.id = {}
"""

_FARE_ROWS = msgspec.json.Decoder(list[tuple[str, str, str, int, str]])


@dataclass(frozen=True, slots=True)
class HoldContext:
    departure: DepartureRow
    route_status: str
    route_slug: str
    route_name: Any
    currency: str
    hold_minutes: int
    default_locale: str
    # The pick-up stop's id, name and time, if one was asked for and is the departure's.
    stop: dict[str, Any] | None
    fares: EffectiveFares


async def read_context(departure_id: UUID, stop_id: UUID | None) -> HoldContext | None:
    """What a hold of `departure_id` needs besides its seats; None if there is no such
    departure. Not inventory: read before the lock, whose row stays the authority."""
    rows = await Departure.raw(_CONTEXT, stop_id, departure_id).run()
    if not rows:
        return None
    row = rows[0]
    by_source: dict[str, dict[FareKey, Money]] = {"route": {}, "departure": {}}
    for source, seat_class, kind, amount, currency in _FARE_ROWS.decode(row["fares"] or "[]"):
        by_source[source][(seat_class, kind)] = Money(amount=amount, currency=currency)
    stop = None
    if row["stop_id"] is not None:
        stop = {"id": row["stop_id"], "name": row["stop_name"], "at": row["stop_at"]}
    return HoldContext(
        departure=DepartureRow.from_row(row),
        route_status=row["route_status"],
        route_slug=row["route_slug"],
        route_name=row["route_name"],
        currency=row["currency"],
        hold_minutes=row["hold_minutes"],
        default_locale=row["default_locale"],
        stop=stop,
        fares=merged_fares(by_source["route"], by_source["departure"]),
    )


class Outcome(msgspec.Struct, frozen=True):
    """What `booking_hold` answered (see migration 000031 for each `outcome`)."""

    outcome: str
    index: int | None = None
    seat_class: str | None = None
    free: int | None = None
    # `unsellable`: the departure as locked.
    status: str | None = None
    departs_at: datetime | None = None
    sales_open_at: datetime | None = None
    sales_close_at: datetime | None = None
    # `held`: when the hold runs out, and per line its seat, label, class and prices.
    expires_at: datetime | None = None
    seats: list[UUID] = []
    labels: list[str] = []
    classes: list[str] = []
    retail: list[int] = []
    charged: list[int] = []
    currencies: list[str] = []


_OUTCOME = msgspec.json.Decoder(Outcome)


@dataclass(frozen=True, slots=True)
class Line:
    """One line to hold: a seat of a class (counts) or a seat by label, for a passenger."""

    seat_class: str | None
    label: str | None
    passenger_type: str
    name: str
    id_document: str


@dataclass(frozen=True, slots=True)
class Fare:
    """What one (class, passenger type) costs: the retail price and what the booker pays."""

    seat_class: str
    passenger_type: str
    retail: int
    charged: int
    currency: str


_HOLD = "SELECT booking_hold(" + ", ".join(["{}"] * 27) + ") AS outcome"


async def hold(
    *,
    departure_id: UUID,
    now: datetime,
    agency_id: UUID | None,
    booking_id: UUID,
    reference: str,
    token_hash: str,
    channel: str,
    hold_minutes: int,
    pickup_stop_id: UUID | None,
    contact: tuple[str, str, str, str],
    currency: str,
    partner_uuid: str | None,
    actor: str,
    lines: list[Line],
    fares: list[Fare],
    agency_net: bool,
) -> Outcome:
    """Run `booking_hold`: the hold made, or why not (nothing written then)."""
    by_label = lines[0].label is not None if lines else False
    name, email, phone, locale = contact
    rows = await Booking.raw(
        _HOLD,
        departure_id, now, agency_id, booking_id, reference, token_hash, channel,
        hold_minutes, pickup_stop_id, name, email, phone, locale, currency, partner_uuid,
        actor,
        [line.seat_class for line in lines], [line.passenger_type for line in lines],
        [line.label for line in lines] if by_label else None,
        [line.name for line in lines], [line.id_document for line in lines],
        [fare.seat_class for fare in fares], [fare.passenger_type for fare in fares],
        [fare.retail for fare in fares], [fare.charged for fare in fares],
        [fare.currency for fare in fares], agency_net,
    ).run()  # fmt: skip
    return _OUTCOME.decode(rows[0]["outcome"])
