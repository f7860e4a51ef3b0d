"""What an OCTO request says of the people on a booking: the lead contact, the booking's
notes and reference, and each unit item's uuid, reference and contact. Read and checked
in full before anything is written (`parse_contact`), then laid over what the booking has
(`contact_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.booking.services.agency import (
    AgencyBooking,
    AgencyBookingLine,
    AgencyContact,
    UnitTraveller,
)
from app.catalogue.tables import PassengerType
from app.partners import octo
from app.partners.octo_bookings.view import unit_item_uuid


@dataclass(frozen=True, slots=True)
class UnitItemRequest:
    """One of the request's unit items: its unit ("" if not named), the agency's uuid for
    it ("" if none), and what it says of the passenger."""

    unit_id: str
    uuid: str
    traveller: UnitTraveller


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """A request's contact fields, checked; "" or None where it leaves one out."""

    name: str
    email: str
    phone: str
    locale: str | None
    country: str | None
    postal_code: str | None
    contact_notes: str | None
    notes: str | None
    reseller_reference: str | None
    # None: the request has no `unitItems`.
    unit_items: tuple[UnitItemRequest, ...] | None

    @property
    def names_units(self) -> bool:
        """Whether any unit item says more than its unit."""
        return any(item.uuid or item.traveller != UnitTraveller() for item in self.unit_items or ())


def _object(value: Any, field: str) -> dict[str, Any]:
    """An object field of the body ({} when absent or null); any other type is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise octo.OctoError("BAD_REQUEST", f"{field} must be an object", field=field)
    return value


def _full_name(person: dict[str, Any], where: str) -> str:
    full = octo.text_field(person, "fullName", where=f"{where}.fullName")
    parts = [octo.text_field(person, k, where=f"{where}.{k}") for k in ("firstName", "lastName")]
    return (full or " ".join(parts).strip())[:120]


def _country(person: dict[str, Any], where: str) -> str | None:
    """A contact's `country` (ISO 3166-1 alpha-2, upper case); None when not given."""
    country = octo.text_field(person, "country", where=f"{where}.country").strip()
    if not country:
        return None
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        field = f"{where}.country"
        raise octo.OctoError(
            "BAD_REQUEST", f"{field} must be a two-letter ISO 3166-1 code", field=field
        )
    return country.upper()


def _notes(person: dict[str, Any], field: str) -> str | None:
    notes = person.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise octo.OctoError("BAD_REQUEST", f"{field} must be a string", field=field)
    return notes


def _locale(contact: dict[str, Any]) -> str | None:
    """The messages' language from the contact's `locales` (None when none is given)."""
    locales = contact.get("locales")
    if locales is not None and not (
        isinstance(locales, list) and all(isinstance(item, str) for item in locales)
    ):
        field = "contact.locales"
        raise octo.OctoError("BAD_REQUEST", f"{field} must be a list of strings", field=field)
    if not locales:
        return None
    return "en" if locales[0].lower().startswith("en") else "zh_Hans"


def _unit_items(body: dict[str, Any]) -> tuple[UnitItemRequest, ...] | None:
    items = body.get("unitItems")
    if items is None:
        return None
    if not isinstance(items, list):
        raise octo.OctoError("BAD_REQUEST", "unitItems must be a list", field="unitItems")
    parsed: list[UnitItemRequest] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"unitItems[{index}]"
        item = _object(item, where)
        unit_id = octo.text_field(item, "unitId", where=f"{where}.unitId")
        if unit_id and unit_id not in {kind.value for kind in PassengerType}:
            raise octo.OctoError("INVALID_UNIT_ID", "The unit ID was invalid", unitId=unit_id)
        uuid = octo.text_field(item, "uuid", where=f"{where}.uuid").strip()
        if len(uuid) > 64 or uuid in seen:
            field = f"{where}.uuid"
            raise octo.OctoError(
                "BAD_REQUEST", f"{field} must be unique and at most 64 characters", field=field
            )
        if uuid:
            seen.add(uuid)
        person = _object(item.get("contact"), f"{where}.contact")
        reference = octo.text_field(item, "resellerReference", where=f"{where}.resellerReference")
        email = octo.text_field(person, "emailAddress", where=f"{where}.contact.emailAddress")
        phone = octo.text_field(person, "phoneNumber", where=f"{where}.contact.phoneNumber")
        traveller = UnitTraveller(
            name=_full_name(person, f"{where}.contact") or None,
            email=email or None,
            phone=phone or None,
            country=_country(person, f"{where}.contact"),
            notes=_notes(person, f"{where}.contact.notes"),
            reseller_reference=reference or None,
        )
        parsed.append(UnitItemRequest(unit_id=unit_id, uuid=uuid, traveller=traveller))
    return tuple(parsed)


