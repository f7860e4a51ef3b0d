"""Seasonal offers of a route: what is special in which months (shown when in season)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.routes import SeasonalOfferIn, SeasonalOfferOut, SeasonalOfferUpdate
from app.catalogue.services.common import (
    Row,
    as_dict,
    as_list,
    owned_route,
    text_dict,
)
from app.catalogue.tables import (
    SeasonalOffer,
)
from app.core.database import write_transaction
from app.core.errors import InvalidInput, NotFound
from app.core.i18n import _


def _offer_out(row: Row) -> SeasonalOfferOut:
    return SeasonalOfferOut(
        id=row["id"],
        name=as_dict(row["name"]) or {},
        description=as_dict(row["description"]),
        months=as_list(row["months"]),
    )


def _months(months: list[int]) -> list[int]:
    if len(set(months)) != len(months):
        raise InvalidInput("months", _("Each month may appear once."))
    return sorted(months)


async def list_offers(principal: OperatorPrincipal, route_id: UUID) -> list[SeasonalOfferOut]:
    await owned_route(principal, route_id)
    return await offers_of([route_id])


async def offers_of(route_ids: list[UUID]) -> list[SeasonalOfferOut]:
    """The offers of these routes, by their first month."""
    if not route_ids:
        return []
    rows = (
        await SeasonalOffer.select()
        .where(SeasonalOffer.route.is_in(route_ids))
        .order_by(SeasonalOffer.id)
        .output(load_json=True)
        .run()
    )
    offers = [_offer_out(row) for row in rows]
    return sorted(offers, key=lambda offer: (offer.months[:1], str(offer.id)))


async def create_offer(
    principal: OperatorPrincipal, route_id: UUID, data: SeasonalOfferIn
) -> SeasonalOfferOut:
    require_operator_admin(principal)
    months = _months(data.months)
    async with write_transaction():
        await owned_route(principal, route_id)
        offer = SeasonalOffer(
            route=route_id,
            name=dict(data.name),
            description=text_dict(data.description),
            months=months,
        )
        await offer.save().run()
    return await _offer(route_id, offer.id)


async def _offer(route_id: UUID, offer_id: UUID) -> SeasonalOfferOut:
    row = (
        await SeasonalOffer.select()
        .where((SeasonalOffer.id == offer_id) & (SeasonalOffer.route == route_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Seasonal offer not found."), code="offer_not_found")
    return _offer_out(row)


async def update_offer(
    principal: OperatorPrincipal, route_id: UUID, offer_id: UUID, data: SeasonalOfferUpdate
) -> SeasonalOfferOut:
    require_operator_admin(principal)
    async with write_transaction():
        await owned_route(principal, route_id)
        await _offer(route_id, offer_id)
        values: dict[Any, Any] = {}
        if data.name is not msgspec.UNSET:
            values[SeasonalOffer.name] = dict(data.name)
        if data.description is not msgspec.UNSET:
            values[SeasonalOffer.description] = text_dict(data.description)
        if data.months is not msgspec.UNSET:
            values[SeasonalOffer.months] = _months(data.months)
        if values:
            await SeasonalOffer.update(values).where(SeasonalOffer.id == offer_id).run()
    return await _offer(route_id, offer_id)


async def delete_offer(principal: OperatorPrincipal, route_id: UUID, offer_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        await owned_route(principal, route_id)
        await _offer(route_id, offer_id)
        await SeasonalOffer.delete().where(SeasonalOffer.id == offer_id).run()
