"""What every caller gets whatever the route, and what keeps abuse out: security headers
(HSTS in production), CORS, the body size limit, the per-IP limit on the public API (shared
by real server processes through Redis), failed-login throttling, production refusing
development settings, error answers without internals, and the staff audit log."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import get

from app.asgi import create_app
from app.booking.tables import Booking
from app.catalogue.tables import Route
from app.core import clock
from app.core.settings import DEVELOPMENT_SECRET_KEY, PROJECT_ROOT, Settings, get_settings
from tests.assertions import ok, problem
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import (
    BUS_LAYOUT,
    in_days,
    itinerary_payload,
    published_bus_departure,
    route_payload,
)
from tests.servers import api_servers, free_port, inside_one_minute

MakeOperator = Callable[..., Awaitable[Account]]

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
LOGIN = "/api/v1/auth/login"
ROUTES = "/api/v1/operator/routes"
DEPARTURES = "/api/v1/operator/departures"
OPERATOR_AUDIT = "/api/v1/operator/audit"
ADMIN_AUDIT = "/api/v1/admin/audit"
SHOP = "https://shop.example"
NO_ID = "00000000-0000-0000-0000-000000000000"


# ---------------------------------------------------------------- helpers


def app_client(client_ip: str = "127.0.0.1", **overrides: Any) -> httpx.AsyncClient:
    """The app built with the test settings changed by `overrides`, called from `client_ip`."""
    settings = dataclasses.replace(get_settings(), **overrides)
    return client_for(settings, client_ip)


def client_for(settings: Settings, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=create_app(settings), raise_app_exceptions=False, client=(client_ip, 40123)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def random_ip() -> str:
    """A private address (10/8) that no other test uses."""
    return "10." + ".".join(str(secrets.randbelow(250) + 1) for _ in range(3))


def window_start(seconds: int, offset: int = 10) -> datetime:
    """`offset` seconds into the current counting window of `seconds`."""
    now = int(clock.now().timestamp())
    return datetime.fromtimestamp((now // seconds) * seconds + offset).astimezone()


def production_settings(**overrides: Any) -> Settings:
    """Settings that pass the production checks: PostgreSQL, a strong secret, real hashing."""
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://tourline@db.internal:5432/tourline",
        "secret_key": secrets.token_urlsafe(48),
        "password_hashing": "standard",
        "stripe_secret_key": "sk_live_x",
        "stripe_webhook_secret": "whsec_x",
        "public_url": "https://tourline.example",
        **overrides,
    }
    return dataclasses.replace(get_settings(), **values)


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """A non-test app configures the process's logging: put pytest's back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    named = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
               logging.getLogger(name).disabled)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "arq")
    }  # fmt: skip
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, propagate, disabled) in named.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.disabled = disabled


def assert_security_headers(response: httpx.Response, *, hsts: bool = False) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Security-Policy"] == API_CSP
    assert headers["Cache-Control"] == "no-store"
    if hsts:
        hsts_value = headers["Strict-Transport-Security"]
        max_age = int(re.search(r"max-age=(\d+)", hsts_value).group(1))  # type: ignore[union-attr]
        assert max_age >= 180 * 24 * 3600
        assert "includeSubDomains" in hsts_value
    else:
        assert "Strict-Transport-Security" not in headers


async def manifest_departure(client: httpx.AsyncClient, operator: Account) -> str:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    return str(departure["id"])


# ---------------------------------------------------------------- security headers


