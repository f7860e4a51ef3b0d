"""Reading the tourist's booking forms: passengers and seats to hold, contact and passenger
details, and the choices (fares, seat groups, pickup stops) the booking form offers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from litestar.datastructures import FormMultiDict

from app.booking.schemas import BookingCreate, BookingOut, BookingUpdate, ClassCount, SeatChoice
from app.catalogue.schemas.public import PublicDepartureDetail, PublicSeat, PublicStop
from app.catalogue.tables import PassengerType, StopKind
from app.core.i18n import _, current_locale
from app.web.forms import FormProblems, convert, small_number, text


def _seat_groups(seats: list[PublicSeat]) -> list[tuple[str, list[PublicSeat]]]:
    """Seats as the vehicle has them: a train by car (berths by compartment), a bus whole."""
    groups: dict[int | None, list[PublicSeat]] = defaultdict(list)
    for seat in seats:
        groups[seat.car].append(seat)
    return [
        (_("Car {number}").format(number=car) if car is not None else _("Seats"), members)
        for car, members in groups.items()
    ]


def _pickups(departure: PublicDepartureDetail) -> list[PublicStop]:
    """The stops a tourist may board at (not drop-offs)."""
    return [stop for stop in departure.stops if stop.kind != StopKind.dropoff]


def _fares_by_class(departure: PublicDepartureDetail) -> dict[str, list[Any]]:
    by_class: dict[str, list[Any]] = defaultdict(list)
    order = {kind.value: index for index, kind in enumerate(PassengerType)}
    for fare in sorted(departure.fares, key=lambda f: order[f.passenger_type]):
        by_class[fare.seat_class].append(fare)
    return by_class


def _count_field(seat_class: str, passenger_type: str) -> str:
    return f"count.{seat_class}.{passenger_type}"


def _booking_from_form(
    departure: PublicDepartureDetail, seat_map: list[PublicSeat], form: FormMultiDict
) -> tuple[BookingCreate | None, FormProblems]:
    """The hold the form asks for: counts per class and passenger type, and, when the reader
    picked seats, exactly as many seats in each class as passengers counted for it."""
    problems = FormProblems()
    counts: list[ClassCount] = []
    for fare in departure.fares:
        name = _count_field(fare.seat_class, fare.passenger_type)
        number = small_number(text(form, name) or "0")
        if number is None:
            problems.add(name, _("Give a whole number."))
            continue
        if number:
            count = convert(
                {"seat_class": fare.seat_class, "passenger_type": fare.passenger_type,
                 "count": number},
                ClassCount, FormProblems(),
            )  # fmt: skip
            if count is None:
                problems.add(name, _("Choose from 0 to 10."))
            else:
                counts.append(count)
    if not counts and not problems:
        problems.add("counts", _("Choose at least one passenger."))
    picked = [label for label in form.getall("seat", []) if isinstance(label, str)]
    seats_by_label = {seat.label: seat for seat in seat_map}
    choices: list[SeatChoice] | None = None
    if picked and not problems:
        unknown = [label for label in picked if label not in seats_by_label]
        if unknown:
            problems.add("seat", _("Seat {label} is not on this vehicle.").format(label=unknown[0]))
        else:
            choices = _pair_seats(picked, seats_by_label, counts, problems)
    pickup = text(form, "pickup_stop_id") or None
    if pickup is not None and pickup not in {str(stop.id) for stop in _pickups(departure)}:
        problems.add("pickup_stop_id", _("Choose one of the listed stops."))
        pickup = None
    if problems:
        return None, problems
    data = BookingCreate(
        departure_id=departure.id,
        counts=None if choices else counts,
        seats=choices,
        pickup_stop_id=UUID(pickup) if pickup else None,
    )
    return data, problems


def _pair_seats(
    picked: list[str],
    seats_by_label: dict[str, PublicSeat],
    counts: list[ClassCount],
    problems: FormProblems,
) -> list[SeatChoice] | None:
    wanted: dict[str, list[PassengerType]] = defaultdict(list)
    for count in counts:
        wanted[count.seat_class].extend([count.passenger_type] * count.count)
    chosen: dict[str, list[str]] = defaultdict(list)
    for label in dict.fromkeys(picked):
        chosen[seats_by_label[label].seat_class].append(label)
    for seat_class in set(wanted) | set(chosen):
        if len(chosen[seat_class]) != len(wanted[seat_class]):
            problems.add(
                "seat",
                _(
                    "Pick one seat per passenger in each class ({picked} picked, {needed} "
                    "passengers), or pick none and let us choose."
                ).format(picked=len(chosen[seat_class]), needed=len(wanted[seat_class])),
            )
            return None
    return [
        SeatChoice(label=label, passenger_type=passenger_type)
        for seat_class, labels in chosen.items()
        for label, passenger_type in zip(labels, wanted[seat_class], strict=True)
    ]


def _contact(form: FormMultiDict, problems: FormProblems) -> dict[str, str]:
    """The contact fields of a form, in the reader's language; every empty one is named at
    once, not one per attempt."""
    for name in ("contact.name", "contact.email", "contact.phone"):
        if not text(form, name):
            problems.add(name, _("This field is required."))
    return {
        "name": text(form, "contact.name"),
        "email": text(form, "contact.email"),
        "phone": text(form, "contact.phone"),
        "locale": current_locale(),
    }


def _details_from_form(
    booking: BookingOut, form: FormMultiDict
) -> tuple[BookingUpdate | None, FormProblems]:
    problems = FormProblems()
    passengers = []
    for index, _line in enumerate(booking.lines):
        passenger: dict[str, Any] = {"name": text(form, f"passengers[{index}].name")}
        document = text(form, f"passengers[{index}].id_document")
        if document:
            passenger["id_document"] = document
        passengers.append(passenger)
    pickup = text(form, "pickup_stop_id")
    data: dict[str, Any] = {"contact": _contact(form, problems), "passengers": passengers}
    if "pickup_stop_id" in form:
        data["pickup_stop_id"] = pickup or None
    for index, passenger in enumerate(passengers):
        if not passenger["name"]:
            problems.add(f"passengers[{index}].name", _("This field is required."))
    if problems:
        return None, problems
    return convert(data, BookingUpdate, problems), problems
