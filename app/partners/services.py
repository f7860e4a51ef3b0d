"""Agencies under contract, and the API keys they call the partner (OCTO) API with."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.tables import Route
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import InvalidInput, NotFound
from app.core.i18n import _
from app.partners.schemas import (
    AgencyCreate,
    AgencyOut,
    AgencyPrincipal,
    AgencyUpdate,
    ApiKeyCreated,
    ApiKeyOut,
)
from app.partners.tables import Agency, AgencyStatus, ApiKey

KEY_PREFIX = "tl_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _agency_out(row: dict[str, Any]) -> AgencyOut:
    return AgencyOut(
        id=row["id"], name=row["name"], contact_email=row["contact_email"],
        status=AgencyStatus(row["status"]), commission_bp=row["commission_bp"],
        payment_terms=row["payment_terms"], credit_limit=row["credit_limit"],
        allowed_routes=[UUID(str(r)) for r in row["allowed_routes"] or []],
        cancellation_cutoff_hours=row["cancellation_cutoff_hours"],
        webhook_url=row["webhook_url"] or None, created_at=row["created_at"],
    )  # fmt: skip


async def _owned_agency(principal: OperatorPrincipal, agency_id: UUID) -> dict[str, Any]:
    row = (
        await Agency.select()
        .where((Agency.id == agency_id) & (Agency.operator == principal.operator_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Agency not found."), code="agency_not_found")
    return dict(row)


async def _check_routes(principal: OperatorPrincipal, route_ids: list[UUID]) -> list[str]:
    if not route_ids:
        return []
    owned = {
        row["id"]
        for row in await Route.select(Route.id)
        .where(Route.id.is_in(route_ids) & (Route.operator == principal.operator_id))
        .run()
    }
    for index, route_id in enumerate(route_ids):
        if route_id not in owned:
            raise InvalidInput(f"allowed_routes[{index}]", _("No such route."))
    return [str(route_id) for route_id in route_ids]


async def create_agency(principal: OperatorPrincipal, data: AgencyCreate) -> AgencyOut:
    require_operator_admin(principal)
    agency = Agency(
        operator=principal.operator_id, name=data.name, contact_email=data.contact_email,
        commission_bp=data.commission_bp, payment_terms=data.payment_terms.value,
        credit_limit=data.credit_limit,
        allowed_routes=await _check_routes(principal, data.allowed_routes),
        cancellation_cutoff_hours=data.cancellation_cutoff_hours,
        webhook_url=data.webhook_url or "", webhook_secret=secrets.token_hex(32),
        created_at=clock.now(),
    )  # fmt: skip
    await agency.save().run()
    return _agency_out(await _owned_agency(principal, agency.id))


async def list_agencies(principal: OperatorPrincipal) -> list[AgencyOut]:
    rows = (
        await Agency.select()
        .where(Agency.operator == principal.operator_id)
        .order_by(Agency.name)
        .output(load_json=True)
        .run()
    )
    return [_agency_out(row) for row in rows]


async def get_agency(principal: OperatorPrincipal, agency_id: UUID) -> AgencyOut:
    return _agency_out(await _owned_agency(principal, agency_id))


async def update_agency(
    principal: OperatorPrincipal, agency_id: UUID, data: AgencyUpdate
) -> AgencyOut:
    require_operator_admin(principal)
    values: dict[Any, Any] = {}
    for name in ("name", "contact_email", "commission_bp", "credit_limit",
                 "cancellation_cutoff_hours"):  # fmt: skip
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            values[getattr(Agency, name)] = value
    if data.status is not msgspec.UNSET:
        values[Agency.status] = data.status.value
    if data.payment_terms is not msgspec.UNSET:
        values[Agency.payment_terms] = data.payment_terms.value
    if data.allowed_routes is not msgspec.UNSET:
        values[Agency.allowed_routes] = await _check_routes(principal, data.allowed_routes)
    if data.webhook_url is not msgspec.UNSET:
        values[Agency.webhook_url] = data.webhook_url or ""
    async with write_transaction():
        await _owned_agency(principal, agency_id)
        if values:
            await Agency.update(values).where(Agency.id == agency_id).run()
    return await get_agency(principal, agency_id)


def _key_out(row: dict[str, Any]) -> ApiKeyOut:
    return ApiKeyOut(
        id=row["id"], name=row["name"], prefix=row["prefix"], created_at=row["created_at"],
        last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
    )  # fmt: skip


async def _new_key(agency_id: UUID, name: str) -> ApiKeyCreated:
    prefix = KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    row = ApiKey(agency=agency_id, name=name, prefix=prefix, key_hash=_hash(key),
                 created_at=clock.now())  # fmt: skip
    await row.save().run()
    stored = await ApiKey.select().where(ApiKey.id == row.id).first().run()
    assert stored is not None
    return ApiKeyCreated(key=key, api_key=_key_out(stored))


async def create_key(principal: OperatorPrincipal, agency_id: UUID, name: str) -> ApiKeyCreated:
    require_operator_admin(principal)
    await _owned_agency(principal, agency_id)
    return await _new_key(agency_id, name)


async def list_keys(principal: OperatorPrincipal, agency_id: UUID) -> list[ApiKeyOut]:
    await _owned_agency(principal, agency_id)
    rows = await ApiKey.select().where(ApiKey.agency == agency_id).order_by(ApiKey.created_at).run()
    return [_key_out(row) for row in rows]


async def _owned_key(agency_id: UUID, key_id: UUID) -> dict[str, Any]:
    row = (
        await ApiKey.select()
        .where((ApiKey.id == key_id) & (ApiKey.agency == agency_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("API key not found."), code="api_key_not_found")
    return dict(row)


async def revoke_key(principal: OperatorPrincipal, agency_id: UUID, key_id: UUID) -> ApiKeyOut:
    require_operator_admin(principal)
    await _owned_agency(principal, agency_id)
    row = await _owned_key(agency_id, key_id)
    if row["revoked_at"] is None:
        await ApiKey.update({ApiKey.revoked_at: clock.now()}).where(ApiKey.id == key_id).run()
    return _key_out(await _owned_key(agency_id, key_id))


async def rotate_key(principal: OperatorPrincipal, agency_id: UUID, key_id: UUID) -> ApiKeyCreated:
    """A new key in place of this one, which stops working at once."""
    require_operator_admin(principal)
    async with write_transaction():
        await _owned_agency(principal, agency_id)
        row = await _owned_key(agency_id, key_id)
        await ApiKey.update({ApiKey.revoked_at: clock.now()}).where(ApiKey.id == key_id).run()
        return await _new_key(agency_id, row["name"])


async def agency_for_key(key: str) -> AgencyPrincipal | None:
    """The agency behind a presented key, if the key is valid, unrevoked and the agency
    active; None otherwise."""
    prefix = key.split(".", 1)[0]
    if not prefix.startswith(KEY_PREFIX) or len(prefix) > 16:
        return None
    row = await ApiKey.select().where(ApiKey.prefix == prefix).first().run()
    expected = row["key_hash"] if row else _hash(secrets.token_hex(16))
    if not hmac.compare_digest(expected, _hash(key)) or row is None or row["revoked_at"]:
        return None
    agency = (
        await Agency.select(Agency.operator, Agency.status)
        .where(Agency.id == row["agency"])
        .first()
        .run()
    )
    if agency is None or agency["status"] != AgencyStatus.active:
        return None
    await ApiKey.update({ApiKey.last_used_at: clock.now()}).where(ApiKey.id == row["id"]).run()
    return AgencyPrincipal(
        agency_id=row["agency"], operator_id=agency["operator"], api_key_id=row["id"]
    )
