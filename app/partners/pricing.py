"""An agency's price channel for a route: its contract's net rates and commission, read
from the partners' tables. The rule that turns them into prices is `app.pricing`'s."""

from __future__ import annotations

from uuid import UUID

from app.partners.tables import Agency, NetRate
from app.pricing.schemas import PriceChannel


async def agency_price_channel(agency_id: UUID, route_id: UUID) -> PriceChannel:
    agency = await Agency.select(Agency.commission_bp).where(Agency.id == agency_id).first().run()
    commission = agency["commission_bp"] if agency else 0
    rows = (
        await NetRate.select(NetRate.seat_class, NetRate.passenger_type, NetRate.amount)
        .where((NetRate.agency == agency_id) & (NetRate.route == route_id))
        .run()
    )
    return PriceChannel.agency(
        commission, {(r["seat_class"], r["passenger_type"]): r["amount"] for r in rows}
    )
