"""The OCTO request bodies as this API reads them, for its OpenAPI schema.

The OCTO handlers read their JSON by hand (app/partners/octo_*.py, octo_bookings/), so
that every mistake is an OCTO error with the specification's code (INVALID_PRODUCT_ID,
INVALID_UNIT_ID, BAD_REQUEST ...) rather than a validation problem. These structures say
what those readers accept, in the shapes (and camelCase names) of octotravel/octo-types'
`src/openapi.yaml` (AvailabilityCheckBody, BookingReservationBody, ...): the fields the
server uses, required where the server requires them today. Other fields of the
specification are accepted and ignored.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec

from app.booking.schemas import MAX_PARTY
from app.catalogue.tables import PassengerType
from app.partners.octo_bookings.reserve import DEFAULT_HOLD_MINUTES, MAX_HOLD_MINUTES

ProductId = Annotated[str, msgspec.Meta(description="A product's id (GET /octo/products)")]
OptionId = Annotated[str, msgspec.Meta(description="An option's id: a seat class")]
HoldMinutes = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_HOLD_MINUTES,
        description=f"How long the hold lasts (default {DEFAULT_HOLD_MINUTES} minutes)",
    ),
]


class OctoUnitQuantity(msgspec.Struct, kw_only=True, rename="camel"):
    """A unit (passenger type) and how many of it, to price availability for."""

    id: PassengerType
    quantity: Annotated[int, msgspec.Meta(ge=0)]


class OctoAvailabilityCalendarBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/availability/calendar: at most 366 days, the end not before the start."""

    product_id: ProductId
    option_id: OptionId
    local_date_start: date
    local_date_end: date
    units: list[OctoUnitQuantity] | None = None


class OctoAvailabilityBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/availability: by `availabilityIds`, or else by local dates (both
    `localDateStart` and `localDateEnd` required then)."""

    product_id: ProductId
    option_id: OptionId
    local_date_start: date | None = None
    local_date_end: date | None = None
    availability_ids: list[str] | None = None
    units: list[OctoUnitQuantity] | None = None
    pickup_location_id: str | None = None


class OctoReservationUnitItem(msgspec.Struct, kw_only=True, rename="camel"):
    unit_id: PassengerType


class OctoBookingReservationBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/bookings: hold seats. `uuid` is the agency's own booking id, which
    makes the call idempotent; left out, the server makes one (returned as `uuid`).
    `availabilityId` is one of the product's availabilities (POST /octo/availability)."""

    uuid: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    product_id: ProductId
    option_id: OptionId
    availability_id: str
    unit_items: Annotated[
        list[OctoReservationUnitItem], msgspec.Meta(min_length=1, max_length=MAX_PARTY)
    ]
    expiration_minutes: HoldMinutes = DEFAULT_HOLD_MINUTES
    pickup_requested: bool = False
    pickup_location_id: str | None = None
    reseller_reference: str | None = None
    notes: str | None = None
    contact: OctoContact | None = None


class OctoExtendBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/bookings/{uuid}/extend."""

    expiration_minutes: HoldMinutes = DEFAULT_HOLD_MINUTES


class OctoContact(msgspec.Struct, kw_only=True, rename="camel"):
    """The lead traveller: `fullName` (or `firstName` and `lastName`) and `emailAddress`
    are required; the first of `locales` starting with `en` chooses English messages."""

    email_address: Annotated[str, msgspec.Meta(min_length=1)]
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None
    locales: list[str] | None = None
    postal_code: str | None = None
    country: str | None = None
    notes: str | None = None


class OctoTravellerName(msgspec.Struct, kw_only=True, rename="camel"):
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class OctoConfirmationUnitItem(msgspec.Struct, kw_only=True, rename="camel"):
    """A traveller's name, per unit item: by its `uuid` (the booking's), else in the
    order of the hold; `unitId` must be that unit's (INVALID_UNIT_ID when unknown)."""

    uuid: str | None = None
    unit_id: PassengerType | None = None
    contact: OctoTravellerName | None = None


class OctoBookingConfirmationBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/bookings/{uuid}/confirm (and /payment): the lead contact, travellers'
    names and the agency's reference."""

    contact: OctoContact
    unit_items: list[OctoConfirmationUnitItem] | None = None
    reseller_reference: str | None = None


class OctoBookingUpdateBody(msgspec.Struct, kw_only=True, rename="camel"):
    """PATCH /octo/bookings/{uuid}: what is given replaces what the booking has. The
    product, option and availability may be named but not changed."""

    contact: OctoContact | None = None
    notes: str | None = None
    reseller_reference: str | None = None
    unit_items: list[OctoConfirmationUnitItem] | None = None
    expiration_minutes: HoldMinutes | None = None
    product_id: ProductId | None = None
    option_id: OptionId | None = None
    availability_id: str | None = None


class OctoBookingCancellationBody(msgspec.Struct, kw_only=True, rename="camel"):
    """POST /octo/bookings/{uuid}/cancel (the body may be left out)."""

    reason: str | None = None
