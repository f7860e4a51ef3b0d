"""Operators: the companies that sell trips, the tenants of every staff account.
Created by platform admins; each operator's admins keep its profile."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import (
    OperatorCreate,
    OperatorOut,
    OperatorPrincipal,
    OperatorUpdate,
    Principal,
)
from app.accounts.services import require_operator_admin, require_platform_admin
from app.accounts.tables import Operator
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.i18n import _
from app.core.money import is_known_currency
from app.core.pagination import Page, PageParams, fetch_page, page_of


def require_time_zone(field: str, name: str) -> str:
    """The IANA name, or a 400 naming `field` (operators and departures have a zone)."""
    if not clock.is_valid_time_zone(name):
        raise InvalidInput(field, _("Unknown time zone; use an IANA name such as Asia/Shanghai."))
    return name


async def get_operator(operator_id: UUID) -> OperatorOut:
    row = (
        await Operator.select()
        .where(Operator.id == operator_id)
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Operator not found."), code="operator_not_found")
    return _operator_out(row)


def _operator_out(row: dict[str, Any]) -> OperatorOut:
    return OperatorOut(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        contact_email=row["contact_email"],
        contact_phone=row["contact_phone"],
        currency=row["currency"],
        time_zone=row["time_zone"],
        default_locale=row["default_locale"],
    )


async def create_operator(data: OperatorCreate) -> OperatorOut:
    if not is_known_currency(data.currency):
        raise InvalidInput("currency", _("Unknown ISO 4217 currency code."))
    require_time_zone("time_zone", data.time_zone)
    async with write_transaction():
        if await Operator.exists().where(Operator.slug == data.slug).run():
            raise Conflict(
                _("Another operator already uses this slug."),
                code="slug_taken",
                errors=[FieldError(field="slug", message=_("Already in use."))],
            )
        operator = Operator(
            slug=data.slug,
            name=dict(data.name),
            contact_email=data.contact_email,
            contact_phone=data.contact_phone,
            currency=data.currency,
            time_zone=data.time_zone,
            default_locale=data.default_locale,
        )
        await operator.save().run()
    return await get_operator(operator.id)


async def create_operator_as(principal: Principal, data: OperatorCreate) -> OperatorOut:
    require_platform_admin(principal)
    return await create_operator(data)


async def list_operators(principal: Principal, params: PageParams) -> Page[OperatorOut]:
    require_platform_admin(principal)
    rows, total = await fetch_page(Operator, None, params, [(Operator.slug, True)], load_json=True)
    return page_of([_operator_out(row) for row in rows], params, total)


async def find_operator_id(slug: str) -> UUID | None:
    row = await Operator.select(Operator.id).where(Operator.slug == slug).first().run()
    return row["id"] if row else None


async def get_own_operator(principal: OperatorPrincipal) -> OperatorOut:
    return await get_operator(principal.operator_id)


async def update_own_operator(principal: OperatorPrincipal, data: OperatorUpdate) -> OperatorOut:
    require_operator_admin(principal)
    values: dict[Any, Any] = {}
    if data.name is not msgspec.UNSET:
        values[Operator.name] = dict(data.name)
    if data.contact_email is not msgspec.UNSET:
        values[Operator.contact_email] = data.contact_email
    if data.contact_phone is not msgspec.UNSET:
        values[Operator.contact_phone] = data.contact_phone
    if data.time_zone is not msgspec.UNSET:
        values[Operator.time_zone] = require_time_zone("time_zone", data.time_zone)
    if data.default_locale is not msgspec.UNSET:
        values[Operator.default_locale] = data.default_locale
    if values:
        async with write_transaction():
            await Operator.update(values).where(Operator.id == principal.operator_id).run()
    return await get_own_operator(principal)


async def operator_exists(operator_id: UUID) -> bool:
    return bool(await Operator.exists().where(Operator.id == operator_id).run())
