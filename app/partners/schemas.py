"""Agency, contract and API key structures (operator side)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.tables import PassengerType
from app.core.money import MAX_ACCOUNT_AMOUNT, MAX_PRICE, PriceOut
from app.core.schemas import Email, Phone
from app.partners.tables import AgencyStatus, PaymentTerms, WebhookStatus

BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="1000 = 10 %")]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=500)]


class AgencyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    contact_email: Email
    # Shown, with the email, to the travellers the agency books for.
    contact_phone: Phone | None = None
    commission_bp: BasisPoints = 0
    payment_terms: PaymentTerms = PaymentTerms.on_account
    credit_limit: Annotated[int, msgspec.Meta(ge=0, le=MAX_ACCOUNT_AMOUNT)] = 0
    allowed_routes: list[UUID] = []
    cancellation_cutoff_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] = 24
    webhook_url: Url | None = None


class AgencyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | UnsetType = UNSET
    contact_email: Email | UnsetType = UNSET
    contact_phone: Phone | UnsetType | None = UNSET
    status: AgencyStatus | UnsetType = UNSET
    commission_bp: BasisPoints | UnsetType = UNSET
    payment_terms: PaymentTerms | UnsetType = UNSET
    credit_limit: Annotated[int, msgspec.Meta(ge=0, le=MAX_ACCOUNT_AMOUNT)] | UnsetType = UNSET
    allowed_routes: list[UUID] | UnsetType = UNSET
    cancellation_cutoff_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] | UnsetType = UNSET
    webhook_url: Url | UnsetType | None = UNSET


class AgencyOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    contact_email: str
    contact_phone: str | None
    status: AgencyStatus
    commission_bp: int
    payment_terms: PaymentTerms
    credit_limit: int
    allowed_routes: list[UUID]
    cancellation_cutoff_hours: int
    webhook_url: str | None
    # Set when the endpoint answered 410 Gone; setting webhook_url again re-enables it.
    webhook_disabled_at: datetime | None
    created_at: datetime


class ApiKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=80)] = ""


class ApiKeyOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(msgspec.Struct, kw_only=True):
    """The key itself is shown only here: store it now."""

    key: str
    api_key: ApiKeyOut


class AgencyPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    agency_id: UUID
    operator_id: UUID
    api_key_id: UUID


SeatClass = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE, description="minor units")]


class NetRateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    route_id: UUID
    seat_class: SeatClass
    passenger_type: PassengerType
    amount: Amount


class NetRatesIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The agency's whole net-rate sheet; fares not listed fall back to commission."""

    rates: Annotated[list[NetRateIn], msgspec.Meta(max_length=500)]


class NetRateOut(msgspec.Struct, kw_only=True):
    route_id: UUID
    seat_class: str
    passenger_type: PassengerType
    net: PriceOut


class SettlementIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_ACCOUNT_AMOUNT)]
    received_on: date
    reference: Annotated[str, msgspec.Meta(max_length=80)] = ""


class SettlementOut(msgspec.Struct, kw_only=True):
    id: UUID
    amount: PriceOut
    received_on: date
    reference: str
    recorded_by: str
    created_at: datetime


class CreditOut(msgspec.Struct, kw_only=True):
    """On-account position: what the agency owes now against its limit."""

    limit: PriceOut
    used: PriceOut
    available: PriceOut


class StatementLine(msgspec.Struct, kw_only=True):
    reference: str
    partner_uuid: str | None
    reseller_reference: str
    status: str
    departure_id: UUID
    departs_at: datetime
    seats: int
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    gross: int
    commission: int
    net: int
    refunded: int
    net_owed: int


class StatementTotals(msgspec.Struct, kw_only=True):
    bookings: int
    seats: int
    gross: PriceOut
    commission: PriceOut
    net: PriceOut
    refunded: PriceOut
    net_owed: PriceOut
    settled: PriceOut


class StatementOut(msgspec.Struct, kw_only=True):
    agency_id: UUID
    agency_name: str
    period_start: date
    period_end: date
    # The operator's zone: the period's dates (and the CSV's) are local to it.
    time_zone: str
    currency: str
    totals: StatementTotals
    credit: CreditOut
    lines: list[StatementLine]


class WebhookAttemptOut(msgspec.Struct, kw_only=True):
    at: datetime
    url: str
    status_code: int | None
    error: str
    duration_ms: int


class WebhookDeliveryOut(msgspec.Struct, kw_only=True):
    id: UUID
    event_type: str
    status: WebhookStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    body: str
    attempt_log: list[WebhookAttemptOut]


class AgencyBookingOut(msgspec.Struct, kw_only=True):
    """An agency's booking as its operator sees it."""

    reference: str
    agency_id: UUID
    agency_name: str
    partner_uuid: str | None
    reseller_reference: str
    status: str
    departure_id: UUID
    departs_at: datetime
    seats: list[str]
    contact_name: str
    retail: PriceOut
    net: PriceOut
    refunded: PriceOut
    created_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None


class WebhookSecretOut(msgspec.Struct, kw_only=True):
    webhook_secret: str
