"""Exactly-once effects under real faults: an SMTP server that stalls in DATA, a worker
process killed (SIGKILL) in the middle of a 60-passenger advisory, a partner endpoint that
never answers, messages that no longer apply when their turn comes, and an idempotent
request whose server dies (or whose handler fails) after the booking was written."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiohttp import web

from app.booking.services import hold as hold_service
from app.booking.services.confirm import confirm_paid
from app.booking.services.expiry import expire_all_overdue
from app.booking.tables import Booking, BookingStatus
from app.core import clock, database
from app.core.outbox import dispatch_outbox
from app.core.settings import get_settings
from app.notifications.channels import message_id
from app.notifications.services.sending import send_due_notifications
from app.notifications.tables import Notification, NotificationStatus
from app.partners.tables import WebhookAttempt, WebhookDelivery
from app.partners.webhooks import deliver_due_webhooks, queue_event
from tests.assertions import ok
from tests.conftest import Account, Mailbox
from tests.factories import create_departure, create_route, set_route_fares
from tests.integration.notifications.test_notifications import (
    booking_row,
    bus_departure,
    hold,
    move,
    the_notification,
)
from tests.integration.partners.test_webhooks import _agency
from tests.servers import PROJECT_ROOT, _wait_for_health, free_port, start_web_endpoint

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
PASSENGERS = 60


# ---------------------------------------------------------------- a stalling SMTP server


class StallingData:
    """Makes the test SMTP server stall in DATA for the `nth` message it receives.

    `accept_first`: the message is taken (counted in the mailbox) before the stall, as a
    server whose queue has it but whose reply is slow; otherwise it is never accepted (the
    stall ends with 451 once `released` is set)."""

    def __init__(
        self, mailbox: Mailbox, nth: int, seconds: float = 60.0, accept_first: bool = False
    ) -> None:
        self.mailbox = mailbox
        self.nth = nth
        self.seconds = seconds
        self.accept_first = accept_first
        self.received = 0
        self.stalled_to = ""
        self.stalling = threading.Event()
        self.released = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Runs in the SMTP server's own thread and event loop.
        self.received += 1
        if self.received != self.nth:
            return await Mailbox.handle_DATA(self.mailbox, server, session, envelope)
        self.stalled_to = envelope.rcpt_tos[0]
        if self.accept_first:
            await Mailbox.handle_DATA(self.mailbox, server, session, envelope)
        self.stalling.set()
        # The release comes from the test's thread.
        await asyncio.get_running_loop().run_in_executor(None, self.released.wait, self.seconds)
        if self.accept_first:
            return "250 Message accepted for delivery"
        return "451 4.4.2 Timed out while storing the message"


def stall(
    monkeypatch: pytest.MonkeyPatch, mailbox: Mailbox, nth: int, **options: Any
) -> StallingData:
    stalling = StallingData(mailbox, nth, **options)
    # aiosmtpd looks the hook up on the handler for each new connection.
    monkeypatch.setattr(mailbox, "handle_DATA", stalling.handle_DATA, raising=False)
    return stalling


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], seconds: float, what: str
) -> None:
    deadline = time.monotonic() + seconds
    while not await _value(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- a slow server, one sender


async def test_a_mail_stalled_in_data_past_the_lease_is_not_sent_twice(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server takes the message but stalls its reply for longer than the lease. The
    first sender gives up at half the lease (its claim still holds); a second sender that
    runs after the lease would have run out finds nothing to send: one copy. The retry
    after the backoff (the outcome was unknown) carries the same Message-ID."""
    departure = await bus_departure(client, operator)
    reference = await hold(client, departure, "slow@example.com")
    await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()
    lease = timedelta(seconds=2)
    stalling = stall(monkeypatch, mailbox, nth=1, seconds=4, accept_first=True)

    async def second_sender() -> int:
        await asyncio.sleep(lease.total_seconds() + 0.5)
        return await send_due_notifications(lease=lease)

    async def first_sender() -> tuple[int, float]:
        started = time.monotonic()
        return await send_due_notifications(lease=lease), time.monotonic() - started

    (first, took), second = await asyncio.gather(first_sender(), second_sender())
    assert stalling.stalling.is_set()
    [copy] = mailbox.to("slow@example.com")  # no second sender sent a copy meanwhile
    assert (first, second) == (0, 0)
    assert took < 3  # it gave up at half the lease, not after the server's 4 s
    row = await the_notification(reference, "booking.confirmed")
    assert row["status"] == NotificationStatus.pending
    assert row["attempts"] == 1
    assert "the outcome is unknown" in row["last_error"]

    # The retry (the outcome was unknown) goes out after the backoff, as the same message.
    with clock.frozen(row["next_attempt_at"]):
        assert await send_due_notifications(lease=lease) == 1
    first_copy, retry = mailbox.to("slow@example.com")
    assert first_copy is copy
    expected = message_id(row["key"], get_settings().mail_from)
    assert copy["Message-ID"] == retry["Message-ID"] == expected
    row = await the_notification(reference, "booking.confirmed")
    assert (row["status"], row["attempts"]) == (NotificationStatus.sent, 2)


