"""Requests to addresses that others chose (agencies' webhook URLs) reach the internet only.

An agency could otherwise point its webhook URL at the service's own network: loopback,
link-local (cloud metadata at 169.254.169.254 or fd00:ec2::254), private, unique-local,
multicast, unspecified or any other non-global address, directly or through a host name
resolving there. Such a URL is refused when it is set (`check_url`, 400) and again at each
request: `client()`'s connections resolve the name themselves, check every address, and
connect to the checked one, so a name that resolves elsewhere between the check and the
connection (DNS rebinding) changes nothing. Only https is allowed (and http for
development). `TOURLINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS` lifts both limits, for development
and for tests whose receivers listen on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused even where Python counts them as global (cloud metadata services, shared address
# space of carrier-grade NAT).
EXTRA_REFUSED = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.64.0.0/10"),
)
# How long checking a URL when it is set may wait for DNS.
RESOLVE_TIMEOUT_SECONDS = 3.0

_allow_private = False


def configure(settings: Settings) -> None:
    global _allow_private
    _allow_private = settings.webhook_allow_private_networks


def private_networks_allowed() -> bool:
    return _allow_private


def allow_private_networks(allowed: bool) -> None:
    """Set at process start (`configure`), and by tests around a local receiver."""
    global _allow_private
    _allow_private = allowed


def refused(address: IPAddress) -> bool:
    """Whether `address` is outside the public internet (or a metadata service)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or address.teredo
        if isinstance(embedded, tuple):  # teredo: (server, client)
            embedded = embedded[1]
        if embedded is not None and refused(embedded):
            return True
    return (
        not address.is_global
        or address.is_multicast
        or any(address in network for network in EXTRA_REFUSED)
    )


def _schemes() -> tuple[str, ...]:
    return ("https", "http") if _allow_private else ("https",)


class RefusedTarget(Exception):
    """The URL's scheme, or an address its host resolves to, is not allowed."""


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _first_allowed(host: str, addresses: Iterable[IPAddress]) -> IPAddress:
    """The address to connect to: every one must be allowed (a name with one public and one
    private address would let the private one through on another resolution)."""
    found = list(addresses)
    if not found:
        raise RefusedTarget(f"{host} resolves to no address")
    if not _allow_private:
        for address in found:
            if refused(address):
                raise RefusedTarget(f"{host} resolves to {address}, which is not public")
    return found[0]


async def check_url(field: str, url: str) -> None:
    """400 naming `field` if `url` may not be requested: a scheme other than https (and
    http where allowed), or a host that is, or resolves to, a non-public address. A name
    that does not resolve now is accepted; each request checks again."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _schemes():
        raise InvalidInput(field, _("Use an https:// address."), code="webhook_url_refused")
    host = parts.hostname
    if not host:
        raise InvalidInput(field, _("This has the wrong format."))
    if _allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        addresses = await asyncio.wait_for(_resolve(host, port), RESOLVE_TIMEOUT_SECONDS)
    except ValueError as exc:  # a port out of range
        raise InvalidInput(field, _("This has the wrong format.")) from exc
    except (OSError, TimeoutError):
        return
    try:
        _first_allowed(host, addresses)
    except RefusedTarget as exc:
        raise InvalidInput(
            field,
            _("This address is not on the public internet: private, local and cloud "
              "metadata addresses are refused."),
            code="webhook_url_refused",
        ) from exc  # fmt: skip


def check_scheme(url: str) -> None:
    """Refuse (RefusedTarget) a URL whose scheme is not allowed now."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _schemes():
        raise RefusedTarget(f"the scheme {scheme or '(none)'} is not allowed")


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens connections only to checked addresses: resolves the host, refuses it if any
    address is not public, and connects to the address it checked (TLS still verifies the
    certificate against the host name)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await _resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        try:
            address = _first_allowed(host, addresses)
        except RefusedTarget as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from exc
        return await self._inner.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )  # fmt: skip

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def client(timeout: float) -> httpx.AsyncClient:
    """A client whose connections go only where `refused` allows (unless private networks
    are allowed). No proxy from the environment (it would resolve the name itself) and
    no redirects (they would lead anywhere)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its pool without a way to pass a network backend; this is the one place
    # that sets it (tests/integration/partners/test_webhook_targets.py shows it works).
    transport._pool._network_backend = _CheckedBackend()
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
