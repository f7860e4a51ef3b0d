"""Tenants and staff accounts: operators, their admins and staff, platform admins."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class StaffRole(StrEnum):
    platform_admin = "platform_admin"
    operator_admin = "operator_admin"
    operator_staff = "operator_staff"


class Operator(Table):
    """A company that sells trips: the tenant every staff member and catalogue row
    belongs to."""

    id = UUID(primary_key=True)
    slug = Varchar(length=64, unique=True)
    name = JSON()
    contact_email = Varchar(length=254)
    contact_phone = Varchar(length=32)
    currency = Varchar(length=3, default="CNY")
    time_zone = Varchar(length=64, default="Asia/Shanghai")
    default_locale = Varchar(length=16, default="zh_Hans")
    # How long an unpaid booking keeps its seats.
    hold_minutes = Integer(default=15)
    created_at = Timestamptz(default=TimestamptzNow())


class Staff(Table):
    id = UUID(primary_key=True)
    email = Varchar(length=254, unique=True)
    name = Varchar(length=120)
    password_hash = Varchar(length=255)
    role = Varchar(length=32, choices=StaffRole)
    # None only for platform admins.
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=True, default=None)
    is_active = Boolean(default=True)
    # Bumped on password change or deactivation so earlier tokens stop working.
    session_version = Integer(default=1)
    created_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(null=True, default=None)


class AuditEntry(Table):
    """Who changed what, when: one row per staff request that changes something (POST,
    PUT, PATCH, DELETE on the operator and admin APIs), with its outcome."""

    id = UUID(primary_key=True)
    at = Timestamptz(default=TimestamptzNow(), index=True)
    # Wall-clock nanoseconds: orders entries of one second (`at` has whole seconds).
    seq = BigInt(default=0, index=True)
    staff = UUID(index=True)
    # The operator whose data it concerned (none for a platform admin's own actions).
    operator = UUID(null=True, default=None, index=True)
    method = Varchar(length=8)
    # The route template (e.g. /api/v1/operator/departures/{departure_id}) and the
    # path with the ids it was called with.
    route = Varchar(length=200)
    path = Varchar(length=500)
    status_code = Integer()
    request_id = Varchar(length=64, default="")
    # The request body as sent, with passwords, secrets and tokens blanked out.
    changes = JSON(null=True, default=None)
