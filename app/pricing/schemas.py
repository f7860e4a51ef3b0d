"""What pricing takes (a party, a channel) and gives (a quote)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.catalogue.services.fares import FareKey
from app.catalogue.tables import PassengerType
from app.core.money import Money

# One hundredth of a percent: commissions are whole basis points.
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class PriceChannel:
    """Whose price a party pays. Retail: the fares. An agency's net, for one route: its
    contract's net rate per (seat class, passenger type) where it has one, otherwise the
    retail price less its commission (`commission_bp` basis points)."""

    agency_net: bool = False
    commission_bp: int = 0
    net_rates: Mapping[FareKey, int] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def agency(cls, commission_bp: int, net_rates: Mapping[FareKey, int]) -> PriceChannel:
        return cls(True, commission_bp, MappingProxyType(dict(net_rates)))


# Tourists (and the waiting list) pay the fares as published.
RETAIL = PriceChannel()


@dataclass(frozen=True, slots=True)
class PartySeat:
    seat_class: str
    passenger_type: PassengerType
    # The request field a missing fare for this seat is reported on.
    field: str = "counts"


@dataclass(frozen=True, slots=True)
class SeatQuote:
    seat: PartySeat
    retail: Money
    # What the booker pays: the retail price, or the agency's net price.
    charged: Money


@dataclass(frozen=True, slots=True)
class PartyQuote:
    """A party's prices, seat by seat in the party's order, and their totals."""

    seats: tuple[SeatQuote, ...]
    retail: Money
    charged: Money
    # True when `charged` is an agency's net price, kept beside the retail price.
    agency_net: bool

    @property
    def currency(self) -> str:
        return self.charged.currency


@dataclass(frozen=True, slots=True)
class RebookDifference:
    """A confirmed booking's money after its party moved: what it now costs, what is
    still owed on it, and what is given back."""

    new_total: int
    balance_due: int
    refund: int
