"""Test set-up: real databases, migrations run once, tables emptied between tests.

`TEST_DATABASE_URL` selects the database (a PostgreSQL URL in CI; unset means a fresh SQLite
file). With pytest-xdist each worker gets a database of its own. `TEST_REDIS_URL` (default
redis://127.0.0.1:6379/15) is used by tests that need Redis; when it is unreachable they skip,
unless `TOURLINE_REQUIRE_SERVICES=1` (set by .ci/run) turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from tests.servers import free_port

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# One id per pytest run, shared by its xdist workers, so that concurrent runs on one
# machine never share a database.
RUN_ID = os.environ.setdefault("TOURLINE_TEST_RUN", str(os.getpid()))
REQUIRE_SERVICES = os.environ.get("TOURLINE_REQUIRE_SERVICES") == "1"


def _prepare_postgres(url: str) -> str:
    """Create a fresh database for this worker next to the one named in the URL."""
    import asyncpg

    parsed = urlparse(url)
    name = f"{parsed.path.lstrip('/') or 'test'}_tourline_{RUN_ID}_{WORKER}"

    async def recreate() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(recreate())
    return urlunparse(parsed._replace(path=f"/{name}"))


def _drop_postgres(url: str, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def _configure_environment() -> None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if url.startswith(("postgresql://", "postgres://")):
        os.environ["DATABASE_URL"] = _prepare_postgres(url)
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"tourline-test-{WORKER}-"))
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'test.sqlite3'}"
    os.environ["TOURLINE_ENV"] = "test"
    os.environ["TOURLINE_PASSWORD_HASHING"] = "fast"
    # The suite shares 2 cores between its workers and PostgreSQL: a 300-client rush on one
    # departure may queue for a connection, or on the departure's lock, longer than the
    # production bounds (5 s). The outage tests set their own short ones.
    os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT", "15")
    os.environ.setdefault("DATABASE_ACQUIRE_TIMEOUT", "15")
    os.environ.setdefault("TOURLINE_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
    os.environ.pop("REDIS_URL", None)
    # Hundreds of requests come from one test client: the per-IP and failed-login limits
    # are off here, and on in the tests that build an app with them (test_http_security).
    os.environ["TOURLINE_PUBLIC_RATE_LIMIT"] = "0"
    os.environ["TOURLINE_LOGIN_FAILURE_LIMIT"] = "0"
    # Tests read back what they just wrote: no public answer is served from the cache here
    # (tests/integration/catalogue/test_public_cache.py turns it on).
    os.environ["TOURLINE_PUBLIC_CACHE_SECONDS"] = "0"
    # localstripe (a fake Stripe server) is started on this port by the `stripe_server`
    # fixture; the SDK is pointed at it.
    port = free_port()
    os.environ["STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"
    os.environ["STRIPE_SECRET_KEY"] = "sk_test_tourline"
    os.environ["STRIPE_PUBLISHABLE_KEY"] = "pk_test_tourline"
    os.environ["STRIPE_WEBHOOK_SECRET"] = "whsec_test_tourline"
    # An aiosmtpd server (the `smtp_server` fixture) receives the mail on this port.
    os.environ["SMTP_HOST"] = "127.0.0.1"
    os.environ["SMTP_PORT"] = str(free_port())


# The app reads its settings once; set the environment before anything imports it.
_configure_environment()

import httpx  # noqa: E402
from piccolo.table import sort_table_classes  # noqa: E402

import app  # noqa: E402, F401
from app.asgi import create_app  # noqa: E402
from app.core import database, outbound  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.piccolo_app import APP_CONFIG  # noqa: E402
from app.wiring import configure_process, wire_domains  # noqa: E402

# Services called directly by tests publish events too: their handlers are those of the app.
wire_domains()
# As a server does at startup (the test client runs no lifespan).
configure_process(get_settings())


def pytest_report_header(config: pytest.Config) -> str:
    return f"tourline database: {os.environ['DATABASE_URL']}"


@pytest.fixture(scope="session")
async def migrated_database() -> AsyncIterator[None]:
    await database.open_database(get_settings())
    await database.migrate()
    yield
    await database.close_database()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop this worker's PostgreSQL database once its tests are done."""
    test_url = os.environ.get("TEST_DATABASE_URL", "")
    if test_url.startswith(("postgresql://", "postgres://")):
        _drop_postgres(test_url, urlparse(os.environ["DATABASE_URL"]).path.lstrip("/"))


