"""Staff accounts: platform admins, operator admins and operator staff."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import UUID, Boolean, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.catalogue.tables import Operator


class StaffRole(StrEnum):
    platform_admin = "platform_admin"
    operator_admin = "operator_admin"
    operator_staff = "operator_staff"


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
