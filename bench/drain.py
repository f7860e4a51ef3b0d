"""Mail drain: how long 1, 2 and 4 `tourline worker` processes take to send a backlog of
queued mails to an SMTP server that takes a moment per message, as a real one does.

Run: .venv/bin/python bench/drain.py [--mails 1000] [--delay-ms 20] [--workers 1,2,4]
         [--rounds 1]

Loads the demo data into a fresh PostgreSQL database (``tourline_bench_drain`` on
127.0.0.1:5432 unless BENCH_ADMIN_URL / --database say otherwise), makes 50 bookings on
hold (for a day) on the demo bus lines, and starts an SMTP sink (aiosmtpd, in a thread of
this process) that answers each message after ``--delay-ms`` milliseconds. For each worker
count, in every round: start that many real ``tourline worker`` processes (PostgreSQL, and
Redis for their job queue), wait until each has connected, then queue ``--mails`` mails at
once (an operator's advisory to every passenger, as notification rows due now: the 50
bookings x mails/50 advisories) and time until none is pending or being sent. The workers'
mail loops share the backlog: each claims the rows it sends, so more workers drain it
faster.

The table gives, per worker count, the seconds to drain (from queueing to the last row
sent, including the wait for the loops' next look, at most ~2 s), mails per second, the
ratio against 1 worker measured in the same round (medians over the rounds), and the cores
used by the workers, the database backends, this process (the sink) and the whole machine.
These machines are noisy, and 2 cores are shared by the workers, PostgreSQL and the sink:
read the ratios.
Exits 1 if any mail was not received exactly once, or a worker died.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import harness
from harness import ServerProcess, median, spread

BOOKINGS = 50
BUS_CLASS = "standard"
QUEUE = "tourline-bench-drain"
# Each advisory names itself in its text, so that the sink can tell two apart.
ADVISORY = re.compile(r"notice [0-9a-f]{32}")


# ---------------------------------------------------------------- the SMTP sink


class Sink:
    """Receives mail, a moment per message; counts each mail by recipient and notice."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        text = message.get_body(("plain",))
        found = ADVISORY.search(text.get_content() if text is not None else "")
        key = f"{','.join(envelope.rcpt_tos)}|{found.group(0) if found else message['Subject']}"
        with self.lock:
            self.received[key] += 1
        return "250 OK"

    def take(self) -> Counter[str]:
        with self.lock:
            received, self.received = self.received, Counter()
        return received


# ---------------------------------------------------------------- data


async def make_bookings(count: int) -> list[dict[str, Any]]:
    """`count` bookings on hold for a day, one bus seat each, each with its own contact."""
    import msgspec

    from app.booking.schemas import BookingCreate
    from app.booking.services.hold import create_booking
    from app.booking.tables import Booking
    from app.catalogue.tables import Departure
    from app.core import clock
    from app.core.errors import DomainError

    departures = (
        await Departure.select(Departure.id)
        # Far enough ahead that no departure reminder falls due during the bench.
        .where(
            (Departure.status == "published")
            & (Departure.departs_at > clock.now() + timedelta(days=4))
        )
        .order_by(Departure.departs_at)
        .run()
    )
    made = 0
    for departure in departures:
        while made < count:
            request = msgspec.convert(
                {
                    "departure_id": str(departure["id"]),
                    "counts": [
                        {"seat_class": BUS_CLASS, "passenger_type": "adult", "count": 1}
                    ],
                    "contact": {
                        "name": f"Drain {made}", "email": f"drain{made}@example.cn",
                        "phone": "+86 138 0000 0000", "locale": "en",
                    },
                },
                BookingCreate,
            )  # fmt: skip
            try:
                await create_booking(request, hold_minutes=24 * 60)
            except DomainError:
                break  # sold out, another class, not on sale: the next departure
            made += 1
        if made >= count:
            break
    if made < count:
        raise SystemExit(f"only {made} bookings could be made for {count}")
    rows = await Booking.select(
        Booking.id, Booking.reference, Booking.contact_email, Booking.locale, Booking.departure
    ).run()
    return [dict(row) for row in rows]


