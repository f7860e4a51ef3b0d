"""One Stripe provider per event loop, whose connections are the process's shared Stripe
HTTP client: loops that come and go (CLI commands, tests) leave nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from app.core import http_clients
from app.payments import providers

# The Stripe SDK's httpx client posts form bodies the way httpx now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_loops_that_come_and_go_leave_no_provider_nor_closer_behind(
    stripe_server: str,
) -> None:
    first = providers.stripe_provider()
    assert providers.stripe_provider() is first
    closers, cached = len(http_clients._closers), len(providers._providers)

    async def in_another_loop() -> tuple[providers.StripeProvider, str]:
        provider = providers.stripe_provider()
        # It works there, on that loop's own connections.
        with pytest.raises(providers.UnknownObject):
            await provider.fetch("pi_unknown")
        return provider, "ok"  # ended without close_all, as a loop that was cancelled

    for _ in range(3):
        other, _done = await asyncio.to_thread(asyncio.run, in_another_loop())
        assert other is not first
    assert (len(http_clients._closers), len(providers._providers)) == (closers, cached)
    # Back on this loop, a provider of this loop works.
    with pytest.raises(providers.UnknownObject):
        await providers.stripe_provider().fetch("pi_unknown")
