"""What operators see of the running service: the request id on every answer, /metrics
(requests by route template, bookings, holds expired, payments, refunds, backlogs, job runs
and failures), /ready, and JSON log lines that carry the request id and the booking."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.asgi import create_app
from app.core import clock
from app.core.settings import PROJECT_ROOT, get_settings
from app.core.tables import OutboxMessage
from app.notifications.tables import Notification, NotificationStatus
from app.partners.tables import WebhookDelivery, WebhookStatus
from tests.assertions import ok, problem
from tests.conftest import Account
from tests.factories import create_departure, in_days, published_bus_departure
from tests.servers import free_port
from workers.jobs import STEPS, tick

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
AGENCIES = "/api/v1/operator/agencies"
DEPARTURE_TEMPLATE = "/api/v1/departures/{departure_id}"
CONTACT = {"name": "王小明", "email": "xiaoming@example.cn", "phone": "+86 138 0000 0000"}
OCTO_CONTACT = {"contact": {"fullName": "Li Lei", "emailAddress": "li@example.cn"}}
HEX32 = re.compile(r"^[0-9a-f]{32}$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# ---------------------------------------------------------------- helpers


def app_client(**overrides: Any) -> httpx.AsyncClient:
    settings = dataclasses.replace(get_settings(), **overrides)
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


def plain(route: str) -> str:
    """A route template without parameter types ({id:uuid} and {id} are the same route)."""
    return re.sub(r":\w+}", "}", route)


def request_count(samples: Samples, method: str, route: str, status: str) -> float:
    return sum(
        count
        for (name, labels), count in samples.items()
        if name == "tourline_http_requests_total"
        and dict(labels).get("method") == method
        and plain(dict(labels).get("route", "")) == route
        and dict(labels).get("status") == status
    )


def latency(samples: Samples, suffix: str, method: str, route: str, **extra: str) -> float:
    return sum(
        count
        for (name, labels), count in samples.items()
        if name == f"tourline_http_request_duration_seconds{suffix}"
        and dict(labels).get("method") == method
        and plain(dict(labels).get("route", "")) == route
        and all(dict(labels).get(k) == v for k, v in extra.items())
    )


async def scrape(api: httpx.AsyncClient, **headers: str) -> Samples:
    response = await api.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def hold(client: httpx.AsyncClient, departure_id: str, adults: int = 1) -> dict[str, Any]:
    body = {
        "departure_id": departure_id,
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": adults}],
    }
    created: dict[str, Any] = ok(await client.post(BOOKINGS, json=body), 201)
    return created


async def pay_free(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    reference = created["booking"]["reference"]
    guest = {"X-Booking-Token": created["access_token"]}
    passengers = [{"name": f"Passenger {i}"} for i, _ in enumerate(created["booking"]["lines"])]
    ok(
        await client.patch(
            f"{BOOKINGS}/{reference}",
            json={"contact": CONTACT, "passengers": passengers},
            headers=guest,
        )
    )
    started = ok(await client.post(f"{BOOKINGS}/{reference}/payments", headers=guest))
    assert (started["provider"], started["status"]) == ("free", "confirmed")


async def octo_headers(client: httpx.AsyncClient, operator: Account) -> dict[str, str]:
    body = {"name": "Metric Tours", "contact_email": "ops@metric.example", "credit_limit": 10**7}
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    key = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )["key"]
    return {"Authorization": f"Bearer {key}", "Octo-Capabilities": "octo/pricing"}


async def on_account_booking_cancelled(
    client: httpx.AsyncClient, operator: Account, route: dict[str, Any], departure_id: str
) -> None:
    """An agency holds, confirms (paid on account) and cancels (refunded on account)."""
    headers = await octo_headers(client, operator)
    held = ok(
        await client.post(
            "/octo/bookings",
            json={
                "uuid": "metrics-1",
                "productId": route["id"],
                "optionId": "standard",
                "availabilityId": departure_id,
                "unitItems": [{"unitId": "adult"}],
            },
            headers=headers,
        )
    )
    assert held["status"] == "ON_HOLD"
    confirmed = ok(
        await client.post("/octo/bookings/metrics-1/confirm", json=OCTO_CONTACT, headers=headers)
    )
    assert confirmed["status"] == "CONFIRMED"
    cancelled = ok(await client.post("/octo/bookings/metrics-1/cancel", json={}, headers=headers))
    assert cancelled["status"] == "CANCELLED"


# ---------------------------------------------------------------- request id


async def test_request_id_is_made_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/api/v1/no-such-thing")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(HEX32.match(request_id) for request_id in ids), ids
    assert ids[0] != ids[1]
    assert second.status_code == 404


@pytest.mark.parametrize(
    "given",
    ["abc-123", "trace.2026-11-30T01:02:03Z_x", "A" * 64, "0af7651916cd43dd8448eb211c80319c"],
)
async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient, given: str) -> None:
    for response in (
        await client.get("/health", headers={"X-Request-ID": given}),
        await client.get("/api/v1/routes/nowhere", headers={"X-Request-ID": given}),
        await client.post("/api/v1/auth/login", json={}, headers={"X-Request-ID": given}),
    ):
        assert response.headers["X-Request-ID"] == given
        assert response.headers.get_list("X-Request-ID") == [given]


@pytest.mark.parametrize(
    "given",
    ["has spaces", "A" * 65, "tab\there", 'quote"d', "semi;colon", "<script>", "ünïcode", ""],
)
async def test_an_invalid_request_id_is_replaced(client: httpx.AsyncClient, given: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": given.encode("utf-8")})
    assert response.status_code == 200
    assert HEX32.match(response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != given


# ---------------------------------------------------------------- /metrics


async def test_metrics_count_requests_by_route_and_the_booking_lifecycle(
    client: httpx.AsyncClient, operator: Account
) -> None:
    start = clock.now()
    with clock.frozen(start):
        route, vehicle, departure = await published_bus_departure(client, operator.headers)
        free_departure = await create_departure(
            client, operator.headers, route, vehicle, in_days(11)
        )
        zero = [
            {"seat_class": "standard", "passenger_type": kind, "amount": 0}
            for kind in ("adult", "child")
        ]
        ok(
            await client.put(
                f"{DEPARTURES}/{free_departure['id']}/fares",
                json={"fares": zero},
                headers=operator.headers,
            )
        )
        before = await scrape(client)

        for departure_id in (departure["id"], departure["id"], free_departure["id"]):
            ok(await client.get(f"/api/v1/departures/{departure_id}"))
        problem(await client.get("/api/v1/no-such-thing"), 404)
        expiring = await hold(client, departure["id"], adults=2)
        free = await hold(client, free_departure["id"])
        await pay_free(client, free)
        await on_account_booking_cancelled(client, operator, route, departure["id"])
        middle = await scrape(client)
        outbox_waiting = await OutboxMessage.count().where(
            OutboxMessage.done_at.is_null() & OutboxMessage.failed_at.is_null()
        )
        clock.advance(timedelta(minutes=16))
        done = await tick()
        assert done["expired"] == 1
        waiting = await hold(client, departure["id"])
        after = await scrape(client)

    # Requests, by route template: one series for every departure id.
    assert (
        request_count(after, "GET", DEPARTURE_TEMPLATE, "200")
        - request_count(before, "GET", DEPARTURE_TEMPLATE, "200")
        == 3
    )
    assert (
        request_count(after, "POST", BOOKINGS, "201")
        - request_count(before, "POST", BOOKINGS, "201")
        == 3
    )
    assert (
        request_count(after, "GET", "unmatched", "404")
        - request_count(before, "GET", "unmatched", "404")
        == 1
    )
    routes = {labels["route"] for labels in series(after, "tourline_http_requests_total")}
    for concrete in (departure["id"], free_departure["id"], free["booking"]["reference"]):
        assert not any(concrete in route_label for route_label in routes), routes
    assert "/api/v1/no-such-thing" not in routes
    count_delta = latency(after, "_count", "GET", DEPARTURE_TEMPLATE) - latency(
        before, "_count", "GET", DEPARTURE_TEMPLATE
    )
    assert count_delta == 3
    inf_delta = latency(after, "_bucket", "GET", DEPARTURE_TEMPLATE, le="+Inf") - latency(
        before, "_bucket", "GET", DEPARTURE_TEMPLATE, le="+Inf"
    )
    assert inf_delta == 3
    assert latency(after, "_sum", "GET", DEPARTURE_TEMPLATE) > latency(
        before, "_sum", "GET", DEPARTURE_TEMPLATE
    )

    # Bookings by status, read from the database.
    assert {
        status: value(after, "tourline_bookings", status=status)
        for status in ("on_hold", "confirmed", "cancelled", "expired")
    } == {"on_hold": 1, "confirmed": 1, "cancelled": 1, "expired": 1}
    assert waiting["booking"]["status"] == "on_hold"
    assert expiring["booking"]["reference"] != waiting["booking"]["reference"]
    assert value(after, "tourline_holds_expired_total") == 1
    assert value(before, "tourline_holds_expired_total") == 0
    assert {labels["provider"] for labels in series(after, "tourline_payments_total")} == {
        "free",
        "on_account",
    }
    assert value(after, "tourline_payments_total", provider="free", status="succeeded") == 1
    assert value(after, "tourline_payments_total", provider="on_account", status="succeeded") == 1
    assert series(after, "tourline_refunds_total") == [
        {"provider": "on_account", "status": "succeeded"}
    ]
    assert value(after, "tourline_refunds_total", provider="on_account", status="succeeded") == 1

    # Backlogs: what is still waiting in the database.
    outbox = await OutboxMessage.count().where(
        OutboxMessage.done_at.is_null() & OutboxMessage.failed_at.is_null()
    )
    notifications = await Notification.count().where(
        Notification.status == NotificationStatus.pending.value
    )
    webhooks = await WebhookDelivery.count().where(
        WebhookDelivery.status == WebhookStatus.pending.value
    )
    assert {labels["queue"] for labels in series(after, "tourline_backlog")} == {
        "outbox",
        "notifications",
        "webhooks",
    }
    # Before the tick: the confirmations, the cancellation and the refund were waiting.
    assert outbox_waiting >= 3
    assert value(middle, "tourline_backlog", queue="outbox") == outbox_waiting
    # After it, the outbox is empty and what it produced is counted where it waits.
    assert outbox == 0
    assert value(after, "tourline_backlog", queue="outbox") == 0
    assert value(after, "tourline_backlog", queue="notifications") == notifications
    assert value(after, "tourline_backlog", queue="webhooks") == webhooks

    # The tick counted each of its steps once, in this process (no Redis here).
    for name in (step.name for step in STEPS):
        assert (
            value(after, "tourline_job_runs_total", job=name)
            - value(before, "tourline_job_runs_total", job=name)
            == 1
        ), name
    assert value(after, "tourline_job_failures_total", job="expired") == value(
        before, "tourline_job_failures_total", job="expired"
    )


TICK_ONCE = """
import asyncio
from app.asgi import configure_process
from app.core import database
from app.core.settings import get_settings
from workers.jobs import tick