async def queue_mails(bookings: list[dict[str, Any]], mails: int) -> None:
    """`mails` advisory notifications, due now, in one transaction (as post_advisory
    writes them: one per live booking and advisory)."""
    from app.core.database import write_transaction
    from app.notifications.services.common import notify

    advisories = -(-mails // len(bookings))
    queued = 0
    async with write_transaction():
        for _ in range(advisories):
            advisory_id = uuid.uuid4()
            payload = {
                "advisory_id": str(advisory_id),
                "advisory_kind": "general",
                "message": {"en": f"notice {advisory_id.hex}: the road is closed."},
                "max_temperature_c": None,
            }
            for booking in bookings:
                if queued == mails:
                    return
                await notify(
                    f"advisory:{advisory_id}:{booking['reference']}", "advisory",
                    booking["contact_email"], booking["locale"], booking=booking["id"],
                    departure=booking["departure"], payload=payload,
                )  # fmt: skip
                queued += 1


async def unfinished() -> int:
    """Mails still to send: pending, or being sent (claimed) right now."""
    from app.notifications.tables import Notification, NotificationStatus

    return int(
        await Notification.count()
        .where(
            Notification.status.is_in(
                [NotificationStatus.pending.value, NotificationStatus.sending.value]
            )
        )
        .run()
    )


async def notification_statuses() -> Counter[str]:
    from app.notifications.tables import Notification

    rows = await Notification.select(Notification.status).run()
    return Counter(row["status"] for row in rows)


async def forget_mails() -> None:
    """Every notification and outbox row (the setup's bookings wrote some too)."""
    from app.core.tables import OutboxMessage
    from app.notifications.tables import Notification

    await Notification.delete(force=True).run()
    await OutboxMessage.delete(force=True).run()


# ---------------------------------------------------------------- workers


def start_workers(count: int, env: dict[str, str]) -> list[ServerProcess]:
    command = [str(Path(sys.executable).with_name("tourline")), "worker"]
    return [ServerProcess(f"worker-{n}", command, env, 0) for n in range(count)]


async def wait_connected(workers: list[ServerProcess], seconds: float = 60) -> None:
    """Until each worker's arq worker has started (it logs so once connected)."""
    deadline = time.monotonic() + seconds
    for worker in workers:
        while "Starting worker" not in worker.log.read_text(errors="replace"):
            if worker.process.poll() is not None:
                raise RuntimeError(f"{worker.name} exited:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{worker.name} did not connect:\n{worker.tail()}")
            await asyncio.sleep(0.1)


@dataclass
class Drain:
    workers: int
    seconds: float
    mails: int
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.mails / self.seconds


async def drain_once(
    count: int, env: dict[str, str], bookings: list[dict[str, Any]], mails: int, sink: Sink,
    database: str, problems: list[str],
) -> Drain:  # fmt: skip
    workers = start_workers(count, env)
    try:
        await wait_connected(workers)
        await asyncio.sleep(1)  # past the loops' first look at an empty backlog
        sink.take()
        meters = {
            "workers": lambda: sum(worker.cpu_seconds() for worker in workers),
            "db": lambda: harness.database_cpu_seconds(database),
            # This process: the SMTP sink's thread, and the look at the backlog.
            "sink": harness.self_cpu_seconds,
            "machine": harness.machine_busy_seconds,
        }
        before = {name: meter() for name, meter in meters.items()}
        started = time.perf_counter()
        await queue_mails(bookings, mails)
        while await unfinished():
            if time.perf_counter() - started > 600:
                problems.append(f"{count} workers: not drained in 600 s")
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = {name: (meter() - before[name]) / elapsed for name, meter in meters.items()}
        for worker in workers:
            if worker.process.poll() is not None:
                problems.append(f"{worker.name} died")
    finally:
        for worker in workers:
            worker.finish(problems)
    received = sink.take()
    statuses = await notification_statuses()
    if statuses != Counter({"sent": mails}):
        problems.append(f"{count} workers: notifications {dict(statuses)}")
    twice = sum(1 for n in received.values() if n > 1)
    if len(received) != mails or twice:
        problems.append(f"{count} workers: {len(received)} mails received, {twice} more than once")
    await forget_mails()
    return Drain(count, elapsed, mails, cpu)


# ---------------------------------------------------------------- main


async def main(arguments: argparse.Namespace) -> int:
    from aiosmtpd.controller import Controller

    url = harness.database_url(arguments.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("TOURLINE_ENV", "development")
    import app  # noqa: F401  (sets PICCOLO_CONF before the engine is looked up)
    from app.core import database

    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    counts = [int(n) for n in arguments.workers.split(",")]
    await harness.claim_redis(arguments.redis_url)
    problems: list[str] = []
    sink = Sink(arguments.delay_ms / 1000)
    smtp_port = harness.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    await harness.create_database(arguments.database)
    rounds: list[list[Drain]] = []
    try:
        print(await harness.load_demo_data())
        await harness.open_app_database()
        setup_started = time.perf_counter()
        bookings = await make_bookings(BOOKINGS)
        await forget_mails()
        took = time.perf_counter() - setup_started
        print(f"setup: {len(bookings)} bookings on hold ({took:.1f}s)")
        env = {
            **os.environ,
            **harness.app_env(url, arguments.redis_url),
            "TOURLINE_JOB_QUEUE": QUEUE,
            "TOURLINE_LOG_FORMAT": "text",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "STRIPE_SECRET_KEY": "",
        }
        for number in range(arguments.rounds):
            results = []
            for count in counts:
                result = await drain_once(
                    count, env, bookings, arguments.mails, sink, arguments.database, problems
                )
                results.append(result)
                print(
                    f"round {number + 1}: {count} worker(s) drained {result.mails} mails in "
                    f"{result.seconds:.1f}s ({result.rate:.0f}/s)"
                )
            rounds.append(results)
        await database.close_database()

        print(harness.describe_code())
        print(
            f"\n{arguments.mails} mails, SMTP sink {arguments.delay_ms:g} ms a message, "
            f"{arguments.rounds} round(s): median (min-max)"
        )
        print(f"{'workers':>8} {'seconds':>18} {'mails/s':>18} {'x 1 worker':>11}  cores")
        base = counts[0]
        for index, count in enumerate(counts):
            drains = [results[index] for results in rounds]
            ratios = [
                results[index].rate / next(r for r in results if r.workers == base).rate
                for results in rounds
            ]
            cores = " ".join(
                f"{name} {median([d.cpu[name] for d in drains]):.2f}" for name in drains[0].cpu
            )
            print(
                f"{count:>8} {spread([d.seconds for d in drains], 1):>18} "
                f"{spread([d.rate for d in drains]):>18} {median(ratios):>10.2f}x  {cores}"
            )
    finally:
        controller.stop()
        await harness.drop_database(arguments.database)
        await harness.empty_redis(arguments.redis_url)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="per message, at the sink")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, the first the base")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database", default="tourline_bench_drain")
    parser.add_argument("--redis-url", default=harness.REDIS_URL, help="emptied at the end")
    harness.run_load_benchmark(parser, main)


if __name__ == "__main__":
    run()
