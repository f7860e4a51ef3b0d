"""Agency, contract and API key structures (operator side)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.core.schemas import Email
from app.partners.tables import AgencyStatus, PaymentTerms

BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="1000 = 10 %")]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$", max_length=500)]


class AgencyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    contact_email: Email
    commission_bp: BasisPoints = 0
    payment_terms: PaymentTerms = PaymentTerms.on_account
    credit_limit: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    allowed_routes: list[UUID] = []
    cancellation_cutoff_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] = 24
    webhook_url: Url | None = None


class AgencyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | UnsetType = UNSET
    contact_email: Email | UnsetType = UNSET
    status: AgencyStatus | UnsetType = UNSET
    commission_bp: BasisPoints | UnsetType = UNSET
    payment_terms: PaymentTerms | UnsetType = UNSET
    credit_limit: Annotated[int, msgspec.Meta(ge=0, le=10**12)] | UnsetType = UNSET
    allowed_routes: list[UUID] | UnsetType = UNSET
    cancellation_cutoff_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] | UnsetType = UNSET
    webhook_url: Url | UnsetType | None = UNSET


class AgencyOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    contact_email: str
    status: AgencyStatus
    commission_bp: int
    payment_terms: PaymentTerms
    credit_limit: int
    allowed_routes: list[UUID]
    cancellation_cutoff_hours: int
    webhook_url: str | None
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
