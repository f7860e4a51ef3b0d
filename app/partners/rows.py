"""Partner rows as typed values: the agency, and the catalogue rows the OCTO modules pass
between them (products are routes, pick-up locations are departure stops), instead of the
mappings Piccolo reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID

from app.catalogue.services.common import as_dict, as_list
from app.partners.tables import AgencyStatus, PaymentTerms, WebhookStatus

# Translated content as stored in a JSON column: text per locale.
Translations = dict[str, str]


def _translations(value: Any) -> Translations | None:
    return cast(Translations | None, as_dict(value))


@dataclass(frozen=True, slots=True)
class AgencyRow:
    """Every column of an `Agency` row; foreign keys are named by the id they hold."""

    id: UUID
    operator_id: UUID
    name: str
    contact_email: str
    contact_phone: str
    status: AgencyStatus
    commission_bp: int
    payment_terms: PaymentTerms
    credit_limit: int
    # Empty means every published route of the operator.
    allowed_routes: tuple[UUID, ...]
    cancellation_cutoff_hours: int
    webhook_url: str
    webhook_secret: str
    webhook_disabled_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AgencyRow:
        """From an `Agency.select()` row."""
        return cls(
            id=row["id"], operator_id=row["operator"], name=row["name"],
            contact_email=row["contact_email"], contact_phone=row["contact_phone"],
            status=AgencyStatus(row["status"]),
            commission_bp=row["commission_bp"],
            payment_terms=PaymentTerms(row["payment_terms"]),
            credit_limit=row["credit_limit"],
            allowed_routes=tuple(UUID(str(r)) for r in as_list(row["allowed_routes"])),
            cancellation_cutoff_hours=row["cancellation_cutoff_hours"],
            webhook_url=row["webhook_url"], webhook_secret=row["webhook_secret"],
            webhook_disabled_at=row["webhook_disabled_at"], created_at=row["created_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProductRoute:
    """A route as an OCTO product: the columns of a `Route` row the OCTO modules use."""

    id: UUID
    slug: str
    name: Translations | None
    description: Translations | None
    duration_days: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProductRoute:
        """From a `Route.select()` row."""
        return cls(
            id=row["id"], slug=row["slug"], name=_translations(row["name"]),
            description=_translations(row["description"]), duration_days=row["duration_days"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PickupStop:
    """Every column of a pick-up `DepartureStop` row (an OCTO pick-up location)."""

    id: UUID
    departure_id: UUID
    stop_order: int
    kind: str
    name: Translations | None
    address: Translations | None
    at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PickupStop:
        """From a `DepartureStop.select()` row."""
        return cls(
            id=row["id"], departure_id=row["departure"], stop_order=row["stop_order"],
            kind=row["kind"], name=_translations(row["name"]),
            address=_translations(row["address"]), at=row["at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """Every column of an `ApiKey` row; foreign keys are named by the id they hold."""

    id: UUID
    agency_id: UUID
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiKeyRow:
        """From an `ApiKey.select()` row."""
        return cls(
            id=row["id"], agency_id=row["agency"], name=row["name"], prefix=row["prefix"],
            key_hash=row["key_hash"], created_at=row["created_at"],
            last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """Every column of a `Settlement` row; foreign keys are named by the id they hold."""

    id: UUID
    agency_id: UUID
    amount: int
    currency: str
    received_on: date
    reference: str
    recorded_by: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SettlementRow:
        """From a `Settlement.select()` row."""
        return cls(
            id=row["id"], agency_id=row["agency"], amount=row["amount"],
            currency=row["currency"], received_on=row["received_on"],
            reference=row["reference"], recorded_by=row["recorded_by"],
            created_at=row["created_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebhookDeliveryRow:
    """Every column of a `WebhookDelivery` row; foreign keys are named by the id they hold."""

    id: UUID
    agency_id: UUID
    key: str
    event_type: str
    body: str
    status: WebhookStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str
    created_at: datetime
    retry_from: datetime
    delivered_at: datetime | None
    subject: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookDeliveryRow:
        """From a `WebhookDelivery.select()` row."""
        return cls(
            id=row["id"], agency_id=row["agency"], key=row["key"],
            event_type=row["event_type"], body=row["body"],
            status=WebhookStatus(row["status"]), attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"], last_status_code=row["last_status_code"],
            last_error=row["last_error"], created_at=row["created_at"],
            retry_from=row["retry_from"], delivered_at=row["delivered_at"],
            subject=row["subject"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebhookAttemptRow:
    """Every column of a `WebhookAttempt` row; foreign keys are named by the id they hold."""

    id: UUID
    delivery_id: UUID
    at: datetime
    url: str
    status_code: int | None
    error: str
    duration_ms: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookAttemptRow:
        """From a `WebhookAttempt.select()` row."""
        return cls(
            id=row["id"], delivery_id=row["delivery"], at=row["at"], url=row["url"],
            status_code=row["status_code"], error=row["error"], duration_ms=row["duration_ms"],
        )  # fmt: skip