@pytest.fixture(autouse=True)
async def clean_tables(migrated_database: None) -> AsyncIterator[None]:
    yield
    # DELETE, children first: on tables this small it is much faster than TRUNCATE.
    tables = sort_table_classes(list(APP_CONFIG.table_classes))
    engine = database.get_engine()
    async with engine.transaction():
        for table in reversed(tables):
            await engine.run_ddl(f'DELETE FROM "{table._meta.tablename}"')


@pytest.fixture(scope="session")
async def client(migrated_database: None) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop (the database pool is opened by `migrated_database`)."""
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def private_webhook_targets() -> Iterator[None]:
    """Agencies' webhooks may reach this machine's receivers (127.0.0.1) during the test, as
    TOURLINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS allows in development."""
    outbound.allow_private_networks(True)
    try:
        yield
    finally:
        outbound.configure(get_settings())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis, or a skip (a failure when services are required)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        message = f"Redis not reachable at {url}: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REQUIRE_SERVICES and not os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        raise pytest.UsageError(
            "TOURLINE_REQUIRE_SERVICES=1 needs TEST_DATABASE_URL=postgresql://..."
        )


AsyncFactory = Callable[..., Awaitable[Any]]


class Account:
    """A logged-in staff member as the tests see it: ids and ready-made headers."""

    def __init__(self, operator_id: str | None, slug: str | None, email: str, token: str) -> None:
        self.operator_id = operator_id
        self.slug = slug
        self.email = email
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}


STAFF_PASSWORD = "correct-horse-battery"


async def _login(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
async def platform_admin(client: httpx.AsyncClient) -> Account:
    import msgspec

    from app.accounts.schemas import StaffCreate
    from app.accounts.services import create_staff

    email = "root@tourline.test"
    await create_staff(
        msgspec.convert(
            {"email": email, "name": "Root", "password": STAFF_PASSWORD, "role": "platform_admin"},
            StaffCreate,
        ),
        None,
    )
    return Account(None, None, email, await _login(client, email))


@pytest.fixture
def make_operator(
    client: httpx.AsyncClient, platform_admin: Account
) -> Callable[..., Awaitable[Account]]:
    """Create an operator through the admin API and log in as its admin (or staff)."""

    async def make(slug: str = "zz-bus", role: str = "operator_admin", **overrides: Any) -> Account:
        existing = await client.get("/api/v1/admin/operators", headers=platform_admin.headers)
        operator = next((o for o in existing.json()["items"] if o["slug"] == slug), None)
        if operator is None:
            payload = {
                "slug": slug,
                "name": {"zh_Hans": f"{slug} 公司", "en": f"{slug} company"},
                "contact_email": f"contact@{slug}.test",
                "contact_phone": "+86 371 6000 0000",
                **overrides,
            }
            response = await client.post(
                "/api/v1/admin/operators", json=payload, headers=platform_admin.headers
            )
            assert response.status_code == 201, response.text
            operator = response.json()
        email = f"{role}.{slug}@tourline.test"
        response = await client.post(
            f"/api/v1/admin/operators/{operator['id']}/staff",
            json={
                "email": email,
                "name": f"{role} of {slug}",
                "password": STAFF_PASSWORD,
                "role": role,
            },
            headers=platform_admin.headers,
        )
        assert response.status_code == 201, response.text
        return Account(operator["id"], slug, email, await _login(client, email))

    return make


@pytest.fixture
async def operator(make_operator: Callable[..., Awaitable[Account]]) -> Account:
    """The admin of operator zz-bus."""
    return await make_operator("zz-bus")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With required services (CI), a skipped test is a failure: nothing may go untested."""
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        print(f"\n{skipped} test(s) skipped while TOURLINE_REQUIRE_SERVICES=1: failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[str]:
    """localstripe on a loopback port, fresh for this test process."""
    import subprocess
    import sys
    import time

    import httpx as sync_httpx

    base = os.environ["STRIPE_API_BASE"]
    port = base.rsplit(":", 1)[1]
    process = subprocess.Popen(
        [sys.executable, "-c", "from localstripe.server import start; start()",
         "--port", port, "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sync_httpx.get(f"{base}/v1/customers", auth=("sk_test_tourline", ""), timeout=1)
                break
            except sync_httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("localstripe did not start")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class Mailbox:
    """Messages received by the test SMTP server, parsed; `refuse` makes it answer 451."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return "451 Requested action aborted: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on the port the app is configured to use."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=int(os.environ["SMTP_PORT"]))
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp_server: Mailbox) -> Iterator[Mailbox]:
    """The test SMTP server, emptied for this test."""
    smtp_server.messages.clear()
    smtp_server.refuse = False
    yield smtp_server
    smtp_server.refuse = False
