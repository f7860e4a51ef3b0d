"""Agencies' webhooks reach the public internet only (no server-side request forgery), and
what an endpoint answers is never kept or shown: only its status and timing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.core import outbound
from app.partners.tables import WebhookAttempt, WebhookDelivery
from app.partners.webhooks import deliver_due_webhooks, queue_event
from tests.assertions import ok, problem
from tests.conftest import Account
from tests.servers import start_web_endpoint

AGENCIES = "/api/v1/operator/agencies"
SECRET_PAGE = "internal-admin-page: db_password=hunter2"

REFUSED_URLS = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://localhost/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://2130706433/hook",  # 127.0.0.1, written as one number
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.1.1/hook",
    "https://[fe80::1]/hook",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[fc00::1]/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.10/hook",
    "https://100.64.0.1/hook",
    "https://224.0.0.1/hook",
    "https://[ff02::1]/hook",
    "https://240.0.0.1/hook",
]


@pytest.fixture
def private_networks_refused() -> Iterator[None]:
    """The production default, whatever this process was configured with."""
    outbound.allow_private_networks(False)
    try:
        yield
    finally:
        outbound.allow_private_networks(False)


async def create_agency(client: httpx.AsyncClient, operator: Account, url: str) -> httpx.Response:
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example", "webhook_url": url}
    return await client.post(AGENCIES, json=body, headers=operator.headers)


def refused_field(response: httpx.Response) -> None:
    body = problem(response, 400)
    assert [e["field"] for e in body["errors"]] == ["webhook_url"], body


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_a_non_public_webhook_address_is_refused_when_set(
    client: httpx.AsyncClient, operator: Account, private_networks_refused: None, url: str
) -> None:
    refused_field(await create_agency(client, operator, url))
    agency = ok(await create_agency(client, operator, "https://93.184.216.34/hooks"), 201)
    patched = await client.patch(
        f"{AGENCIES}/{agency['id']}", json={"webhook_url": url}, headers=operator.headers
    )
    refused_field(patched)
    shown = ok(await client.get(f"{AGENCIES}/{agency['id']}", headers=operator.headers))
    assert shown["webhook_url"] == "https://93.184.216.34/hooks"


async def test_plain_http_is_refused_unless_private_networks_are_allowed(
    client: httpx.AsyncClient, operator: Account, private_networks_refused: None
) -> None:
    refused_field(await create_agency(client, operator, "http://93.184.216.34/hooks"))
    outbound.allow_private_networks(True)
    ok(await create_agency(client, operator, "http://127.0.0.1:9/hooks"), 201)


async def test_public_and_unresolvable_names_are_accepted_when_set(
    client: httpx.AsyncClient, operator: Account, private_networks_refused: None
) -> None:
    # Not resolvable now: accepted, and checked again at each delivery.
    ok(await create_agency(client, operator, "https://hooks.agency.example/tourline"), 201)
    ok(await create_agency(client, operator, "https://[2606:4700::1111]/hooks"), 201)


class Endpoint:
    """A local receiver that answers 500 with a page nobody outside may see."""

    def __init__(self) -> None:
        self.base = ""
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append(request.headers.get("Host", ""))
        return web.Response(status=500, text=SECRET_PAGE)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    state = Endpoint()
    runner, state.base = await start_web_endpoint({"/{tail:.*}": state.handle})
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names this test resolves itself (as a DNS server under an attacker's control would),
    every other name as usual."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


async def _log(client: httpx.AsyncClient, operator: Account, agency_id: str) -> dict[str, Any]:
    return dict(ok(await client.get(f"{AGENCIES}/{agency_id}/webhooks", headers=operator.headers)))


async def test_an_address_that_turns_private_is_refused_at_delivery(
    client: httpx.AsyncClient,
    operator: Account,
    endpoint: Endpoint,
    dns: dict[str, str],
    private_networks_refused: None,
) -> None:
    port = endpoint.base.rsplit(":", 1)[1]
    # Not resolvable when it is set (or public then): accepted.
    agency = ok(await create_agency(client, operator, f"https://rebind.test:{port}/hook"), 201)
    # By delivery time the name points at this machine.
    dns["rebind.test"] = "127.0.0.1"
    assert await queue_event(agency["id"], "test.ping", "webhook:test:rebind", {"n": 1})
    assert await deliver_due_webhooks() == 0
    assert endpoint.hits == []
    [attempt] = await WebhookAttempt.select().run()
    assert attempt["status_code"] is None
    assert "refused" in attempt["error"]
    assert "127.0.0.1" in attempt["error"]


async def test_http_stored_earlier_is_refused_at_delivery_once_not_allowed(
    client: httpx.AsyncClient, operator: Account, endpoint: Endpoint
) -> None:
    outbound.allow_private_networks(True)
    try:
        agency = ok(await create_agency(client, operator, f"{endpoint.base}/hook"), 201)
    finally:
        outbound.allow_private_networks(False)
    assert await queue_event(agency["id"], "test.ping", "webhook:test:http", {"n": 1})
    assert await deliver_due_webhooks() == 0
    assert endpoint.hits == []
    [attempt] = await WebhookAttempt.select().run()
    assert attempt["error"].startswith("refused")


async def test_delivery_connects_to_the_address_it_checked_and_keeps_no_answer(
    client: httpx.AsyncClient,
    operator: Account,
    endpoint: Endpoint,
    dns: dict[str, str],
    private_webhook_targets: None,
) -> None:
    port = endpoint.base.rsplit(":", 1)[1]
    dns["agency-hooks.test"] = "127.0.0.1"
    agency = ok(await create_agency(client, operator, f"http://agency-hooks.test:{port}/hook"), 201)
    assert await queue_event(agency["id"], "test.ping", "webhook:test:body", {"n": 1})
    assert await deliver_due_webhooks() == 0
    # Reached through the name's checked address, with the name as the host.
    assert endpoint.hits == [f"agency-hooks.test:{port}"]
    log = await _log(client, operator, agency["id"])
    [item] = log["items"]
    assert item["last_status_code"] == 500
    assert item["last_error"] == "HTTP 500"
    [attempt] = item["attempt_log"]
    assert (attempt["status_code"], attempt["error"]) == (500, "HTTP 500")
    assert attempt["duration_ms"] >= 0
    # The endpoint's page is nowhere: not in the operator's log, not in the database.
    assert "hunter2" not in str(log)
    rows = [*await WebhookAttempt.select().run(), *await WebhookDelivery.select().run()]
    assert "hunter2" not in str(rows)
