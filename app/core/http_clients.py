"""One HTTP client per process (and event loop) for each kind of outgoing call (agency
webhooks, Stripe), instead of one per call: a new client costs a connection, a TLS
handshake and milliseconds of CPU each time. Closed on shutdown (`close_all`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

_clients: dict[str, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}
_closers: list[tuple[asyncio.AbstractEventLoop, Callable[[], Awaitable[None]]]] = []


def shared(name: str, make: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """This event loop's client called `name`, made by `make` on first use."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(name)
    if entry is None or entry[0] is not loop or entry[1].is_closed:
        entry = _clients[name] = (loop, make())
    return entry[1]


def on_close(closer: Callable[[], Awaitable[None]]) -> None:
    """Have `close_all` also run `closer` (a client kept elsewhere, e.g. Stripe's)."""
    _closers.append((asyncio.get_running_loop(), closer))


async def close_all() -> None:
    """Close this event loop's clients (on shutdown)."""
    loop = asyncio.get_running_loop()
    for name, (client_loop, client) in list(_clients.items()):
        if client_loop is loop:
            del _clients[name]
            with contextlib.suppress(Exception):
                await client.aclose()
    for entry in [entry for entry in _closers if entry[0] is loop]:
        _closers.remove(entry)
        with contextlib.suppress(Exception):
            await entry[1]()