async def test_security_headers_on_json_404_problem_and_csv_answers(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure_id = await manifest_departure(client, operator)
    answers = {
        "json": await client.get("/api/v1/routes"),
        "404": await client.get("/api/v1/no-such-thing"),
        "problem": await client.post(
            LOGIN, json={"email": operator.email, "password": "wrong-password-123"}
        ),
        "unauthorized": await client.get(ROUTES),
        "csv": await client.get(
            f"{DEPARTURES}/{departure_id}/manifest?format=csv", headers=operator.headers
        ),
        "staff json": await client.get(ROUTES, headers=operator.headers),
    }
    assert answers["json"].status_code == 200
    problem(answers["404"], 404, "not_found")
    problem(answers["problem"], 401, "invalid_credentials")
    problem(answers["unauthorized"], 401)
    assert answers["csv"].status_code == 200, answers["csv"].text
    assert answers["csv"].headers["content-type"].startswith("text/csv")
    assert answers["staff json"].status_code == 200
    for name, response in answers.items():
        try:
            # Not production: no HSTS (it would pin plain-HTTP development hosts).
            assert_security_headers(response, hsts=False)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {dict(response.headers)}") from exc


async def test_the_docs_page_gets_the_relaxed_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert csp != API_CSP
    assert "script-src" in csp
    assert "default-src 'none'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_production_answers_carry_hsts(
    client: httpx.AsyncClient, operator: Account, keep_logging: None
) -> None:
    departure_id = await manifest_departure(client, operator)
    async with client_for(production_settings()) as production:
        answers = [
            await production.get("/api/v1/routes"),
            await production.get("/api/v1/no-such-thing"),
            await production.get(ROUTES),
            await production.get(
                f"{DEPARTURES}/{departure_id}/manifest?format=csv", headers=operator.headers
            ),
        ]
        docs = await production.get("/schema")
    assert [a.status_code for a in answers] == [200, 404, 401, 200]
    for response in answers:
        assert_security_headers(response, hsts=True)
    assert "max-age=" in docs.headers["Strict-Transport-Security"]


# ---------------------------------------------------------------- CORS


async def test_cors_allows_the_configured_origin_only(migrated_database: None) -> None:
    async with app_client(cors_origins=(SHOP,)) as shop_api:
        preflight = await shop_api.options(
            "/api/v1/bookings",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-booking-token",
            },
        )
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
        allowed_methods = preflight.headers["Access-Control-Allow-Methods"].upper()
        assert "POST" in allowed_methods or "*" in allowed_methods
        allowed_headers = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert "x-booking-token" in allowed_headers or "*" in allowed_headers

        listed = await shop_api.get("/api/v1/routes", headers={"Origin": SHOP})
        assert listed.status_code == 200
        assert listed.headers["Access-Control-Allow-Origin"] == SHOP

        other = "https://evil.example"
        refused = await shop_api.options(
            "/api/v1/bookings",
            headers={"Origin": other, "Access-Control-Request-Method": "POST"},
        )
        assert refused.headers.get("Access-Control-Allow-Origin") not in (other, "*")
        assert refused.status_code >= 400
        foreign = await shop_api.get("/api/v1/routes", headers={"Origin": other})
        assert "Access-Control-Allow-Origin" not in foreign.headers

    # Without configured origins no origin is allowed.
    async with app_client(cors_origins=()) as closed:
        listed = await closed.get("/api/v1/routes", headers={"Origin": SHOP})
        assert "Access-Control-Allow-Origin" not in listed.headers


# ---------------------------------------------------------------- body size


async def test_a_body_over_the_limit_is_413_and_writes_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    limit = 4096
    async with app_client(max_body_bytes=limit) as small:
        big_route = route_payload(slug="too-big", description={"en": "x" * limit, "zh_Hans": "长"})
        response = await small.post(ROUTES, json=big_route, headers=operator.headers)
        body = problem(response, 413, "payload_too_large")
        assert "x" * 100 not in response.text
        assert body["title"]
        assert not await Route.exists().where(Route.slug == "too-big").run()

        booking = {
            "departure_id": departure["id"],
            "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
            "contact": {"name": "x" * limit, "email": "a@example.cn", "phone": "+86 1"},
        }
        response = await small.post("/api/v1/bookings", json=booking)
        problem(response, 413, "payload_too_large")
        assert await Booking.count().run() == 0

        # Under the limit the same endpoints work.
        response = await small.post(
            ROUTES, json=route_payload(slug="small"), headers=operator.headers
        )
        assert response.status_code == 201, response.text


# ---------------------------------------------------------------- per-IP public limit