async def test_a_connection_dropped_mid_message_is_retried_and_arrives_once(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server drops the connection after the message's body, before its reply: the
    message was not taken, the outcome is unknown to the sender. It is tried again after
    the backoff (not before), and arrives once."""
    departure = await bus_departure(client, operator)
    reference = await hold(client, departure, "dropped@example.com")
    await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()
    dropped: list[str] = []

    async def drop_the_first(server: Any, session: Any, envelope: Any) -> str:
        if not dropped:
            dropped.append(envelope.rcpt_tos[0])
            server.transport.abort()  # a reset: the reply never leaves
            return "451 4.3.0 never sent"
        return await Mailbox.handle_DATA(mailbox, server, session, envelope)

    monkeypatch.setattr(mailbox, "handle_DATA", drop_the_first, raising=False)
    assert await send_due_notifications() == 0
    assert dropped == ["dropped@example.com"]
    assert mailbox.to("dropped@example.com") == []
    row = await the_notification(reference, "booking.confirmed")
    assert (row["status"], row["attempts"]) == (NotificationStatus.pending, 1)
    assert row["last_error"]
    assert await send_due_notifications() == 0  # it waits for its backoff
    with clock.frozen(row["next_attempt_at"]):
        assert await send_due_notifications() == 1
    [delivered] = mailbox.to("dropped@example.com")
    assert delivered["Message-ID"] == message_id(row["key"], get_settings().mail_from)
    row = await the_notification(reference, "booking.confirmed")
    assert (row["status"], row["attempts"]) == (NotificationStatus.sent, 2)


async def _value(value: bool | Awaitable[bool]) -> bool:
    return await value if inspect.isawaitable(value) else bool(value)


# ---------------------------------------------------------------- two workers, one killed

WORKER_LOOP = """
import asyncio

import app  # noqa: F401 - sets PICCOLO_CONF
from app.asgi import configure_process
from app.core import database
from app.core.settings import get_settings
from app.notifications.services.sending import send_due_notifications


async def main() -> None:
    # As a worker starts: the process is configured once, then the database opened.
    configure_process(get_settings())
    await database.open_database(get_settings())
    while True:
        await send_due_notifications(limit=5)
        await asyncio.sleep(0.05)


asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def sending_workers(
    count: int, env: dict[str, str], logs: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Worker processes running the send step in a loop against the test database."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        command = [sys.executable, "-c", WORKER_LOOP]
        for number in range(count):
            with (logs / f"worker-{number}.log").open("wb") as sink:
                process = await asyncio.create_subprocess_exec(
                    *command, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
                )
            processes.append(process)
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def sixty_passenger_departure(client: httpx.AsyncClient, operator: Account) -> str:
    """A departure of a 60-seat bus, with one booking (and one contact) per seat."""
    route = await create_route(client, operator.headers, slug="sixty-line")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    layout = {"type": "bus", "rows": PASSENGERS // 4, "seat_letters": "ABCD"}
    vehicle = ok(
        await client.post(
            "/api/v1/operator/vehicles",
            json={"kind": "bus", "name": "Big bus", "code": "BB-60", "layout": layout},
            headers=operator.headers,
        ),
        201,
    )
    departure = await create_departure(client, operator.headers, route, vehicle)
    for number in range(PASSENGERS):
        body = {
            "departure_id": departure["id"],
            "counts": [{"seat_class": "standard", "count": 1}],
            "contact": {"name": f"P {number}", "email": f"p{number}@example.com",
                        "phone": "+86 138 0000 0000", "locale": "en"},
        }  # fmt: skip
        ok(await client.post(BOOKINGS, json=body), 201)
    return str(departure["id"])


async def test_a_worker_killed_mid_advisory_leaves_every_passenger_exactly_one_mail(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    departure_id = await sixty_passenger_departure(client, operator)
    rain = {"zh_Hans": "预计有大雨。", "en": "Heavy rain expected."}
    created = ok(
        await client.post(
            f"{DEPARTURES}/{departure_id}/advisories",
            json={"kind": "weather", "message": rain},
            headers=operator.headers,
        ),
        201,
    )
    assert created["recipients"] == PASSENGERS
    # Mid-way, the server stalls a message; the worker sending it is killed meanwhile.
    stalling = stall(monkeypatch, mailbox, nth=PASSENGERS // 2)
    lease_seconds = 6  # the stalled worker gives up after 3 s: it is killed well before
    env = {**os.environ, "TOURLINE_SEND_LEASE_SECONDS": str(lease_seconds)}

    async def sent() -> int:
        return int(
            await Notification.count()
            .where(Notification.status == NotificationStatus.sent.value)
            .run()
        )

    async with sending_workers(2, env, tmp_path) as workers:
        await wait_until(stalling.stalling.is_set, 60, "a message stalls")
        victim = (
            await Notification.select()
            .where(Notification.recipient == stalling.stalled_to)
            .first()
            .run()
        )
        assert victim is not None
        assert victim["status"] == NotificationStatus.sending  # claimed before the send
        killed_pid = int(victim["claimed_by"].rsplit(":", 1)[1])
        [killed] = [w for w in workers if w.pid == killed_pid]
        [survivor] = [w for w in workers if w is not killed]
        killed.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(killed.wait(), timeout=10) == -signal.SIGKILL
        stalling.released.set()
        await wait_until(
            lambda: _equals(sent(), PASSENGERS), 60, "every advisory sent by the survivor"
        )
        assert survivor.returncode is None

    per_passenger = Counter(str(message["To"]) for message in mailbox.messages)
    assert per_passenger == {f"p{n}@example.com": 1 for n in range(PASSENGERS)}
    row = await Notification.select().where(Notification.id == victim["id"]).first().run()
    assert row is not None
    assert row["status"] == NotificationStatus.sent
    assert row["attempts"] == 2  # the killed worker's attempt, then the survivor's
    assert row["claimed_by"].rsplit(":", 1)[1] == str(survivor.pid)
    # The claim was taken over only once its lease had run out.
    assert row["sent_at"] >= victim["next_attempt_at"]
    [mail] = mailbox.to(stalling.stalled_to)
    assert mail["Message-ID"] == message_id(row["key"], get_settings().mail_from)


async def _equals(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


# ---------------------------------------------------------------- messages that no longer apply


async def test_confirmed_then_cancelled_sends_only_the_cancellation(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    email = "changed-mind@example.com"
    contact = {"name": "Li Lei", "email": email, "phone": "+86 138 0000 0001", "locale": "en"}
    body = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "count": 1}],
        "contact": contact,
    }
    created = ok(await client.post(BOOKINGS, json=body), 201)
    reference = created["booking"]["reference"]
    await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()  # "confirmed" is queued, not sent yet
    assert (await the_notification(reference, "booking.confirmed"))["status"] == "pending"

    cancelled = await client.post(
        f"{BOOKINGS}/{reference}/cancel", headers={"X-Booking-Token": created["access_token"]}
    )
    assert cancelled.status_code == 200, cancelled.text
    await dispatch_outbox()
    assert await send_due_notifications() == 1
    assert await send_due_notifications() == 0

    [message] = mailbox.to(email)
    assert message["Subject"] == f"Booking {reference} cancelled"
    confirmed = await the_notification(reference, "booking.confirmed")
    assert confirmed["status"] == NotificationStatus.skipped
    assert confirmed["last_error"] == "not sent: the booking is cancelled"
    assert confirmed["sent_at"] is None


async def test_a_hold_paid_after_it_ran_out_gets_no_hold_expired_mail(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    email = "paid-late@example.com"
    reference = await hold(client, departure, email)
    booking = await booking_row(reference)
    with clock.frozen(booking["expires_at"] + timedelta(seconds=1)):
        assert await expire_all_overdue() == 1
        await dispatch_outbox()  # "your hold ran out" is queued
        assert (await the_notification(reference, "booking.expired"))["status"] == "pending"
        # The payment's success arrives before the worker sends it: the seats are free.
        assert await confirm_paid(booking["id"], actor="stripe") == "confirmed"
        await dispatch_outbox()
        assert await send_due_notifications() == 1

    [message] = mailbox.to(email)
    assert message["Subject"].startswith(f"Booking {reference} confirmed")
    expired = await the_notification(reference, "booking.expired")
    assert expired["status"] == NotificationStatus.skipped
    assert expired["last_error"] == "not sent: the booking is confirmed"


# ---------------------------------------------------------------- a partner endpoint that hangs


async def test_a_webhook_endpoint_that_never_answers_gets_one_post_per_claim(
    client: httpx.AsyncClient, operator: Account, private_webhook_targets: None
) -> None:
    posts: list[bytes] = []
    released = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        posts.append(await request.read())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), timeout=30)
        return web.Response(text="late")

    runner, base = await start_web_endpoint({"/hook": hang})
    try:
        agency_id, _headers = await _agency(client, operator, f"{base}/hook")
        assert await queue_event(agency_id, "test.ping", "webhook:test:ping", {"n": 1})
        lease = timedelta(seconds=2)

        async def second_worker() -> int:
            await asyncio.sleep(lease.total_seconds() + 0.5)
            return await deliver_due_webhooks(claim_lease=lease)

        started = time.monotonic()
        results = await asyncio.gather(deliver_due_webhooks(claim_lease=lease), second_worker())
        elapsed = time.monotonic() - started
    finally:
        released.set()
        await runner.cleanup()

    assert len(posts) == 1  # no second worker posted a copy while the first was waiting
    assert results == [0, 0]
    assert elapsed < 5
    [row] = await WebhookDelivery.select().run()
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert "the outcome is unknown" in row["last_error"]
    assert row["next_attempt_at"] > clock.now() + timedelta(seconds=30)  # a real pause
    [attempt] = await WebhookAttempt.select().run()
    assert attempt["status_code"] is None


# ---------------------------------------------------------------- idempotency keys


async def small_bus_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    route = await create_route(client, operator.headers, slug="key-line")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = ok(
        await client.post(
            "/api/v1/operator/vehicles",
            json={"kind": "bus", "name": "Minibus", "code": "MB-4",
                  "layout": {"type": "bus", "rows": 1, "seat_letters": "ABCD"}},
            headers=operator.headers,
        ),
        201,
    )  # fmt: skip
    return await create_departure(client, operator.headers, route, vehicle)


def booking_body(departure_id: str) -> dict[str, Any]:
    return {
        "departure_id": departure_id,
        "counts": [{"seat_class": "standard", "count": 1}],
        "contact": {"name": "Zhao Min", "email": "zhao@example.com", "phone": "+86 138 0000 0000"},
    }


async def test_a_failure_after_the_booking_was_written_rolls_back_with_its_key(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    departure = await small_bus_departure(client, operator)
    body = booking_body(departure["id"])
    real_view = hold_service._booking_view
    failures: list[int] = []

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        # After create_booking's own transaction: the booking and its seats are written.
        if not failures:
            failures.append(1)
            raise RuntimeError("the process fell over before answering")
        return real_view(*args, **kwargs)

    monkeypatch.setattr(hold_service, "_booking_view", fail_once)
    first = await client.post(BOOKINGS, json=body, headers={"Idempotency-Key": "k-crash"})
    assert first.status_code == 500, first.text
    assert await Booking.count().run() == 0  # rolled back with the key's claim

    retry = await client.post(BOOKINGS, json=body, headers={"Idempotency-Key": "k-crash"})
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("Idempotent-Replayed") is None
    again = await client.post(BOOKINGS, json=body, headers={"Idempotency-Key": "k-crash"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json()
    assert await Booking.count().run() == 1


async def test_a_server_killed_mid_request_leaves_a_key_the_retry_books_once(
    client: httpx.AsyncClient, operator: Account, tmp_path: Path
) -> None:
    import asyncpg

    if database.is_sqlite():
        pytest.skip("holds a table lock to stop the server mid-transaction: a PostgreSQL test")
    departure = await small_bus_departure(client, operator)
    body = booking_body(departure["id"])
    headers = {"Idempotency-Key": "k-killed"}
    port = free_port()
    log = tmp_path / "server.log"
    url = os.environ["DATABASE_URL"]
    blocker = await asyncpg.connect(url)
    blocking = blocker.transaction()
    await blocking.start()
    # The booking's audit entry is written after the booking and its seats: the request
    # stops there, mid-transaction, until this lock goes.
    await blocker.execute("LOCK TABLE booking_event IN EXCLUSIVE MODE")
    with log.open("wb") as sink:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "app.asgi:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            cwd=PROJECT_ROOT, env=dict(os.environ), stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await _wait_for_health(http, base, server, log)
            request = asyncio.ensure_future(
                http.post(f"{base}{BOOKINGS}", json=body, headers=headers)
            )

            async def waiting_on_the_lock() -> bool:
                # Inside a transaction the activity view is a snapshot: take a fresh one.
                await blocker.execute("SELECT pg_stat_clear_snapshot()")
                # On PostgreSQL the hold's audit entry is written inside `booking_hold(...)`,
                # the statement the activity view shows.
                rows = await blocker.fetch(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = "
                    "'Lock' AND (query ILIKE '%insert into%booking_event%' "
                    "OR query ILIKE '%booking_hold(%')",
                    urlparse(url).path.lstrip("/"),
                )
                return bool(rows)

            await wait_until(waiting_on_the_lock, 30, "the request waits after the booking")
            server.send_signal(signal.SIGKILL)
            await server.wait()
            with pytest.raises(httpx.TransportError):
                await request
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await blocking.rollback()
        await blocker.close()

    # The retry comes at once, not after some timeout: it waits for the dead request's
    # transaction to be rolled back, then books, once.
    retry = await client.post(BOOKINGS, json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("Idempotent-Replayed") is None
    again = await client.post(BOOKINGS, json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json()
    assert await Booking.count().run() == 1


# ---------------------------------------------------------------- sweeps never wait on Stripe


async def test_expiry_and_outbox_sweeps_never_wait_on_a_hanging_stripe(
    client: httpx.AsyncClient,
    operator: Account,
    stripe_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    import app.payments.providers
    from app.core.events import publish
    from app.payments.events import RefundRequested
    from app.payments.services.sweep import sync_open_payments
    from app.payments.tables import Payment
    from tests.faults import tcp_proxy
    from tests.integration.payments import test_stripe as stripe_tests

    _route, _vehicle, departure = await stripe_tests.bus_line(client, operator)
    start = clock.now()
    with clock.frozen(start):
        created = await stripe_tests.hold(client, departure["id"])
        ok(await stripe_tests.start(client, created))
    reference = stripe_tests.ref(created)
    stripe_at = urlparse(stripe_server)
    async with tcp_proxy(str(stripe_at.hostname), int(stripe_at.port or 80)) as proxy:
        through = dataclasses.replace(
            get_settings(), stripe_api_base=f"http://127.0.0.1:{proxy.port}"
        )
        monkeypatch.setattr(app.payments.providers, "_settings", through)
        proxy.blackhole()  # Stripe accepts connections and never answers
        with clock.frozen(start + timedelta(hours=1)):
            began = time.monotonic()
            assert await expire_all_overdue() == 1
            # What a cancellation queues for the outbox: its refund row is the refunds
            # step's, not the dispatcher's.
            [row] = await Booking.select(Booking.id).where(Booking.reference == reference).run()
            await publish(
                RefundRequested(
                    booking_id=row["id"], reference=reference, amount=100,
                    currency="CNY", reason="test", cause="test",
                )
            )  # fmt: skip
            assert await dispatch_outbox() >= 1
            assert time.monotonic() - began < 3
            booking = (
                await Booking.select(Booking.status)
                .where(Booking.reference == reference)
                .first()
                .run()
            )
            assert booking is not None
            assert booking["status"] == BookingStatus.expired
            assert [p["status"] for p in await Payment.select(Payment.status).run()] == [
                "requires_payment"
            ]
        await proxy.restore()
        # The payments sweep, once Stripe answers, cancels the expired hold's intent.
        with clock.frozen(start + timedelta(hours=1)):
            await sync_open_payments()
        assert [p["status"] for p in await Payment.select(Payment.status).run()] == ["cancelled"]


# ---------------------------------------------------------------- one failing outbox row


async def test_an_outbox_row_failing_in_the_database_neither_aborts_the_batch_nor_stalls(
    client: httpx.AsyncClient, operator: Account
) -> None:
    from uuid import uuid4

    from app.booking.events import WaitlistOfferMade
    from app.core.events import publish
    from app.core.tables import OutboxMessage

    departure = await bus_departure(client, operator)
    reference = await hold(client, departure, "guest@example.com")
    # A waiting-list offer whose address is longer than a recipient column holds: its
    # INSERT fails in the database (on PostgreSQL that aborts the transaction it runs in).
    bad_id, good_id = uuid4(), uuid4()
    for entry_id, email in ((bad_id, "x" * 300), (good_id, "a@b.example")):
        await publish(
            WaitlistOfferMade(
                entry_id=entry_id, reference=reference, access_token="t", email=email, locale="en"
            )
        )

    await dispatch_outbox()

    rows = {
        row["key"]: row
        for row in await OutboxMessage.select().where(OutboxMessage.kind == "waitlist.offer").run()
    }
    good, bad = rows[f"waitlist.offer:{good_id}"], rows[f"waitlist.offer:{bad_id}"]
    assert good["done_at"] is not None
    good_key = f"waitlist.offer:{good_id}:email"
    assert await Notification.count().where(Notification.key == good_key).run() == 1
    if database.is_sqlite():
        return  # SQLite does not check a VARCHAR's length: the row went through
    # The bad row's failure is recorded and it waits for its retry: the outbox goes on.
    assert (bad["done_at"], bad["attempts"]) == (None, 1)
    assert bad["available_at"] > clock.now()
    assert "value too long" in bad["last_error"] or "StringDataRightTruncation" in bad["last_error"]
    assert await dispatch_outbox() == 0


async def test_the_mail_step_claims_no_message_it_has_no_time_left_to_send(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server stalls the first message: its attempt is cut off and recorded; with
    less time left before the call's deadline than one send may take, the second message
    is not claimed (it would be cut off unrecorded and stay claimed for its lease): the
    next call sends it."""
    departure = await bus_departure(client, operator)
    references = [await hold(client, departure, f"due{n}@example.com") for n in range(2)]
    for reference in references:
        await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()
    lease = timedelta(seconds=2)  # each send is cut off after 1 s
    stalling = stall(monkeypatch, mailbox, nth=1, seconds=4)
    try:
        assert await send_due_notifications(lease=lease, deadline=time.monotonic() + 1.5) == 0
    finally:
        stalling.released.set()
    rows = [await the_notification(reference, "booking.confirmed") for reference in references]
    stalled = next(row for row in rows if row["recipient"] == stalling.stalled_to)
    waiting = next(row for row in rows if row["recipient"] != stalling.stalled_to)
    assert (stalled["attempts"], stalled["status"]) == (1, NotificationStatus.pending)
    assert "the outcome is unknown" in stalled["last_error"]
    assert (waiting["attempts"], waiting["status"]) == (0, NotificationStatus.pending)
    assert mailbox.to(waiting["recipient"]) == []
    assert await send_due_notifications(lease=lease, deadline=time.monotonic() + 1.5) == 1
    [_sent] = mailbox.to(waiting["recipient"])
