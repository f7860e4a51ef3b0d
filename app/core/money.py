"""Money: an integer amount of minor units and an ISO 4217 currency. Never a float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec
from babel.numbers import format_currency, get_currency_precision, list_currencies

from app.core.i18n import current_locale

CurrencyCode = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", examples=["CNY"])]
# At most 1,000,000.00 a seat, so that ten seats still fit the 32-bit amount columns.
MAX_PRICE = 100_000_000
MinorUnits = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE, examples=[128000])]
# Account-sized amounts (credit limits, settlements), within the 32-bit amount columns.
MAX_ACCOUNT_AMOUNT = 2_000_000_000

_KNOWN_CURRENCIES = frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return code in _KNOWN_CURRENCIES


class Money(msgspec.Struct, frozen=True, kw_only=True):
    """An amount in minor units (fen for CNY) and its currency."""

    amount: int
    currency: str

    def __add__(self, other: Money) -> Money:
        if self.currency != other.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def times(self, count: int) -> Money:
        return Money(amount=self.amount * count, currency=self.currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount).scaleb(-get_currency_precision(self.currency))

    def format(self, locale: str | None = None) -> str:
        """Format in the reader's locale, e.g. ¥1,280.00 (zh) or CN¥1,280.00 (en)."""
        return format_currency(self.to_decimal(), self.currency, locale=locale or current_locale())


class PriceOut(msgspec.Struct, kw_only=True):
    """Money as the API shows it: minor units, currency and a localized rendering."""

    amount: int
    currency: str
    formatted: str

    @classmethod
    def of(cls, money: Money) -> PriceOut:
        return cls(amount=money.amount, currency=money.currency, formatted=money.format())

    @classmethod
    def minor(cls, amount: int, currency: str) -> PriceOut:
        """From an amount in minor units, as the tables store it."""
        return cls.of(Money(amount=amount, currency=currency))