async def main():
    configure_process(get_settings())
    await database.open_database(get_settings())
    try:
        print(sorted(await tick()))
    finally:
        await database.close_database()

asyncio.run(main())
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_job_runs_and_failures_are_counted_in_redis_across_processes(
    client: httpx.AsyncClient, operator: Account, redis_url: str, stripe_server: str
) -> None:
    # A card payment is started (Stripe is up), then Stripe goes away: the worker's
    # payment sync step fails, the others run.
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    created = await hold(client, departure["id"])
    reference = created["booking"]["reference"]
    guest = {"X-Booking-Token": created["access_token"]}
    ok(
        await client.patch(
            f"{BOOKINGS}/{reference}",
            json={"contact": CONTACT, "passengers": [{"name": "Zhang Wei"}]},
            headers=guest,
        )
    )
    started = ok(await client.post(f"{BOOKINGS}/{reference}/payments", headers=guest))
    assert started["provider"] == "stripe"

    async with app_client(redis_url=redis_url) as api, app_client(redis_url="") as local:
        before = await scrape(api)
        local_before = await scrape(local)
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "STRIPE_API_BASE": f"http://127.0.0.1:{_closed_port()}",
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TICK_ONCE, cwd=PROJECT_ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(worker.communicate(), timeout=60)
        assert worker.returncode == 0, err.decode()
        after = await scrape(api)
        local_after = await scrape(local)

    steps = [step.name for step in STEPS]
    for name in steps:
        runs = value(after, "tourline_job_runs_total", job=name) - value(
            before, "tourline_job_runs_total", job=name
        )
        assert runs >= 1, (name, err.decode())
    failed = value(after, "tourline_job_failures_total", job="payments_synced") - value(
        before, "tourline_job_failures_total", job="payments_synced"
    )
    assert failed >= 1, err.decode()
    # The step that expires holds did not fail.
    assert value(after, "tourline_job_failures_total", job="expired") == value(
        before, "tourline_job_failures_total", job="expired"
    )
    # Read from Redis: an app without Redis counts only its own process's runs.
    assert value(local_after, "tourline_job_runs_total", job="payments_synced") == value(
        local_before, "tourline_job_runs_total", job="payments_synced"
    )