def parse_contact(body: dict[str, Any]) -> ContactRequest:
    """Every contact field of a reserve, confirm, payment or update request, checked
    (BAD_REQUEST naming the field, INVALID_UNIT_ID) before anything is written."""
    contact = _object(body.get("contact"), "contact")
    notes = body.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise octo.OctoError("BAD_REQUEST", "notes must be a string", field="notes")
    postal_code = octo.text_field(contact, "postalCode", where="contact.postalCode").strip()
    if len(postal_code) > 16:
        field = "contact.postalCode"
        raise octo.OctoError("BAD_REQUEST", f"{field} is at most 16 characters", field=field)
    return ContactRequest(
        name=_full_name(contact, "contact"),
        email=octo.text_field(contact, "emailAddress", where="contact.emailAddress"),
        phone=octo.text_field(contact, "phoneNumber", where="contact.phoneNumber"),
        locale=_locale(contact),
        country=_country(contact, "contact"),
        postal_code=postal_code or None,
        contact_notes=_notes(contact, "contact.notes"),
        notes=notes,
        reseller_reference=octo.text_field(body, "resellerReference") or None,
        unit_items=_unit_items(body),
    )


def _travellers(
    items: tuple[UnitItemRequest, ...] | None,
    booking: AgencyBooking,
    lines: list[AgencyBookingLine],
) -> tuple[UnitTraveller, ...]:
    """The unit items laid on the booking's passengers, in the booking's order. An item
    names its passenger by `uuid` (ours, or the agency's own given before), else it takes
    the next passenger of its `unitId` (the booking's order groups units by kind, the
    request's need not); an agency's own new `uuid` is recorded for that passenger. The
    items must be the booking's units: none added, removed or changed."""
    if items is None:
        return ()
    known: dict[str, int] = {}
    for position, line in enumerate(lines):
        known[unit_item_uuid(booking.id, line.position)] = position
        if line.partner_uuid:
            known[line.partner_uuid] = position
    changed = octo.unprocessable(
        "unitItems must list the booking's units (adding, removing or changing units is "
        "not possible: cancel and reserve again)"
    )
    if len(items) != len(lines):
        raise changed
    placed: list[UnitTraveller | None] = [None] * len(lines)
    for item in items:
        place = known.get(item.uuid) if item.uuid else None
        if place is None:
            place = next(
                (
                    free
                    for free, line in enumerate(lines)
                    if placed[free] is None and item.unit_id in ("", line.passenger_type)
                ),
                None,
            )
        if place is None or placed[place] is not None:
            raise changed
        if item.unit_id and item.unit_id != lines[place].passenger_type:
            raise changed
        new_uuid = item.uuid if item.uuid and item.uuid not in known else None
        placed[place] = UnitTraveller(
            name=item.traveller.name,
            email=item.traveller.email,
            phone=item.traveller.phone,
            country=item.traveller.country,
            notes=item.traveller.notes,
            partner_uuid=new_uuid,
            reseller_reference=item.traveller.reseller_reference,
        )
    return tuple(traveller or UnitTraveller() for traveller in placed)


def contact_of(
    request: ContactRequest, booking: AgencyBooking, lines: list[AgencyBookingLine], *,
    required: bool,
) -> AgencyContact:  # fmt: skip
    """The request's contact fields laid over what the booking has (a field left out
    keeps its value). A confirmation (`required`) must end with the lead's name and email
    address."""
    name = request.name or booking.contact_name
    email = request.email or booking.contact_email
    if required and (not name or not email):
        raise octo.OctoError(
            "BAD_REQUEST", "contact.fullName and contact.emailAddress are required"
        )
    return AgencyContact(
        name=name,
        email=email,
        phone=request.phone or booking.contact_phone,
        locale=request.locale or booking.locale,
        reseller_reference=request.reseller_reference,
        travellers=_travellers(request.unit_items, booking, lines),
        contact_notes=request.contact_notes,
        notes=request.notes,
        country=request.country,
        postal_code=request.postal_code,
    )
