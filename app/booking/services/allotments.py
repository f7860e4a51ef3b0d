"""Allotments: seats of a class on a departure kept for one agency until a release time.

The rule itself (who may take which seats) is in the inventory: the unused seats of a
running allotment count as taken for everybody but its agency. Here an operator makes,
changes and ends allotments, and the release job gives unused seats back to general sale
once, at the release time, offering them to the waiting list and telling the agency
(`AllotmentReleased`). The partners domain checks the operator's agency before calling.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.booking.events import AllotmentReleased
from app.booking.rows import DepartureRow
from app.booking.schemas import AllotmentCreate, AllotmentOut, AllotmentUpdate
from app.booking.services.availability import class_counts, used_by_allotments
from app.booking.services.inventory import lock_departure
from app.booking.services.waitlist import seats_freed
from app.booking.tables import Allotment
from app.catalogue.services.common import owned_departure, require_aware
from app.catalogue.tables import Departure, DepartureStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.events import publish
from app.core.i18n import _, ngettext

# When no release time is given, unused seats return to general sale this long before
# departure.
DEFAULT_RELEASE_BEFORE = timedelta(days=3)


async def _out(rows: list[dict[str, Any]]) -> list[AllotmentOut]:
    used = await used_by_allotments([row["id"] for row in rows])
    departures = {
        d["id"]: d["departs_at"]
        for d in await Departure.select(Departure.id, Departure.departs_at)
        .where(Departure.id.is_in([row["departure"] for row in rows] or [None]))
        .run()
    }
    return [
        AllotmentOut(
            id=row["id"],
            agency_id=row["agency"],
            departure_id=row["departure"],
            departs_at=departures[row["departure"]],
            seat_class=row["seat_class"],
            seats=row["seats"],
            used=used.get(row["id"], 0),
            unused=0
            if row["released_at"] or row["release_at"] <= clock.now()
            else max(0, row["seats"] - used.get(row["id"], 0)),
            release_at=row["release_at"],
            released_at=row["released_at"],
            released_seats=row["released_seats"],
        )
        for row in rows
    ]


async def _owned(agency_id: UUID, allotment_id: UUID) -> dict[str, Any]:
    row = (
        await Allotment.select()
        .where((Allotment.id == allotment_id) & (Allotment.agency == agency_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("Allotment not found."), code="allotment_not_found")
    return dict(row)


def _release_at(departure: DepartureRow, given: Any) -> Any:
    if given is None:
        release_at = departure.departs_at - DEFAULT_RELEASE_BEFORE
    else:
        release_at = require_aware("release_at", given)
        if release_at > departure.departs_at:
            raise InvalidInput("release_at", _("Release the seats before the departure."))
    if release_at <= clock.now():
        raise InvalidInput("release_at", _("The release time must be in the future."))
    return release_at


async def _check_fits(departure: DepartureRow, seat_class: str, field: str) -> None:
    """Inside the departure's lock, after the change: no one may be promised seats that
    are not there. Raises (rolling the change back) when the allotments overcommit."""
    counts = (await class_counts([departure.id]))[departure.id].get(seat_class)
    if counts is None:
        raise InvalidInput(
            "seat_class",
            _("This departure has no seat class {seat_class}.").format(seat_class=seat_class),
        )
    short = counts.held + counts.sold + counts.allotted - counts.capacity
    if short > 0:
        raise Conflict(
            _("Not enough free seats of class {seat_class} for this allotment.").format(
                seat_class=seat_class
            ),
            code="not_enough_seats",
            errors=[
                FieldError(
                    field=field,
                    message=ngettext(
                        "{count} seat too many.", "{count} seats too many.", short
                    ).format(count=short),
                )
            ],
        )


async def create_allotment(
    principal: OperatorPrincipal, agency_id: UUID, data: AllotmentCreate
) -> AllotmentOut:
    """Keep seats for the agency, one of the operator's (the caller checked which)."""
    require_operator_admin(principal)
    async with write_transaction():
        await owned_departure(principal, data.departure_id)
        departure = await lock_departure(data.departure_id)
        if departure.status not in (DepartureStatus.draft, DepartureStatus.published):
            raise Conflict(_("This departure is no longer on sale."), code="sales_closed")
        exists = (
            await Allotment.exists()
            .where(
                (Allotment.agency == agency_id)
                & (Allotment.departure == data.departure_id)
                & (Allotment.seat_class == data.seat_class)
            )
            .run()
        )
        if exists:
            raise Conflict(
                _("This agency already has an allotment of this class on this departure."),
                code="allotment_exists",
            )
        row = Allotment(
            agency=agency_id, departure=data.departure_id, seat_class=data.seat_class,
            seats=data.seats, release_at=_release_at(departure, data.release_at),
            created_at=clock.now(),
        )  # fmt: skip
        await row.save().run()
        await _check_fits(departure, data.seat_class, "seats")
    stored = await Allotment.select().where(Allotment.id == row.id).first().run()
    assert stored is not None
    return (await _out([dict(stored)]))[0]