async def test_made_up_methods_share_one_series(client: httpx.AsyncClient) -> None:
    """Any method name a client invents is counted as OTHER: they cannot grow the series."""
    before = await scrape(client)
    for method in ("BREW", "WHEN", "BREW"):
        response = await client.request(method, "/health")
        assert response.status_code == 405
    after = await scrape(client)
    grown = request_count(after, "OTHER", "unmatched", "405") - request_count(
        before, "OTHER", "unmatched", "405"
    )
    other_routes = {
        dict(labels).get("route")
        for (name, labels) in after
        if name == "tourline_http_requests_total" and dict(labels).get("method") == "OTHER"
    }
    assert (grown, other_routes) == (3, {"unmatched"})
    assert not [s for s in series(after, "tourline_http_requests_total") if s["method"] == "BREW"]


async def test_metrics_token_is_required_when_set(migrated_database: None) -> None:
    token = "metrics-token-0123456789abcdef"
    async with app_client(metrics_token=token) as api:
        problem(await api.get("/metrics"), 401, "metrics_token_required")
        problem(await api.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
        problem(await api.get("/metrics", headers={"Authorization": f"Bearer {token}x"}), 401)
        samples = await scrape(api, Authorization=f"Bearer {token}")
        assert series(samples, "tourline_bookings")
        # The probes stay open.
        assert (await api.get("/health")).status_code == 200
        assert (await api.get("/ready")).status_code == 200
    async with app_client(metrics_token="") as open_api:
        assert (await open_api.get("/metrics")).status_code == 200


# ---------------------------------------------------------------- /ready


async def test_ready_checks_the_database_and_a_configured_redis(
    migrated_database: None, redis_url: str
) -> None:
    async with app_client(redis_url=redis_url) as api:
        response = await api.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    async with app_client(redis_url=f"redis://127.0.0.1:{_closed_port()}/0") as api:
        response = await api.get("/ready")
        health = await api.get("/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")
    # Liveness does not depend on Redis.
    assert health.status_code == 200


# ---------------------------------------------------------------- JSON logs


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def test_a_real_server_logs_json_lines_with_request_id_and_booking(
    client: httpx.AsyncClient, operator: Account, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.stderr"
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(TOURLINE_ENV="development", TOURLINE_LOG_FORMAT="json")
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "app.asgi:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port),
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    answers: dict[str, httpx.Response] = {}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                assert process.returncode is None, _read(log)
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, _read(log)
                await asyncio.sleep(0.1)
            answers["plain"] = await http.get("/api/v1/routes")
            answers["given"] = await http.get(
                "/api/v1/routes", headers={"X-Request-ID": "client-chose-this-1"}
            )
            answers["missing"] = await http.get(
                "/api/v1/nothing/here", headers={"X-Request-ID": "client-404"}
            )
            answers["departure"] = await http.get(f"/api/v1/departures/{departure['id']}")
            answers["booking"] = await http.post(
                BOOKINGS,
                json={
                    "departure_id": departure["id"],
                    "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
                },
            )
            created = answers["booking"].json()
            reference = created["booking"]["reference"]
            answers["view"] = await http.get(
                f"{BOOKINGS}/{reference}", headers={"X-Booking-Token": created["access_token"]}
            )
            answers["after"] = await http.get("/api/v1/routes")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()

    assert answers["booking"].status_code == 201, answers["booking"].text
    assert answers["missing"].status_code == 404
    lines = [line for line in _read(log).splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}\n\n" + "\n".join(lines)) from None
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    access = {
        entry["request_id"]: entry for entry in entries if entry["logger"] == "tourline.access"
    }
    expected = {
        "plain": ("GET", "/api/v1/routes", "/api/v1/routes", 200),
        "given": ("GET", "/api/v1/routes", "/api/v1/routes", 200),
        "missing": ("GET", "/api/v1/nothing/here", "unmatched", 404),
        "departure": ("GET", f"/api/v1/departures/{departure['id']}", DEPARTURE_TEMPLATE, 200),
        "booking": ("POST", BOOKINGS, BOOKINGS, 201),
        "view": ("GET", f"{BOOKINGS}/{reference}", f"{BOOKINGS}/{{reference}}", 200),
        "after": ("GET", "/api/v1/routes", "/api/v1/routes", 200),
    }
    assert answers["given"].headers["X-Request-ID"] == "client-chose-this-1"
    assert HEX32.match(answers["plain"].headers["X-Request-ID"])
    for name, (method, path, route, status) in expected.items():
        request_id = answers[name].headers["X-Request-ID"]
        assert request_id in access, (name, list(access))
        line = access[request_id]
        assert (line["method"], line["path"], plain(line["route"]), line["status"]) == (
            method, path, route, status,
        ), line  # fmt: skip
        assert isinstance(line["duration_ms"], int | float)
        assert line["duration_ms"] >= 0
        assert line["level"] == "info"
    # Lines written while handling a booking name it; the others name none.
    assert access[answers["booking"].headers["X-Request-ID"]]["booking"] == reference
    assert access[answers["view"].headers["X-Request-ID"]]["booking"] == reference
    for name in ("plain", "given", "missing", "departure", "after"):
        assert "booking" not in access[answers[name].headers["X-Request-ID"]]
    # The server's own start-up and shutdown lines are JSON too, without a request id.
    server_lines = [e for e in entries if e["logger"].startswith("uvicorn")]
    assert any("startup complete" in e["message"].lower() for e in server_lines), server_lines
    assert all("request_id" not in e for e in server_lines)
