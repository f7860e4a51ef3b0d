"""Payment providers behind one protocol (`base.PaymentProvider`), chosen by configuration.

`TOURLINE_PAYMENT_PROVIDERS` lists the providers enabled: a built-in name (`stripe`,
`on_account`) or the dotted path of a provider class kept in its own folder
(`package.module:Class`, or `package.module` whose `Provider` is the class). Tourists
pay through the first one listed whose class says `checkout = True`; every stored
payment and refund is handled by the provider named in its row.

Two more ways of paying are not providers: `free` (a zero total, confirmed at once) and
`manual` (a refund someone must pay back by hand).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import cast

from app.core.i18n import _
from app.core.settings import Settings
from app.payments.providers.base import (
    IntentState,
    PaymentProvider,
    PaymentsNotConfigured,
    ProviderError,
    ProviderFactory,
    RefundState,
    UnknownObject,
)
from app.payments.providers.stripe import NAME as STRIPE
from app.payments.providers.stripe import StripeProvider, verify_stripe_event

__all__ = [
    "STRIPE",
    "IntentState",
    "PaymentProvider",
    "PaymentsNotConfigured",
    "ProviderError",
    "RefundState",
    "StripeProvider",
    "UnknownObject",
    "checkout_provider",
    "enabled_names",
    "get_provider",
    "is_remote",
    "stripe_provider",
    "verify_stripe_event",
]

BUILT_IN = {
    "stripe": "app.payments.providers.stripe:StripeProvider",
    "on_account": "app.payments.providers.on_account:OnAccountProvider",
}


def _load(entry: str) -> ProviderFactory:
    path = BUILT_IN.get(entry, entry)
    module_name, _colon, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute or "Provider")
    except (ImportError, AttributeError) as exc:
        raise PaymentsNotConfigured(
            _("TOURLINE_PAYMENT_PROVIDERS names {entry}, which cannot be loaded.").format(
                entry=entry
            )
        ) from exc
    return cast(ProviderFactory, factory)


# The settings the providers are made with, set once per process at startup (`configure`).
_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Enable the providers `settings` list (TOURLINE_PAYMENT_PROVIDERS), with their keys."""
    global _settings
    _settings = settings


def _configured() -> Settings:
    if _settings is None:
        raise RuntimeError("app.payments.providers is not configured: call configure(settings)")
    return _settings


def _factories(settings: Settings) -> dict[str, ProviderFactory]:
    """The enabled provider classes by their name, in the configured order."""
    found: dict[str, ProviderFactory] = {}
    for entry in settings.payment_providers:
        factory = _load(entry)
        found.setdefault(factory.name, factory)
    return found


def enabled_names() -> list[str]:
    """Names of the enabled providers (as stored in payment and refund rows)."""
    return list(_factories(_configured()))


def is_remote(name: str) -> bool:
    """Whether payments through `name` have ids at the provider (see `remote`); a provider
    not enabled counts as remote, so that its rows wait for it instead of passing."""
    factory = _factories(_configured()).get(name)
    return factory is None or factory.remote


# One provider per kind and settings, for the current event loop, not one per call: a new
# HTTP client per Stripe webhook cost 5 ms of CPU and a TLS handshake. A provider of
# another (finished) loop, or whose connections were closed, is replaced, so nothing piles
# up per loop.
_providers: dict[tuple[str, Settings], tuple[asyncio.AbstractEventLoop, PaymentProvider]] = {}


def _make(factory: ProviderFactory, settings: Settings) -> PaymentProvider:
    loop = asyncio.get_running_loop()
    key = (factory.name, settings)
    entry = _providers.get(key)
    if entry is None or entry[0] is not loop or getattr(entry[1], "closed", False):
        entry = _providers[key] = (loop, factory(settings))
    return entry[1]


def get_provider(name: str) -> PaymentProvider:
    """The provider that handles rows stored under `name`; 503 when it is not enabled."""
    settings = _configured()
    factory = _factories(settings).get(name)
    if factory is None:
        raise PaymentsNotConfigured(
            _("The payment provider {name} is not enabled (TOURLINE_PAYMENT_PROVIDERS).").format(
                name=name
            )
        )
    return _make(factory, settings)


def checkout_provider() -> PaymentProvider:
    """The provider tourists pay through: the first enabled one that takes their payments."""
    settings = _configured()
    for factory in _factories(settings).values():
        if factory.checkout:
            return _make(factory, settings)
    raise PaymentsNotConfigured(
        _("No enabled payment provider takes payments (TOURLINE_PAYMENT_PROVIDERS).")
    )


def stripe_provider() -> StripeProvider:
    """Stripe, for what only Stripe has (its webhook)."""
    return cast(StripeProvider, get_provider(StripeProvider.name))
