"""The pricing rules: a party's price on a channel, and the difference a rebooking makes."""

from __future__ import annotations

from collections.abc import Iterable

from app.catalogue.services.fares import EffectiveFares
from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.money import Money
from app.pricing.schemas import (
    BASIS_POINTS,
    PartyQuote,
    PartySeat,
    PriceChannel,
    RebookDifference,
    SeatQuote,
)

# ISO 4217's code for "no currency": the totals of an empty party on an empty fare sheet.
NO_CURRENCY = "XXX"


def retail_fare(fares: EffectiveFares, seat: PartySeat) -> Money:
    """The seat's retail price; 400 `no_fare` on the seat's field when it has none."""
    fare = fares.get((seat.seat_class, seat.passenger_type.value))
    if fare is None:
        raise InvalidInput(
            seat.field,
            _("There is no {passenger_type} fare for seat class {seat_class}.").format(
                passenger_type=seat.passenger_type.value, seat_class=seat.seat_class
            ),
            code="no_fare",
        )
    return fare[0]


def _charged(channel: PriceChannel, seat: PartySeat, retail: Money) -> Money:
    if not channel.agency_net:
        return retail
    rate = channel.net_rates.get((seat.seat_class, seat.passenger_type.value))
    if rate is not None:
        return Money(amount=rate, currency=retail.currency)
    # The commission is rounded down: the agency never keeps more than its share.
    commission = retail.amount * channel.commission_bp // BASIS_POINTS
    return Money(amount=retail.amount - commission, currency=retail.currency)


def price_party(
    fares: EffectiveFares, party: Iterable[PartySeat], channel: PriceChannel
) -> PartyQuote:
    """Each seat's retail and charged price and the totals, in the party's order.
    Raises 400 `no_fare` (naming the first such seat's field) if a seat has no fare."""
    seats = []
    for seat in party:
        retail = retail_fare(fares, seat)
        seats.append(SeatQuote(seat, retail, _charged(channel, seat, retail)))
    currency = next((money.currency for money, _source in fares.values()), NO_CURRENCY)
    zero = Money(amount=0, currency=seats[0].retail.currency if seats else currency)
    return PartyQuote(
        seats=tuple(seats),
        retail=sum((quote.retail for quote in seats), zero),
        charged=sum((quote.charged for quote in seats), zero),
        agency_net=channel.agency_net,
    )


def rebook_difference(new: PartyQuote, total: int, balance_due: int) -> RebookDifference:
    """A confirmed booking of `total`, `balance_due` of it unpaid, moved to a party priced
    `new`: a dearer one adds to what is owed; a cheaper one first cancels what is still
    owed, and the rest of what was paid is refunded."""
    paid = total - balance_due
    new_total = new.charged.amount
    return RebookDifference(
        new_total=new_total,
        balance_due=max(0, new_total - paid),
        refund=max(0, paid - new_total),
    )
