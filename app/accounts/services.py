"""Staff accounts, login and the principal behind a bearer token."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal, Principal, StaffCreate, StaffOut, TokenOut
from app.accounts.tables import Staff, StaffRole
from app.core import clock, throttle
from app.core.database import write_transaction
from app.core.errors import Conflict, Forbidden, Unauthorized
from app.core.i18n import _
from app.core.security import hash_password, issue_staff_token, read_staff_token, verify_password
from app.core.settings import Settings
from app.core.throttle import Limit


def _staff_out(row: dict[str, Any]) -> StaffOut:
    return StaffOut(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        role=StaffRole(row["role"]),
        operator_id=row["operator"],
        is_active=row["is_active"],
        created_at=row["created_at"],
    )


# Failed logins are counted per email and per client address in windows of this length.
LOGIN_WINDOW_SECONDS = 15 * 60
# One address may fail this many times the per-email limit (an office behind one NAT).
LOGIN_ADDRESS_FACTOR = 5


async def login(email: str, password: str, client_ip: str, settings: Settings) -> TokenOut:
    """A token for the right email and password; guessing is slowed: after
    `login_failure_limit` failures for one email (or 5x that from one address) within 15
    minutes, every attempt is refused with 429 until the window ends, right or wrong.

    Each attempt is counted (for every process, `app.core.throttle`) before its password
    is checked, so concurrent guesses get no more checks than the limit."""
    email = email.strip().lower()
    limits = (
        Limit(f"login:email:{email}", settings.login_failure_limit, LOGIN_WINDOW_SECONDS),
        Limit(
            f"login:ip:{client_ip}",
            settings.login_failure_limit * LOGIN_ADDRESS_FACTOR,
            LOGIN_WINDOW_SECONDS,
        ),
    )
    async with await throttle.attempt(
        settings.redis_url, limits, _("Too many failed logins; try again later."),
        "login_throttled",
    ) as counted:  # fmt: skip
        row = await Staff.select().where(Staff.email == email).first().run()
        # Verify even for unknown emails so timing does not reveal which accounts exist.
        valid = verify_password(row["password_hash"] if row else None, password)
        if row is None or not valid or not row["is_active"]:
            counted.failed()
            raise Unauthorized(_("The email or password is wrong."), code="invalid_credentials")
    await Staff.update({Staff.last_login_at: clock.now()}).where(Staff.id == row["id"]).run()
    token, expires_in = issue_staff_token(row["id"], row["session_version"])
    return TokenOut(access_token=token, token_type="Bearer", expires_in=expires_in)


async def principal_from_token(token: str) -> Principal:
    claims = read_staff_token(token)
    if claims is None:
        raise Unauthorized(_("The token is invalid or has expired."), code="invalid_token")
    row = (
        await Staff.select(
            Staff.id, Staff.role, Staff.operator, Staff.is_active, Staff.session_version
        )
        .where(Staff.id == claims.staff_id)
        .first()
        .run()
    )
    if row is None or not row["is_active"] or row["session_version"] != claims.session_version:
        raise Unauthorized(_("The token is invalid or has expired."), code="invalid_token")
    return Principal(staff_id=row["id"], role=StaffRole(row["role"]), operator_id=row["operator"])


def as_operator_principal(principal: Principal) -> OperatorPrincipal:
    if principal.operator_id is None or principal.role == StaffRole.platform_admin:
        raise Forbidden(
            _("Only an operator's staff can use the operator API."), code="not_operator_staff"
        )
    return OperatorPrincipal(
        staff_id=principal.staff_id, role=principal.role, operator_id=principal.operator_id
    )


def require_operator_admin(principal: OperatorPrincipal) -> None:
    if not principal.can_edit:
        raise Forbidden(
            _("Only an operator admin can change this."), code="operator_admin_required"
        )


def require_platform_admin(principal: Principal) -> None:
    if not principal.is_platform_admin:
        raise Forbidden(_("Only a platform admin can do this."), code="platform_admin_required")


async def create_staff(data: StaffCreate, operator_id: UUID | None) -> StaffOut:
    """Create a staff account; platform admins have no operator, everyone else has one."""
    if (data.role == StaffRole.platform_admin) != (operator_id is None):
        raise Forbidden(
            _("Platform admins belong to no operator; operator staff belong to one."),
            code="role_operator_mismatch",
        )
    email = data.email.strip().lower()
    async with write_transaction():
        if await Staff.exists().where(Staff.email == email).run():
            raise Conflict(_("A staff account with this email already exists."), code="email_taken")
        staff = Staff(
            email=email,
            name=data.name,
            password_hash=hash_password(data.password),
            role=data.role.value,
            operator=operator_id,
        )
        await staff.save().run()
    row = await Staff.select().where(Staff.id == staff.id).first().run()
    assert row is not None
    return _staff_out(row)


async def list_staff(operator_id: UUID) -> list[StaffOut]:
    rows = await Staff.select().where(Staff.operator == operator_id).order_by(Staff.email).run()
    return [_staff_out(row) for row in rows]


async def get_staff(staff_id: UUID) -> StaffOut:
    row = await Staff.select().where(Staff.id == staff_id).first().run()
    if row is None:
        raise Unauthorized(_("The token is invalid or has expired."), code="invalid_token")
    return _staff_out(row)
