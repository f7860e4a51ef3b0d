"""What an agency owes for a seat: the contract's net rate for the fare if it has one,
otherwise the retail price less the agency's commission."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from app.partners.tables import Agency, NetRate


@dataclass(frozen=True, slots=True)
class AgencyPricing:
    commission_bp: int
    # (seat class, passenger type) -> net amount, for one route.
    net_rates: dict[tuple[str, str], int] = field(default_factory=dict)

    def net(self, seat_class: str, passenger_type: str, retail: int) -> int:
        rate = self.net_rates.get((seat_class, passenger_type))
        if rate is not None:
            return rate
        # The commission is rounded down: the agency never keeps more than its share.
        return retail - retail * self.commission_bp // 10_000


async def agency_pricing(agency_id: UUID, route_id: UUID) -> AgencyPricing:
    agency = await Agency.select(Agency.commission_bp).where(Agency.id == agency_id).first().run()
    commission = agency["commission_bp"] if agency else 0
    rows = (
        await NetRate.select(NetRate.seat_class, NetRate.passenger_type, NetRate.amount)
        .where((NetRate.agency == agency_id) & (NetRate.route == route_id))
        .run()
    )
    return AgencyPricing(
        commission, {(r["seat_class"], r["passenger_type"]): r["amount"] for r in rows}
    )
