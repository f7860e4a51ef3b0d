"""Money: integer minor units, one currency, formatted for the reader."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from app.core.i18n import use_locale
from app.core.money import Money, PriceOut, is_known_currency


def cny(amount: int) -> Money:
    return Money(amount=amount, currency="CNY")


@pytest.mark.parametrize(
    ("amount", "zh", "en"),
    [
        (6800, "¥68.00", "CN¥68.00"),
        (128000, "¥1,280.00", "CN¥1,280.00"),
        (5, "¥0.05", "CN¥0.05"),
        (0, "¥0.00", "CN¥0.00"),
        (123456789, "¥1,234,567.89", "CN¥1,234,567.89"),
    ],
)
def test_cny_formats_per_locale(amount: int, zh: str, en: str) -> None:
    money = cny(amount)
    assert money.format("zh_Hans") == zh
    assert money.format("en") == en


def test_format_uses_the_current_locale() -> None:
    with use_locale("en"):
        assert cny(6800).format() == "CN¥68.00"
        assert PriceOut.of(cny(6800)).formatted == "CN¥68.00"
    with use_locale("zh_Hans"):
        assert cny(6800).format() == "¥68.00"
        assert PriceOut.of(cny(6800)) == PriceOut(amount=6800, currency="CNY", formatted="¥68.00")


def test_other_currencies_use_their_own_precision() -> None:
    assert Money(amount=1250, currency="USD").format("en") == "$12.50"
    assert Money(amount=1250, currency="USD").to_decimal() == Decimal("12.50")
    assert Money(amount=1000, currency="JPY").to_decimal() == Decimal("1000")
    assert Money(amount=1000, currency="JPY").format("en") == "¥1,000"
    assert cny(6800).to_decimal() == Decimal("68.00")


def test_add_and_times() -> None:
    assert cny(6800) + cny(3800) == cny(10600)
    assert cny(6800).times(3) == cny(20400)
    assert cny(6800).times(0) == cny(0)


def test_adding_another_currency_raises() -> None:
    with pytest.raises(ValueError, match="USD"):
        cny(6800) + Money(amount=100, currency="USD")
    with pytest.raises(ValueError, match="CNY"):
        Money(amount=100, currency="USD") + cny(6800)


def test_money_is_immutable_and_integral() -> None:
    money = cny(6800)
    with pytest.raises(AttributeError):
        money.amount = 1  # type: ignore[misc]
    assert isinstance((money + cny(1)).amount, int)
    assert msgspec.json.encode(money) == b'{"amount":6800,"currency":"CNY"}'


def test_known_currencies() -> None:
    assert is_known_currency("CNY")
    assert is_known_currency("EUR")
    assert not is_known_currency("XYZ")
    assert not is_known_currency("cny")
