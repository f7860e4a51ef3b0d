"""`tourline worker` (workers/runner.py) against a Redis that only half works, and stopped
by SIGTERM in the middle of sending a mail to a slow SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from app.booking.tables import Booking
from app.core.settings import get_settings
from app.core.tables import OutboxMessage
from app.notifications.services.common import notify
from app.notifications.tables import Notification, NotificationStatus
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure
from tests.integration.faults.test_exactly_once import stall, wait_until
from tests.integration.faults.test_redis_outage import (
    QUEUE,
    forget_queue,
    hold_body,
    server_env,
    tourline_worker,
)
from workers import runner

# ---------------------------------------------------------------- a read-only Redis


class ReadOnlyRedis:
    """A RESP server that answers PING and refuses every other command, as a replica
    (READONLY), a Redis that cannot save (MISCONF) or one out of memory would."""

    def __init__(self) -> None:
        # Connections made to it: one per try of the worker.
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while command := await _read_command(reader):
                if command[0].upper() == b"PING":
                    writer.write(b"+PONG\r\n")
                else:
                    writer.write(b"-READONLY You can't write against a read only replica.\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_command(reader: asyncio.StreamReader) -> list[bytes]:
    line = await reader.readline()
    if not line.startswith(b"*"):
        return line.split()  # an inline command, or nothing at the end
    arguments = []
    for _ in range(int(line[1:])):
        size = int((await reader.readline())[1:])
        arguments.append((await reader.readexactly(size + 2))[:-2])
    return arguments


async def test_a_redis_that_answers_ping_but_refuses_commands_is_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's PING succeeds and its first command fails at once: it must still back
    off (0.5, 1, 2, 4 s ...), not reconnect every half second with two log lines each."""
    redis = ReadOnlyRedis()
    port = await redis.start()
    settings = dataclasses.replace(
        get_settings(), redis_url=f"redis://127.0.0.1:{port}/0", job_queue=f"{QUEUE}:readonly"
    )
    try:
        with caplog.at_level(logging.INFO, logger="tourline.worker"):
            serving = asyncio.create_task(runner.serve_queue(settings))
            await asyncio.sleep(4.5)
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    finally:
        await redis.stop()
    # Tries at about 0, 0.5, 1.5 and 3.5 s (reconnecting every 0.5 s made 9 or more).
    assert 2 <= redis.connections <= 5, redis.connections
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 2, lines
    assert "ReadOnlyError" in lines[0]


# ---------------------------------------------------------------- SIGTERM mid-send


async def test_sigterm_while_a_mail_is_being_sent_lets_it_finish_as_sent(
    client: httpx.AsyncClient,
    operator: Account,
    redis_url: str,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The SMTP server takes a few seconds to answer the message; SIGTERM comes meanwhile.
    The worker starts nothing new, lets the send finish and records it: the mail is
    `sent`, once (stopping used to cancel it, leaving it `sending` until its lease ran
    out, and then sent again)."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.post("/api/v1/bookings", json=hold_body(departure["id"], "slow"))
    assert response.status_code == 201, response.text
    row = (
        await Booking.select(Booking.id)
        .where(Booking.reference == response.json()["booking"]["reference"])
        .first()
        .run()
    )
    assert row is not None
    # Only the advisory below is to be sent.
    await OutboxMessage.delete(force=True).run()
    await Notification.delete(force=True).run()
    payload = {"advisory_id": str(uuid.uuid4()), "advisory_kind": "general",
               "message": {"en": "The road is closed."}, "max_temperature_c": None}  # fmt: skip
    assert await notify(
        "advisory:sigterm", "advisory", "slow@example.cn", "en",
        booking=row["id"], departure=uuid.UUID(departure["id"]), payload=payload,
    )  # fmt: skip
    stalling = stall(monkeypatch, mailbox, nth=1, seconds=3, accept_first=True)
    log = tmp_path / "worker.log"
    await forget_queue(redis_url)
    try:
        async with tourline_worker(server_env(redis_url), log) as worker:
            await wait_until(stalling.stalling.is_set, 30, "the worker is sending the mail")
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), timeout=15)
            assert worker.returncode == 0, log.read_text()
    finally:
        await forget_queue(redis_url)
    [notification] = await Notification.select().run()
    assert notification["status"] == NotificationStatus.sent, log.read_text()
    assert notification["attempts"] == 1
    assert len(mailbox.to("slow@example.cn")) == 1
