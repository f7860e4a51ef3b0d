"""Partner agencies that resell an operator's lines, their contract terms and API keys."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    UUID,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.catalogue.tables import Operator


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
