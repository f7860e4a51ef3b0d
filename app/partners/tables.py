"""Partner agencies that resell an operator's lines, their contract terms and API keys."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    UUID,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.accounts.tables import Operator
from app.catalogue.tables import Route


class PaymentTerms(StrEnum):
    on_account = "on_account"
    prepay = "prepay"


class AgencyStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class Agency(Table):
    """An agency under contract with one operator; the contract's terms live here."""

    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    name = Varchar(length=120)
    contact_email = Varchar(length=254)
    # Shown with the email to travellers the agency booked for ("" when none was given).
    contact_phone = Varchar(length=32, default="")
    status = Varchar(length=16, choices=AgencyStatus, default=AgencyStatus.active)
    # Commission on the retail price, in basis points (1000 = 10 %).
    commission_bp = Integer(default=0)
    payment_terms = Varchar(length=16, choices=PaymentTerms, default=PaymentTerms.on_account)
    # Most the agency may owe on account, in minor units of the operator's currency.
    credit_limit = Integer(default=0)
    # Route ids the agency may sell; empty means every published route of the operator.
    allowed_routes = JSON(default=[])
    # Hours before departure after which the agency may no longer cancel.
    cancellation_cutoff_hours = Integer(default=24)
    webhook_url = Varchar(length=500, default="")
    webhook_secret = Varchar(length=64, default="")
    # Set when the agency's endpoint answered 410 Gone; cleared when the URL is changed.
    webhook_disabled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class ApiKey(Table):
    """A partner API key: shown once, stored as a SHA-256 hash, found by its prefix."""

    id = UUID(primary_key=True)
    agency = ForeignKey(Agency, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=80, default="")
    prefix = Varchar(length=16, unique=True)
    key_hash = Varchar(length=64)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class NetRate(Table):
    """A contract's net price for one fare of one route: what the agency owes per unit,
    in place of the retail price less commission. Unique per (agency, route, seat class,
    passenger type), an index in migrations."""

    id = UUID(primary_key=True)
    agency = ForeignKey(Agency, on_delete=OnDelete.cascade, null=False, index=True)
    route = ForeignKey(Route, on_delete=OnDelete.cascade, null=False)
    seat_class = Varchar(length=32)
    passenger_type = Varchar(length=16)
    amount = Integer()


class Settlement(Table):
    """Money an agency paid the operator against its account."""

    id = UUID(primary_key=True)
    agency = ForeignKey(Agency, on_delete=OnDelete.restrict, null=False, index=True)
    amount = Integer()
    currency = Varchar(length=3)
    received_on = Date()
    reference = Varchar(length=80, default="")
    recorded_by = Varchar(length=80)
    created_at = Timestamptz(default=TimestamptzNow())


class WebhookStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    # Gave up after retrying for three days.
    failed = "failed"
    # The endpoint answered 410 Gone, or was disabled before this was sent.
    disabled = "disabled"


class WebhookDelivery(Table):
    """One event for one agency. Its id is the event id the agency sees; `key` (the
    event's natural key) makes each event go out at most once; the body is fixed when the
    event is made, so every retry sends the same bytes."""

    id = UUID(primary_key=True)
    agency = ForeignKey(Agency, on_delete=OnDelete.cascade, null=False, index=True)
    key = Varchar(length=200, unique=True)
    event_type = Varchar(length=64)
    body = Text()
    status = Varchar(length=16, choices=WebhookStatus, default=WebhookStatus.pending, index=True)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    # Retries stop three days after this: the event's creation, or an operator's resend.
    retry_from = Timestamptz(default=TimestamptzNow())
    delivered_at = Timestamptz(null=True, default=None)
    # What the event is about ("booking:<id>", "departure:<id>"): an agency gets the
    # events of one subject in the order they happened (None: no order to keep).
    subject = Varchar(length=100, null=True, default=None, index=True)


class WebhookAttempt(Table):
    """Every try to deliver a webhook: when, what came back, how long it took."""

    id = UUID(primary_key=True)
    delivery = ForeignKey(WebhookDelivery, on_delete=OnDelete.cascade, null=False, index=True)
    at = Timestamptz(default=TimestamptzNow())
    url = Varchar(length=500)
    status_code = Integer(null=True, default=None)
    error = Text(default="")
    duration_ms = Integer(default=0)
