"""Login, staff and operator (tenant) structures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.accounts.tables import StaffRole
from app.core.money import CurrencyCode
from app.core.schemas import Email, Phone, ShortLocalizedText, Slug, TimeZoneName

Password = Annotated[str, msgspec.Meta(min_length=10, max_length=200)]


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TokenOut(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int


class StaffCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    password: Password
    role: StaffRole = StaffRole.operator_staff


class StaffOut(msgspec.Struct, kw_only=True):
    id: UUID
    email: str
    name: str
    role: StaffRole
    operator_id: UUID | None
    is_active: bool
    created_at: datetime


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: a staff member, their role and (for operator staff) their operator."""

    staff_id: UUID
    role: StaffRole
    operator_id: UUID | None

    @property
    def is_platform_admin(self) -> bool:
        return self.role == StaffRole.platform_admin

    @property
    def is_operator_admin(self) -> bool:
        return self.role == StaffRole.operator_admin


class OperatorPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """A staff member acting for their operator; every catalogue query is scoped by it."""

    staff_id: UUID
    role: StaffRole
    operator_id: UUID

    @property
    def can_edit(self) -> bool:
        return self.role == StaffRole.operator_admin


class AuditEntryOut(msgspec.Struct, kw_only=True):
    id: UUID
    at: datetime
    staff_id: UUID
    operator_id: UUID | None
    method: str
    route: str
    path: str
    status_code: int
    request_id: str
    # The request body as sent, secrets blanked out.
    changes: Any


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Which audit entries to show: one staff member's, and a time window [since, until)."""

    staff_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


class OperatorCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: Slug
    name: ShortLocalizedText
    contact_email: Email
    contact_phone: Phone
    currency: CurrencyCode = "CNY"
    time_zone: TimeZoneName = "Asia/Shanghai"
    default_locale: Literal["zh_Hans", "en"] = "zh_Hans"


class OperatorUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: ShortLocalizedText | UnsetType = UNSET
    contact_email: Email | UnsetType = UNSET
    contact_phone: Phone | UnsetType = UNSET
    time_zone: TimeZoneName | UnsetType = UNSET
    default_locale: Literal["zh_Hans", "en"] | UnsetType = UNSET


class OperatorOut(msgspec.Struct, kw_only=True):
    id: UUID
    slug: str
    name: dict[str, str]
    contact_email: str
    contact_phone: str
    currency: str
    time_zone: str
    default_locale: str