async def test_public_limit_per_ip_is_shared_by_two_real_server_processes(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    # Both servers use this worker's (migrated) database and count in the same Redis. They
    # trust X-Forwarded-For from 127.0.0.1 (a proxy in front), so each caller below is its
    # own address, and no other test's requests share its count.
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TOURLINE_PUBLIC_RATE_LIMIT": "5",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    caller, neighbour = random_ip(), random_ip()
    async with api_servers(2, env, tmp_path) as bases, httpx.AsyncClient(timeout=10) as http:
        await inside_one_minute()
        me = {"X-Forwarded-For": caller}
        answers = [await http.get(f"{bases[n % 2]}/api/v1/routes", headers=me) for n in range(7)]
        # Over the limit: staff endpoints and probes are not limited, another address is not.
        health = [await http.get(f"{base}/health", headers=me) for base in bases]
        staff = await http.get(f"{bases[0]}{ROUTES}", headers={**me, **operator.headers})
        other = await http.get(f"{bases[1]}/api/v1/routes", headers={"X-Forwarded-For": neighbour})
        still = await http.get(f"{bases[1]}/api/v1/departures/{NO_ID}", headers=me)
    # Each process saw three or four requests: the refusals come from the shared count.
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2, [
        (a.status_code, a.text) for a in answers
    ]
    for refused in answers[5:]:
        problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
    assert [h.status_code for h in health] == [200, 200]
    assert staff.status_code == 200, staff.text
    assert other.status_code == 200, other.text
    # Any public path counts for the address, not just the one it hammered.
    problem(still, 429, "rate_limited")


async def test_public_limit_counts_each_client_address_apart(migrated_database: None) -> None:
    first, second = random_ip(), random_ip()
    with clock.frozen(window_start(60)):
        async with (
            app_client(first, public_rate_limit=3, redis_url="") as one,
            app_client(second, public_rate_limit=3, redis_url="") as two,
        ):
            # Without a trusted proxy in front, a made-up X-Forwarded-For changes nothing.
            firsts = [
                (
                    await one.get("/api/v1/routes", headers={"X-Forwarded-For": random_ip()})
                ).status_code
                for _ in range(4)
            ]
            seconds = [(await two.get("/api/v1/routes")).status_code for _ in range(3)]
            refused = await one.get(f"/api/v1/departures/{NO_ID}")
            health = await one.get("/health")
            ready = await one.get("/ready")
        assert firsts == [200, 200, 200, 429]
        assert seconds == [200, 200, 200]
        problem(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) == 50
        assert health.status_code == 200
        assert ready.status_code == 200, ready.text
        # The next minute starts afresh.
        clock.advance(timedelta(seconds=60))
        async with app_client(first, public_rate_limit=3, redis_url="") as one:
            assert (await one.get("/api/v1/routes")).status_code == 200


# ---------------------------------------------------------------- login throttling


async def new_staff(client: httpx.AsyncClient, admin: Account, name: str) -> str:
    email = f"{name}-{secrets.token_hex(4)}@tourline.test"
    response = await client.post(
        "/api/v1/operator/staff",
        json={"email": email, "name": name, "password": STAFF_PASSWORD, "role": "operator_staff"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return email


async def login(api: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await api.post(LOGIN, json={"email": email, "password": password})


async def test_failed_logins_throttle_the_email_until_the_window_ends(
    client: httpx.AsyncClient, operator: Account
) -> None:
    clerk = await new_staff(client, operator, "clerk")
    colleague = await new_staff(client, operator, "colleague")
    with clock.frozen(window_start(15 * 60)):
        async with app_client(random_ip(), login_failure_limit=3, redis_url="") as api:
            for _ in range(3):
                problem(await login(api, clerk, "wrong-password-1"), 401, "invalid_credentials")
            # The fourth attempt waits, even with the right password (and in upper case).
            throttled = await login(api, clerk.upper(), STAFF_PASSWORD)
            body = problem(throttled, 429, "login_throttled")
            assert "access_token" not in throttled.text
            assert body["title"]
            assert int(throttled.headers["Retry-After"]) == 15 * 60 - 10
            problem(await login(api, clerk, "wrong-password-1"), 429, "login_throttled")
            # Another account from the same address is not affected.
            assert "access_token" in ok(await login(api, colleague, STAFF_PASSWORD))
        clock.advance(timedelta(minutes=15))
        async with app_client(random_ip(), login_failure_limit=3, redis_url="") as api:
            assert "access_token" in ok(await login(api, clerk, STAFF_PASSWORD))


async def test_failed_logins_throttle_the_address_at_five_times_the_limit(
    client: httpx.AsyncClient, operator: Account
) -> None:
    clerk = await new_staff(client, operator, "desk")
    address = random_ip()
    with clock.frozen(window_start(15 * 60)):
        async with app_client(address, login_failure_limit=3, redis_url="") as api:
            answers = [
                (await login(api, f"guess-{n}-{secrets.token_hex(3)}@tourline.test", "nope-123"))
                .status_code
                for n in range(5)
                for _ in range(3)
            ]  # fmt: skip
            assert answers == [401] * 15
            # The sixteenth attempt from this address waits, whatever the account.
            problem(await login(api, clerk, STAFF_PASSWORD), 429, "login_throttled")
        # The same account from another address logs in.
        async with app_client(random_ip(), login_failure_limit=3, redis_url="") as elsewhere:
            assert "access_token" in ok(await login(elsewhere, clerk, STAFF_PASSWORD))


async def test_successful_logins_do_not_count_as_failures(
    client: httpx.AsyncClient, operator: Account
) -> None:
    clerk = await new_staff(client, operator, "regular")
    with clock.frozen(window_start(15 * 60)):
        async with app_client(random_ip(), login_failure_limit=3, redis_url="") as api:
            for _ in range(2):
                problem(await login(api, clerk, "wrong-password-1"), 401, "invalid_credentials")
            for _ in range(5):
                assert "access_token" in ok(await login(api, clerk, STAFF_PASSWORD))


# ---------------------------------------------------------------- production refuses


def test_production_refuses_development_settings() -> None:
    defaults = Settings(environment="production", password_hashing="fast")
    with pytest.raises(RuntimeError) as refused:
        defaults.check_production_safety()
    message = str(refused.value)
    assert "TOURLINE_SECRET_KEY" in message
    assert "DATABASE_URL" in message
    assert "TOURLINE_PASSWORD_HASHING" in message
    with pytest.raises(RuntimeError, match="refusing to start in production"):
        create_app(defaults)

    production_settings().check_production_safety()  # a proper configuration passes
    refusals = {
        "secret_key": DEVELOPMENT_SECRET_KEY,
        "database_url": "sqlite:////var/lib/tourline.sqlite3",
        "password_hashing": "fast",
    }
    for field, value in refusals.items():
        with pytest.raises(RuntimeError, match="refusing to start in production"):
            production_settings(**{field: value}).check_production_safety()
    with pytest.raises(RuntimeError, match="TOURLINE_SECRET_KEY"):
        production_settings(secret_key="short-but-not-default").check_production_safety()
    with pytest.raises(RuntimeError, match="STRIPE_WEBHOOK_SECRET"):
        production_settings(stripe_webhook_secret="").check_production_safety()
    # Development and test are not checked.
    dataclasses.replace(defaults, environment="development").check_production_safety()


def test_tourline_serve_in_production_with_defaults_refuses_to_start(tmp_path: Path) -> None:
    database = tmp_path / "prod.sqlite3"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TOURLINE_SECRET_KEY")
    }
    env.update(
        TOURLINE_ENV="production",
        DATABASE_URL=f"sqlite:///{database}",
        TOURLINE_PASSWORD_HASHING="fast",
    )
    port = free_port()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"serve started in production with defaults: {exc.output}") from exc
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "refusing to start in production" in output
    for variable in ("TOURLINE_SECRET_KEY", "DATABASE_URL", "TOURLINE_PASSWORD_HASHING"):
        assert variable in output
    # A clear refusal, not a crash: no traceback, no claim to be serving.
    assert "Traceback" not in output, output
    assert "Tourline on http://" not in output, output
    # Refused before touching the database it was given.
    assert not database.exists()


# ---------------------------------------------------------------- no internals in errors


async def test_an_unexpected_error_answers_a_generic_problem(migrated_database: None) -> None:
    @get("/api/v1/test-only/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("SELECT password_hash FROM staff WHERE email = 'root@tourline.test'")

    @get("/api/v1/test-only/database", sync_to_thread=False)
    def database_error() -> None:
        raise sqlite3.OperationalError('no such column: "secret_token" in INSERT INTO staff')

    app = create_app()
    app.register(boom)
    app.register(database_error)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        answers = [
            await api.get("/api/v1/test-only/boom"),
            await api.get("/api/v1/test-only/database", headers={"Accept-Language": "en"}),
        ]
    for response in answers:
        body = problem(response, 500, "internal_error")
        assert set(body) <= {"type", "title", "status", "code", "instance", "detail"}
        text = response.text
        for leak in ("SELECT", "INSERT", "password_hash", "secret_token", "Traceback",
                     "RuntimeError", "OperationalError", ".py", "line "):  # fmt: skip
            assert leak not in text, text
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert answers[1].json()["title"] == "Something went wrong on our side"


async def test_client_errors_show_no_internals(
    client: httpx.AsyncClient, operator: Account
) -> None:
    answers = [
        await client.get("/api/v1/routes/no-such-route"),
        await client.get(f"{ROUTES}/not-a-uuid", headers=operator.headers),
        await client.post(ROUTES, content=b"{bad json", headers=operator.headers),
        await client.post(ROUTES, json={"slug": 5}, headers=operator.headers),
        await client.get("/api/v1/bookings/ZZZZZZZZ", headers={"X-Booking-Token": "x' OR 1=1"}),
        await client.get("/api/v1/routes?page_size=100000"),
        await client.delete("/health"),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        for leak in ("Traceback", "SELECT", "WHERE", "piccolo", "asyncpg", "sqlite", ".py"):
            assert leak not in response.text, response.text


# ---------------------------------------------------------------- audit log


class Recorder:
    """Sends staff requests and remembers what the audit log should say about them."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.expected: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}

    async def staff_id(self, account: Account) -> str:
        if account.email not in self.ids:
            me = ok(await self.client.get("/api/v1/auth/me", headers=account.headers))
            self.ids[account.email] = str(me["id"])
        return self.ids[account.email]

    async def send(
        self,
        account: Account,
        method: str,
        path: str,
        template: str,
        body: Any = None,
        changes: Any = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        headers = dict(account.headers)
        if request_id:
            headers["X-Request-ID"] = request_id
        response = await self.client.request(method, path, json=body, headers=headers)
        self.expected.append(
            {
                "staff_id": await self.staff_id(account),
                "operator_id": account.operator_id,
                "method": method,
                "route": template,
                "path": path,
                "status_code": response.status_code,
                "request_id": response.headers["X-Request-ID"],
                "changes": body if changes is None else changes,
            }
        )
        return response


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry without its id and time, with the template's parameter types dropped
    ({route_id:uuid} and {route_id} name the same route)."""
    kept = {key: entry[key] for key in (
        "staff_id", "operator_id", "method", "route", "path", "status_code", "request_id",
        "changes",
    )}  # fmt: skip
    kept["route"] = re.sub(r":\w+}", "}", kept["route"])
    return kept


async def audit_items(
    client: httpx.AsyncClient, url: str, account: Account, **params: Any
) -> dict[str, Any]:
    response = await client.get(url, params={"page_size": 100, **params}, headers=account.headers)
    body: dict[str, Any] = ok(response)
    return body


async def test_audit_log_records_each_change_with_its_outcome_and_request_id(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    staff = await make_operator("zz-bus", "operator_staff")
    rec = Recorder(client)
    payload = route_payload(slug="audit-line")
    route = ok(
        await rec.send(operator, "POST", ROUTES, ROUTES, payload, request_id="audit-req-0001"),
        201,
    )
    route_path = f"{ROUTES}/{route['id']}"
    patch = {"name": {"zh_Hans": "审计号", "en": "Audit Line"}}
    ok(await rec.send(operator, "PATCH", route_path, f"{ROUTES}/{{route_id}}", patch))
    ok(
        await rec.send(
            operator, "PUT", f"{route_path}/itinerary", f"{ROUTES}/{{route_id}}/itinerary",
            itinerary_payload(1),
        )
    )  # fmt: skip
    ok(await rec.send(operator, "POST", f"{route_path}/publish", f"{ROUTES}/{{route_id}}/publish"))
    vehicle_body = {"kind": "bus", "name": "bus one", "code": "ZZ-01", "layout": BUS_LAYOUT}
    vehicle = ok(
        await rec.send(
            operator, "POST", "/api/v1/operator/vehicles", "/api/v1/operator/vehicles",
            vehicle_body,
        ),
        201,
    )  # fmt: skip
    fares = {
        "fares": [
            {"seat_class": "standard", "passenger_type": "adult", "amount": 6800},
            {"seat_class": "standard", "passenger_type": "child", "amount": 3800},
        ]
    }
    ok(
        await rec.send(
            operator, "PUT", f"{route_path}/fares", f"{ROUTES}/{{route_id}}/fares", fares
        )
    )
    departs = in_days(10)
    departure_body = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs.isoformat(),
        "returns_at": (departs + timedelta(hours=9)).isoformat(),
        "stops": [
            {"kind": "pickup", "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East"},
             "at": departs.isoformat()},
        ],
    }  # fmt: skip
    departure = ok(await rec.send(operator, "POST", DEPARTURES, DEPARTURES, departure_body), 201)
    departure_path = f"{DEPARTURES}/{departure['id']}"
    ok(
        await rec.send(
            operator, "PATCH", departure_path, f"{DEPARTURES}/{{departure_id}}",
            {"notes": "Bring sun hats", "guide_phone": "+86 139 1111 2222"},
        )
    )  # fmt: skip
    # A failed attempt is logged with its status.
    problem(await rec.send(operator, "POST", ROUTES, ROUTES, payload), 409)
    # The new colleague's password never reaches the log.
    colleague = {
        "email": "new.colleague@tourline.test",
        "name": "New Colleague",
        "password": "a-very-secret-passphrase",
        "role": "operator_staff",
    }
    ok(
        await rec.send(
            operator, "POST", "/api/v1/operator/staff", "/api/v1/operator/staff", colleague,
            changes={**colleague, "password": "[redacted]"},
        ),
        201,
    )  # fmt: skip
    # A staff member (not an admin) tries to change a route: refused, and logged.
    problem(await rec.send(staff, "PATCH", route_path, f"{ROUTES}/{{route_id}}", patch), 403)
    # A draft made and deleted: the DELETE has no body to record.
    draft = ok(await rec.send(operator, "POST", ROUTES, ROUTES, route_payload(slug="draft")), 201)
    deleted = await rec.send(
        operator, "DELETE", f"{ROUTES}/{draft['id']}", f"{ROUTES}/{{route_id}}"
    )
    assert deleted.status_code == 204, deleted.text
    # Reading is not logged.
    for account in (operator, staff):
        ok(await client.get(ROUTES, headers=account.headers))
        ok(await client.get(route_path, headers=account.headers))
        ok(await client.get(departure_path, headers=account.headers))

    log = await audit_items(client, OPERATOR_AUDIT, operator)
    items = log["items"]
    assert log["total"] == len(rec.expected) == len(items)
    assert "a-very-secret-passphrase" not in str(log)
    assert {item["method"] for item in items} <= {"POST", "PUT", "PATCH", "DELETE"}
    by_request = {item["request_id"]: comparable(item) for item in items}
    assert by_request == {entry["request_id"]: entry for entry in rec.expected}
    assert by_request["audit-req-0001"]["changes"] == payload
    statuses = [entry["status_code"] for entry in rec.expected]
    assert statuses == [201, 200, 200, 200, 201, 200, 201, 200, 409, 201, 403, 201, 204]
    assert by_request[deleted.headers["X-Request-ID"]]["changes"] is None
    # Newest first.
    assert [item["request_id"] for item in items] == [
        entry["request_id"] for entry in reversed(rec.expected)
    ]
    times = [datetime.fromisoformat(item["at"]) for item in items]
    assert times == sorted(times, reverse=True)


async def test_audit_log_records_authenticated_requests_that_fail_validation(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.post(ROUTES, json={"slug": "Bad Slug!"}, headers=operator.headers)
    problem(response, 400, "validation_error")
    items = (await audit_items(client, OPERATOR_AUDIT, operator))["items"]
    assert [(i["method"], i["status_code"], i["request_id"]) for i in items] == [
        ("POST", 400, response.headers["X-Request-ID"])
    ]
    assert items[0]["changes"] == {"slug": "Bad Slug!"}


async def test_a_doubled_slash_is_the_same_path_for_the_audit_log(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """The router reads //api/v1/... as /api/v1/...; so does everything in front of it."""
    doubled = str(client.base_url).rstrip("/") + "//api/v1//operator/routes"
    response = await client.post(
        doubled, json=route_payload(slug="slashed"), headers=operator.headers
    )
    assert response.status_code == 201, response.text
    items = (await audit_items(client, OPERATOR_AUDIT, operator))["items"]
    assert [(i["method"], i["path"], i["status_code"]) for i in items] == [("POST", ROUTES, 201)]


async def test_audit_log_is_for_admins_of_each_operator_and_the_platform(
    client: httpx.AsyncClient,
    operator: Account,
    make_operator: MakeOperator,
    platform_admin: Account,
) -> None:
    staff = await make_operator("zz-bus", "operator_staff")
    other = await make_operator("yy-train")
    mine = await client.post(ROUTES, json=route_payload(slug="zz-line"), headers=operator.headers)
    theirs = await client.post(ROUTES, json=route_payload(slug="yy-line"), headers=other.headers)
    assert (mine.status_code, theirs.status_code) == (201, 201)

    zz = await audit_items(client, OPERATOR_AUDIT, operator)
    yy = await audit_items(client, OPERATOR_AUDIT, other)
    assert [i["request_id"] for i in zz["items"]] == [mine.headers["X-Request-ID"]]
    assert [i["request_id"] for i in yy["items"]] == [theirs.headers["X-Request-ID"]]
    assert zz["items"][0]["operator_id"] == operator.operator_id
    assert yy["items"][0]["operator_id"] == other.operator_id

    problem(await client.get(OPERATOR_AUDIT, headers=staff.headers), 403)
    problem(await client.get(ADMIN_AUDIT, headers=operator.headers), 403)
    problem(await client.get(OPERATOR_AUDIT, headers=platform_admin.headers), 403)
    problem(await client.get(OPERATOR_AUDIT), 401)
    problem(await client.get(ADMIN_AUDIT), 401)

    everything = await audit_items(client, ADMIN_AUDIT, platform_admin)
    request_ids = {i["request_id"] for i in everything["items"]}
    assert {mine.headers["X-Request-ID"], theirs.headers["X-Request-ID"]} <= request_ids
    # The platform admin's own changes (creating the operators and their staff) are there too.
    admin_id = ok(await client.get("/api/v1/auth/me", headers=platform_admin.headers))["id"]
    own = [i for i in everything["items"] if i["staff_id"] == admin_id]
    assert {(i["method"], re.sub(r":\w+}", "}", i["route"]), i["operator_id"]) for i in own} == {
        ("POST", "/api/v1/admin/operators", None),
        ("POST", "/api/v1/admin/operators/{operator_id}/staff", None),
    }
    assert len(own) == 5  # two operators, three staff accounts
    staff_entries = [i for i in own if i["route"].endswith("/staff")]
    assert all(i["changes"]["password"] == "[redacted]" for i in staff_entries)
    assert everything["total"] == len(everything["items"]) == 7


async def test_audit_log_filters_by_staff_and_time_and_pages(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    staff = await make_operator("zz-bus", "operator_staff")
    staff_id = ok(await client.get("/api/v1/auth/me", headers=staff.headers))["id"]
    start = clock.now()
    request_ids: list[str] = []  # oldest first
    with clock.frozen(start):
        for n in range(5):
            clock.advance(timedelta(minutes=10))
            response = await client.post(
                ROUTES, json=route_payload(slug=f"line-{n}"), headers=operator.headers
            )
            assert response.status_code == 201, response.text
            request_ids.append(response.headers["X-Request-ID"])
            clock.advance(timedelta(minutes=1))
            refused = await client.post(
                ROUTES, json=route_payload(slug=f"staff-{n}"), headers=staff.headers
            )
            assert refused.status_code == 403
            request_ids.append(refused.headers["X-Request-ID"])
    newest_first = request_ids[::-1]

    def ids(body: dict[str, Any]) -> list[str]:
        return [item["request_id"] for item in body["items"]]

    everything = await audit_items(client, OPERATOR_AUDIT, operator)
    assert ids(everything) == newest_first
    by_staff = await audit_items(client, OPERATOR_AUDIT, operator, staff_id=staff_id)
    assert ids(by_staff) == newest_first[0::2]
    assert by_staff["total"] == 5
    assert {item["status_code"] for item in by_staff["items"]} == {403}

    # since is inclusive, until exclusive: the entries at +21, +22, +32 and +33 minutes.
    since = (start + timedelta(minutes=21)).isoformat()
    until = (start + timedelta(minutes=43)).isoformat()
    window = await audit_items(client, OPERATOR_AUDIT, operator, since=since, until=until)
    assert ids(window) == newest_first[4:8]
    assert window["total"] == 4
    later = await audit_items(client, OPERATOR_AUDIT, operator, since=since, staff_id=staff_id)
    assert ids(later) == newest_first[0:8:2]
    earlier = await audit_items(client, OPERATOR_AUDIT, operator, until=since)
    assert ids(earlier) == newest_first[8:]

    pages = [
        ok(
            await client.get(
                OPERATOR_AUDIT, params={"page": page, "page_size": 4}, headers=operator.headers
            )
        )
        for page in (1, 2, 3)
    ]
    assert [p["total"] for p in pages] == [10, 10, 10]
    assert [len(p["items"]) for p in pages] == [4, 4, 2]
    assert [rid for p in pages for rid in ids(p)] == newest_first
    problem(
        await client.get(OPERATOR_AUDIT, params={"since": "yesterday"}, headers=operator.headers),
        400,
    )


async def test_public_pages_share_the_address_budget_and_refuse_with_a_page(
    migrated_database: None,
) -> None:
    """Holding seats through the booking form costs what the API does: one budget per
    address for the API and the pages alike; a refused page is a page, not JSON."""
    address = random_ip()
    with clock.frozen(window_start(60)):
        async with app_client(address, public_rate_limit=3, redis_url="") as tourist:
            answers = [
                (await tourist.get("/api/v1/routes")).status_code,
                (await tourist.get("/lines/no-such-line?lang=en")).status_code,
                # A doubled slash is the same page, and counts the same.
                (
                    await tourist.post(
                        f"{str(tourist.base_url).rstrip('/')}//departures/{NO_ID}/book?lang=en",
                        data={},
                    )
                ).status_code,
            ]
            refused = await tourist.get("/bookings/ABCDEFGH?token=x&lang=en")
            api_refused = await tourist.get("/api/v1/routes")
            styles = await tourist.get("/static/style.css")
    assert answers == [200, 404, 404]
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "Too many requests from your address" in refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    problem(api_refused, 429, "rate_limited")
    # The page's own files are not counted.
    assert styles.status_code == 200
