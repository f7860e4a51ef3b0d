"""Operators: the companies that sell trips. Created by platform admins."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal, Principal
from app.accounts.services import require_operator_admin, require_platform_admin
from app.catalogue.schemas import OperatorCreate, OperatorOut, OperatorUpdate
from app.catalogue.services.common import Row, get_operator_row, require_time_zone
from app.catalogue.tables import Operator
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput
from app.core.i18n import _
from app.core.money import is_known_currency
from app.core.pagination import Page, PageParams, fetch_page, page_of


def _operator_out(row: Row) -> OperatorOut:
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
    return _operator_out(await get_operator_row(operator.id))


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
    return _operator_out(await get_operator_row(principal.operator_id))


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
