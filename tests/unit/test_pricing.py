"""Pricing rules: retail, an agency's net (net rate, else retail less commission), a missing
fare, and the money a rebooking moves."""

from __future__ import annotations

import pytest

from app.catalogue.services.fares import EffectiveFares
from app.catalogue.tables import PassengerType
from app.core.errors import InvalidInput
from app.core.money import Money
from app.pricing.schemas import RETAIL, PartySeat, PriceChannel
from app.pricing.services import price_party, rebook_difference

ADULT, CHILD, SENIOR = PassengerType.adult, PassengerType.child, PassengerType.senior


def cny(amount: int) -> Money:
    return Money(amount=amount, currency="CNY")


FARES: EffectiveFares = {
    ("hard_sleeper", "adult"): (cny(7800), "route"),
    ("hard_sleeper", "child"): (cny(3999), "route"),
    ("soft_sleeper", "adult"): (cny(12_001), "departure"),
}


def test_retail_charges_the_fares_seat_by_seat() -> None:
    party = [
        PartySeat("hard_sleeper", ADULT),
        PartySeat("soft_sleeper", ADULT),
        PartySeat("hard_sleeper", CHILD),
    ]
    quote = price_party(FARES, party, RETAIL)
    assert [(q.seat, q.retail.amount, q.charged.amount) for q in quote.seats] == [
        (party[0], 7800, 7800),
        (party[1], 12_001, 12_001),
        (party[2], 3999, 3999),
    ]
    assert quote.retail == quote.charged == cny(23_800)
    assert quote.currency == "CNY"
    assert not quote.agency_net


def test_agency_pays_retail_less_its_commission_rounded_in_its_disfavour() -> None:
    channel = PriceChannel.agency(1250, {})  # 12.5 %
    quote = price_party(
        FARES, [PartySeat("hard_sleeper", ADULT), PartySeat("hard_sleeper", CHILD)], channel
    )
    # 7800 less 975; 3999 less 499.875, of which the agency keeps only 499.
    assert [q.charged.amount for q in quote.seats] == [6825, 3500]
    assert quote.charged == cny(10_325)
    assert quote.retail == cny(11_799)
    assert quote.agency_net


def test_a_net_rate_replaces_the_commission_for_its_fare_only() -> None:
    channel = PriceChannel.agency(1000, {("hard_sleeper", "adult"): 6000})
    quote = price_party(
        FARES, [PartySeat("hard_sleeper", ADULT), PartySeat("soft_sleeper", ADULT)], channel
    )
    assert [(q.retail.amount, q.charged.amount) for q in quote.seats] == [
        (7800, 6000),
        (12_001, 10_801),
    ]


def test_an_agency_without_commission_or_rates_still_keeps_retail_beside_net() -> None:
    quote = price_party(FARES, [PartySeat("hard_sleeper", ADULT)], PriceChannel.agency(0, {}))
    assert quote.retail == quote.charged == cny(7800)
    assert quote.agency_net


def test_a_seat_without_a_fare_names_its_field() -> None:
    party = [
        PartySeat("hard_sleeper", ADULT, "seats[0].passenger_type"),
        PartySeat("soft_sleeper", SENIOR, "seats[1].passenger_type"),
    ]
    with pytest.raises(InvalidInput) as caught:
        price_party(FARES, party, RETAIL)
    assert caught.value.code == "no_fare"
    assert [error.field for error in caught.value.errors] == ["seats[1].passenger_type"]
    assert "senior" in caught.value.errors[0].message
    with pytest.raises(InvalidInput) as by_count:
        price_party(FARES, [PartySeat("soft_sleeper", CHILD)], RETAIL)
    assert [error.field for error in by_count.value.errors] == ["counts"]


def test_an_empty_party_costs_nothing_in_the_fares_currency() -> None:
    assert price_party(FARES, [], RETAIL).charged == cny(0)
    assert price_party({}, [], RETAIL).charged.amount == 0


@pytest.mark.parametrize(
    ("total", "due", "new", "balance_due", "refund"),
    [
        (10_000, 0, 12_000, 2000, 0),  # dearer: the difference is owed
        (10_000, 500, 12_000, 2500, 0),  # added to what was still owed
        (10_000, 0, 7000, 0, 3000),  # cheaper, all paid: refunded
        (10_000, 2000, 9000, 1000, 0),  # cheaper: first forgives what is owed
        (10_000, 2000, 7000, 0, 1000),  # ... and refunds the rest of what was paid
        (10_000, 2000, 10_000, 2000, 0),  # the same price: nothing moves
    ],
)
def test_rebook_difference_against_what_was_paid(
    total: int, due: int, new: int, balance_due: int, refund: int
) -> None:
    fares: EffectiveFares = {("hard_sleeper", "adult"): (cny(new), "route")}
    quote = price_party(fares, [PartySeat("hard_sleeper", ADULT)], RETAIL)
    change = rebook_difference(quote, total, due)
    assert (change.new_total, change.balance_due, change.refund) == (new, balance_due, refund)