async def list_allotments(agency_id: UUID) -> list[AllotmentOut]:
    rows = (
        await Allotment.select()
        .where(Allotment.agency == agency_id)
        .order_by(Allotment.release_at)
        .run()
    )
    return await _out([dict(row) for row in rows])


async def update_allotment(
    principal: OperatorPrincipal, agency_id: UUID, allotment_id: UUID, data: AllotmentUpdate
) -> AllotmentOut:
    """More or fewer seats, or another release time, while the allotment runs."""
    require_operator_admin(principal)
    found = await _owned(agency_id, allotment_id)
    async with write_transaction():
        departure = await lock_departure(found["departure"])
        row = await _owned(agency_id, allotment_id)
        if row["released_at"] is not None or row["release_at"] <= clock.now():
            raise Conflict(_("This allotment has been released."), code="allotment_released")
        values: dict[Any, Any] = {}
        if data.seats is not msgspec.UNSET:
            values[Allotment.seats] = data.seats
        if data.release_at is not msgspec.UNSET:
            values[Allotment.release_at] = _release_at(departure, data.release_at)
        if values:
            await Allotment.update(values).where(Allotment.id == allotment_id).run()
            await _check_fits(departure, row["seat_class"], "seats")
            if data.seats is not msgspec.UNSET and data.seats < row["seats"]:
                await seats_freed(departure)
    return (await _out([await _owned(agency_id, allotment_id)]))[0]


async def delete_allotment(
    principal: OperatorPrincipal, agency_id: UUID, allotment_id: UUID
) -> None:
    """End the allotment now: its unused seats go back to general sale at once."""
    require_operator_admin(principal)
    found = await _owned(agency_id, allotment_id)
    async with write_transaction():
        departure = await lock_departure(found["departure"])
        await Allotment.delete().where(Allotment.id == allotment_id).run()
        await seats_freed(departure)


async def release_due_allotments(limit: int = 200) -> int:
    """Give the unused seats of allotments past their release time back to general sale,
    once each (the release is a conditional update), and tell the agency."""
    due = (
        await Allotment.select(Allotment.id, Allotment.departure)
        .where(Allotment.released_at.is_null() & (Allotment.release_at <= clock.now()))
        .order_by(Allotment.release_at)
        .limit(limit)
        .run()
    )
    released = 0
    for allotment in due:
        async with write_transaction():
            departure = await lock_departure(allotment["departure"])
            row = await Allotment.select().where(Allotment.id == allotment["id"]).first().run()
            if row is None or row["released_at"] is not None:
                continue
            used = (await used_by_allotments([row["id"]])).get(row["id"], 0)
            unused = max(0, row["seats"] - used)
            now = clock.now()
            done = (
                await Allotment.update(
                    {Allotment.released_at: now, Allotment.released_seats: unused}
                )
                .where((Allotment.id == row["id"]) & Allotment.released_at.is_null())
                .returning(Allotment.id)
                .run()
            )
            if not done:
                continue
            released += 1
            if unused:
                await seats_freed(departure)
            await publish(
                AllotmentReleased(
                    allotment_id=row["id"], agency_id=row["agency"],
                    departure_id=row["departure"], seat_class=row["seat_class"],
                    seats=row["seats"], used=used, released=unused,
                )
            )  # fmt: skip
    return released
