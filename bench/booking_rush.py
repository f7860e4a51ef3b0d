"""Booking rush: Tourline against the raw-SQL floor, the same transaction through asyncpg.

Run: .venv/bin/python bench/booking_rush.py [--requests 600] [--repeats 10]

Starts a PostgreSQL server of its own (initdb in a temporary folder, pg_stat_statements
loaded: the shared server on 5432 is not touched), builds a catalogue there through the
catalogue services, serves it with ``tourline serve --workers 2`` (uvicorn; a scratch
Redis database for the expiry jobs, as in production; the public API's per-IP limit out
of reach) and fires POST /api/v1/bookings (1-4 seats each, fixed seed) from 1, 16 and 64
keep-alive clients:

- one departure: every booking on one train departure of 200 berths (it sells out: most
  answers are then 409 sold out, as in a real rush);
- 200 departures: the same bookings spread over 200 departures of a 45-seat bus.

Before each app rush the same bookings go through asyncpg directly, with as many
connections as the server's pools: the statements the app sends for a hold (its read and
``booking_hold(...)``, see app/booking/services/hold_statement.py) and nothing else. For
each: answers and holds per second, p50/p99 latency, server CPU ms per answer (the
server's processes, from /proc), database CPU ms per answer (its backends), statements
per answer (pg_stat_statements), and the oversold count read from the database. Then the
64-client one-departure rush is repeated ``--repeats`` times to show the server's resident
memory per process does not grow. Exits 1 if anything is oversold, a 201 was not kept, or
an answer was a 5xx. The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import signal
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import harness

WORKERS = 2
TRAIN_CLASS = "soft_sleeper"
BUS_CLASS = "standard"
BUS_DEPARTURES = 200
SEED = 359


# ---------------------------------------------------------------- database and catalogue


@dataclass
class Catalogue:
    train_departure: uuid.UUID
    train_capacity: int
    bus_departures: list[uuid.UUID]
    bus_capacity: int


def _t(zh: str, en: str) -> dict[str, str]:
    return {"zh_Hans": zh, "en": en}


async def build_catalogue() -> Catalogue:
    """An operator, a train route with one 200-berth departure and a bus route with 200
    departures, entered through the catalogue services as an operator would."""
    import msgspec

    from app.accounts import operators
    from app.accounts.schemas import OperatorCreate, OperatorPrincipal, StaffCreate
    from app.accounts.services import create_staff
    from app.accounts.tables import StaffRole
    from app.catalogue.schemas.departures import BulkScheduleIn, DepartureCreate, FaresIn
    from app.catalogue.schemas.routes import ItineraryIn, RouteCreate
    from app.catalogue.schemas.vehicles import VehicleCreate
    from app.catalogue.services import (
        departure_edits,
        departure_status,
        fares,
        itineraries,
        routes,
        seasons,
        vehicles,
    )
    from app.catalogue.tables import DepartureStatus, RouteStatus
    from app.core import clock, database

    def convert(payload: dict[str, Any], kind: type[Any]) -> Any:
        return msgspec.convert(payload, kind)

    await harness.open_app_database()
    try:
        await database.migrate()
        operator = await operators.create_operator(
            convert(
                {
                    "slug": "rush-tours",
                    "name": _t("抢票旅游", "Rush Tours"),
                    "contact_email": "service@rush.example",
                    "contact_phone": "+86 371 6000 0000",
                },
                OperatorCreate,
            )
        )
        staff = await create_staff(
            convert(
                {
                    "email": "ops@rush.example",
                    "name": "Rush admin",
                    "password": "rush-bench-password",
                    "role": "operator_admin",
                },
                StaffCreate,
            ),
            operator.id,
        )
        principal = OperatorPrincipal(
            staff_id=staff.id, role=StaffRole.operator_admin, operator_id=operator.id
        )
        one_day = {
            "days": [
                {
                    "day_number": 1,
                    "title": _t("出发", "Off we go"),
                    "stops": [{"place": _t("郑州站", "Zhengzhou Station"), "depart_time": "07:30"}],
                }
            ]
        }

        async def published_route(slug: str, kind: str, seat_class: str, amount: int) -> Any:
            route = await routes.create_route(
                principal,
                convert(
                    {
                        "slug": slug,
                        "kind": kind,
                        "name": _t(slug, slug),
                        "description": _t("压测线路", "Benchmark line"),
                    },
                    RouteCreate,
                ),
            )
            await itineraries.replace_itinerary(principal, route.id, convert(one_day, ItineraryIn))
            await routes.change_route_status(principal, route.id, RouteStatus.published)
            await fares.replace_route_fares(
                principal,
                route.id,
                convert(
                    {
                        "fares": [
                            {"seat_class": seat_class, "passenger_type": who, "amount": price}
                            for who, price in (
                                ("adult", amount),
                                ("child", amount // 2),
                                ("senior", amount * 3 // 4),
                            )
                        ]
                    },
                    FaresIn,
                ),
            )
            return route

        # The train: 5 cars of 10 four-berth compartments, 200 berths of one class.
        train_route = await published_route("rush-train", "train", TRAIN_CLASS, 1_598_000)
        cars = [
            {"car": car, "seat_class": TRAIN_CLASS, "compartments": 10, "berths_per_compartment": 4}
            for car in range(1, 6)
        ]
        train = await vehicles.create_vehicle(
            principal,
            convert(
                {"kind": "train", "name": "Rush train", "layout": {"type": "train", "cars": cars}},
                VehicleCreate,
            ),
        )
        departs_at = clock.now().replace(microsecond=0) + timedelta(days=60)
        train_departure = await departure_edits.create_departure(
            principal,
            convert(
                {
                    "route_id": str(train_route.id),
                    "vehicle_id": str(train.id),
                    "departs_at": departs_at.isoformat(),
                    "returns_at": (departs_at + timedelta(hours=10)).isoformat(),
                    "sales_close_at": (departs_at - timedelta(days=2)).isoformat(),
                },
                DepartureCreate,
            ),
        )
        await departure_status.change_departure_status(
            principal, train_departure.id, DepartureStatus.published
        )

        # The bus: 45 seats, a departure every day for 200 days.
        bus_route = await published_route("rush-bus", "bus", BUS_CLASS, 6800)
        bus = await vehicles.create_vehicle(
            principal,
            convert(
                {
                    "kind": "bus",
                    "name": "Rush bus",
                    "layout": {"type": "bus", "rows": 11, "last_row_letters": "ABCDE"},
                },
                VehicleCreate,
            ),
        )
        start = clock.now().date() + timedelta(days=2)
        scheduled = await seasons.schedule_season(
            principal,
            bus_route.id,
            convert(
                {
                    "vehicle_id": str(bus.id),
                    "start_date": start.isoformat(),
                    "end_date": (start + timedelta(days=BUS_DEPARTURES - 1)).isoformat(),
                    "weekdays": [1, 2, 3, 4, 5, 6, 7],
                    "departure_time": "07:30",
                    "return_time": "17:30",
                    "sales_close_minutes_before": 60,
                    "publish": True,
                },
                BulkScheduleIn,
            ),
        )
        # Fresh tables have no statistics; production has autovacuum's.
        await database.get_engine().run_ddl("ANALYZE")
        capacities = await _capacities()
        bus_ids = [d.id for d in scheduled.departures]
    finally:
        await database.close_database()
    assert len(bus_ids) == BUS_DEPARTURES, len(bus_ids)
    return Catalogue(
        train_departure=train_departure.id,
        train_capacity=capacities[train_departure.id],
        bus_departures=bus_ids,
        bus_capacity=capacities[bus_ids[0]],
    )


async def _capacities() -> dict[uuid.UUID, int]:
    from app.catalogue.services.capacity import capacity_by_departure
    from app.catalogue.tables import Departure

    ids = [row["id"] for row in await Departure.select(Departure.id).run()]
    return {d: sum(classes.values()) for d, classes in (await capacity_by_departure(ids)).items()}


# ---------------------------------------------------------------- checks on the database

OVERSOLD_SQL = """
WITH capacity AS (
    SELECT d.id AS departure, COUNT(s.id) AS seats
    FROM departure d
    JOIN seat s ON s.vehicle = d.vehicle AND s.blocked_reason IS NULL
    WHERE NOT EXISTS (
        SELECT 1 FROM departure_seat_block x WHERE x.departure = d.id AND x.seat = s.id
    )
    GROUP BY d.id
),
live AS (
    SELECT departure, COUNT(*) AS lines FROM booking_line WHERE live GROUP BY departure
),
duplicates AS (
    SELECT COUNT(*) - 1 AS extra FROM booking_line WHERE live
    GROUP BY departure, seat HAVING COUNT(*) > 1
)
SELECT
    (SELECT COALESCE(SUM(GREATEST(l.lines - COALESCE(c.seats, 0), 0)), 0)
     FROM live l LEFT JOIN capacity c ON c.departure = l.departure) AS over_capacity,
    (SELECT COALESCE(SUM(extra), 0) FROM duplicates) AS duplicates,
    (SELECT COUNT(*) FROM booking_line WHERE live) AS live_lines
"""


@dataclass
class Inventory:
    over_capacity: int
    duplicates: int
    live_lines: int

    @property
    def oversold(self) -> int:
        return self.over_capacity + self.duplicates


async def inventory(pool: Any) -> Inventory:
    row = await pool.fetchrow(OVERSOLD_SQL)
    return Inventory(int(row["over_capacity"]), int(row["duplicates"]), int(row["live_lines"]))


async def reset_bookings(pool: Any) -> None:
    """Put every departure back on sale, empty: the next run sees the same inventory.
    CASCADE: payments, refunds, notices and the like refer to bookings (none here)."""
    await pool.execute("TRUNCATE booking_event, booking_line, booking, waitlist_entry CASCADE")
    await pool.execute("ANALYZE booking, booking_line, booking_event")


# ---------------------------------------------------------------- the load

Job = tuple[uuid.UUID, str, int]


@dataclass
class Result:
    side: str
    clients: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seats_held: int = 0
    errors: list[str] = field(default_factory=list)
    stock: Inventory | None = None
    server_cpu: float = 0.0  # seconds
    db_cpu: float = 0.0
    statements: int = 0

    def count(self, status: int, latency: float, seats: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        if status == 201:
            self.seats_held += seats

    @property
    def answers(self) -> int:
        return len(self.latencies)

    @property
    def holds(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def per_second(self) -> float:
        return self.answers / self.elapsed

    @property
    def holds_per_second(self) -> float:
        return self.holds / self.elapsed

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    def ms_per_answer(self, seconds: float) -> float:
        return seconds * 1000 / self.answers


async def run_clients(clients: int, jobs: list[Job], worker: Any) -> float:
    """Run `worker(client, job)` for every job from `clients` concurrent tasks."""
    queue = iter(jobs)
    started = time.perf_counter()

    async def client(index: int) -> None:
        for job in queue:
            await worker(index, job)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return time.perf_counter() - started


async def app_rush(server: harness.ServerProcess, clients: int, jobs: list[Job]) -> Result:
    result = Result("tourline", clients)
    connections = [harness.Connection("127.0.0.1", server.port) for _ in range(clients)]
    for connection in connections:
        await connection.open()
        await asyncio.sleep(0.005)
    headers = {"Content-Type": "application/json"}

    async def book(index: int, job: Job) -> None:
        departure, seat_class, seats = job
        body = json.dumps(
            {"departure_id": str(departure), "counts": [{"seat_class": seat_class, "count": seats}]}
        ).encode()
        request = harness.build_request("POST", "/api/v1/bookings", server.port, body, headers)
        started = time.perf_counter()
        try:
            status, answer = await connections[index].send(request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            connections[index].close()
            result.count(0, time.perf_counter() - started, 0)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        result.count(status, time.perf_counter() - started, seats)
        if status not in (201, 409) and len(result.errors) < 5:
            result.errors.append(f"{status}: {answer[:300]!r}")

    try:
        result.elapsed = await run_clients(clients, jobs, book)
    finally:
        for connection in connections:
            connection.close()
    return result


def _placeholders(sql: str) -> str:
    """Piccolo's `{}` placeholders as asyncpg's $1, $2, ..."""
    parts = sql.split("{}")
    return "".join(
        part + (f"${i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts)
    )


async def raw_rush(pool: Any, clients: int, jobs: list[Job], fares: dict[str, int]) -> Result:
    """The floor: per booking, the app's two statements through asyncpg, nothing else."""
    import asyncpg

    from app.booking.services import hold_statement

    context_sql = _placeholders(hold_statement._CONTEXT)
    hold_sql = _placeholders(hold_statement._HOLD)
    kinds = ["adult", "child", "senior"]
    result = Result("raw SQL", clients)

    async def book(_index: int, job: Job) -> None:
        departure_id, seat_class, seats = job
        retail = fares[seat_class]
        started = time.perf_counter()
        try:
            async with pool.acquire() as connection:
                context = await connection.fetchrow(context_sql, None, departure_id)
                outcome = json.loads(
                    await connection.fetchval(
                        hold_sql, departure_id, datetime.now(UTC), None, uuid.uuid4(),
                        secrets.token_hex(4).upper(),
                        hashlib.sha256(secrets.token_bytes(24)).hexdigest(), "public",
                        context["hold_minutes"], None, "", "", "", "zh_Hans",
                        context["currency"], None, "guest", [seat_class] * seats,
                        ["adult"] * seats, None, [""] * seats, [""] * seats,
                        [seat_class] * 3, kinds, [retail] * 3, [retail] * 3,
                        [context["currency"]] * 3, False,
                    )
                )  # fmt: skip
        except (asyncpg.PostgresError, OSError) as exc:
            result.count(0, time.perf_counter() - started, 0)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        held = outcome["outcome"] == "held"
        result.count(201 if held else 409, time.perf_counter() - started, seats)

    result.elapsed = await run_clients(clients, jobs, book)
    return result


# ---------------------------------------------------------------- measuring


class Meter:
    """CPU of the server's processes and of the database's backends, and the statements
    the database ran (pg_stat_statements, read from the admin database)."""

    def __init__(self, admin: Any, database: str, server: harness.ServerProcess) -> None:
        self.admin = admin
        self.database = database
        self.server = server

    async def reset(self) -> tuple[float, float]:
        await self.admin.execute("SELECT pg_stat_statements_reset()")
        return self.server.cpu_seconds(), harness.database_cpu_seconds(self.database)

    async def read(self, before: tuple[float, float], result: Result, app: bool) -> None:
        if app:
            result.server_cpu = self.server.cpu_seconds() - before[0]
        result.db_cpu = harness.database_cpu_seconds(self.database) - before[1]
        result.statements = int(
            await self.admin.fetchval(
                "SELECT COALESCE(SUM(s.calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 "
                "AND s.query NOT LIKE '%pg_stat_statements%'",
                self.database,
            )
        )


async def measure(
    meter: Meter, pool: Any, server: harness.ServerProcess, clients: int, jobs: list[Job],
    fares: dict[str, int], side: str,
) -> Result:  # fmt: skip
    await reset_bookings(pool)
    before = await meter.reset()
    if side == "raw":
        result = await raw_rush(pool, clients, jobs, fares)
    else:
        result = await app_rush(server, clients, jobs)
    # The statements' counts settle once their backends report them.
    await asyncio.sleep(0.3)
    await meter.read(before, result, side == "app")
    # Not counted: the bench's own reads of the stock.
    result.stock = await inventory(pool)
    return result


# ---------------------------------------------------------------- report


def _row(scenario: str, result: Result) -> str:
    stock = result.stock
    oversold = "?" if stock is None else str(stock.oversold)
    server = f"{result.ms_per_answer(result.server_cpu):6.2f}" if result.server_cpu else "     -"
    return (
        f"| {scenario:14} | {result.clients:3d} | {result.side:8} | {result.per_second:8.1f} | "
        f"{result.holds_per_second:7.1f} | {result.percentile(0.5) * 1000:7.1f} | "
        f"{result.percentile(0.99) * 1000:7.1f} | {server} | "
        f"{result.ms_per_answer(result.db_cpu):5.2f} | "
        f"{result.statements / result.answers:5.2f} | {result.holds:4d}/{result.answers:<4d} | "
        f"{oversold:>3} |"
    )


HEADER = (
    "| rush           | cl. | side     | answers/s | holds/s | p50 ms | p99 ms | server CPU "
    "ms/answer | db CPU ms/answer | statements/answer | 201/all | oversold |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


RATIO_HEADER = (
    "| rush | clients | app/raw answers/s | app/raw p99 | app p99 ms "
    "| server CPU ms/answer |\n|---|---|---|---|---|---|"
)


def _problems(result: Result) -> list[str]:
    problems = []
    label = f"{result.side} at {result.clients} clients"
    stock = result.stock
    if stock is not None and stock.oversold:
        problems.append(f"{label}: {stock.oversold} oversold")
    if stock is not None and stock.live_lines != result.seats_held:
        problems.append(
            f"{label}: 201s promised {result.seats_held} seats, the db holds {stock.live_lines}"
        )
    bad = sum(n for status, n in result.statuses.items() if status not in (201, 409))
    if bad:
        problems.append(f"{label}: {bad} answers neither 201 nor 409: {result.errors[:3]}")
    return problems


# ---------------------------------------------------------------- main


async def _keep_session(_connection: Any) -> None:
    """asyncpg's default reset sends four statements per release; the app's sends none."""


async def main(arguments: argparse.Namespace) -> int:
    import asyncpg

    postgres = harness.PrivatePostgres()
    postgres.start()
    database_name = arguments.database
    database_url = harness.database_url(database_name, postgres.admin_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("TOURLINE_ENV", "development")
    import app  # noqa: F401  (sets PICCOLO_CONF before the engine is looked up)

    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    rng = random.Random(SEED)
    server: harness.ServerProcess | None = None
    pool: Any = None
    admin: Any = None
    problems: list[str] = []
    redis_url = arguments.redis_url
    await harness.claim_redis(redis_url)
    try:
        await harness.create_database(database_name, postgres.admin_url)
        admin = await asyncpg.connect(postgres.admin_url)
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        catalogue = await build_catalogue()
        pool_max = arguments.pool_max
        env = harness.app_env(
            database_url, redis_url, DATABASE_POOL_MIN=str(pool_max),
            DATABASE_POOL_MAX=str(pool_max),
        )  # fmt: skip
        server = harness.app_server("uvicorn", WORKERS, env)
        await server.wait_ready("/health")
        connections = WORKERS * pool_max
        # As the app's pool: connections given back as they are (no reset statements).
        pool = await asyncpg.create_pool(
            database_url, min_size=connections, max_size=connections, reset=_keep_session
        )
        meter = Meter(admin, database_name, server)
        fares = {TRAIN_CLASS: 1_598_000, BUS_CLASS: 6800}
        print(f"# booking rush, {harness.describe_code()}")
        print(f"machine: {harness.describe_machine()}; {postgres.version()} (private instance)")
        print(
            f"catalogue: 1 train departure of {catalogue.train_capacity} berths, "
            f"{len(catalogue.bus_departures)} bus departures of {catalogue.bus_capacity} seats; "
            f"app: uvicorn, {WORKERS} workers x {pool_max} connections; raw SQL: {connections} "
            "connections\n"
        )
        sizes = [rng.randint(1, 4) for _ in range(arguments.requests)]
        scenarios = {
            "one departure": [(catalogue.train_departure, TRAIN_CLASS, n) for n in sizes],
            "200 departures": [(rng.choice(catalogue.bus_departures), BUS_CLASS, n) for n in sizes],
        }
        # Warm both sides (connections, prepared statements), not counted.
        warm = scenarios["200 departures"][:100]
        await measure(meter, pool, server, 16, warm, fares, "raw")
        await measure(meter, pool, server, 16, warm, fares, "app")
        print(HEADER)
        ratios: list[str] = []
        for scenario, jobs in scenarios.items():
            for clients in (1, 16, 64):
                run = jobs if clients > 1 else jobs[: max(100, len(jobs) // 3)]
                raw = await measure(meter, pool, server, clients, run, fares, "raw")
                app_result = await measure(meter, pool, server, clients, run, fares, "app")
                print(_row(scenario, raw))
                print(_row(scenario, app_result), flush=True)
                problems += _problems(raw) + _problems(app_result)
                ratios.append(
                    f"| {scenario} | {clients} | {app_result.per_second / raw.per_second:.2f} | "
                    f"{app_result.percentile(0.99) / raw.percentile(0.99):.1f} | "
                    f"{app_result.percentile(0.99) * 1000:.0f} | "
                    f"{app_result.ms_per_answer(app_result.server_cpu):.2f} |"
                )
        print("\n" + RATIO_HEADER)
        print("\n".join(ratios))

        # Memory: resident size per server process after each of repeated rushes.
        rss: list[dict[int, int]] = []
        for _ in range(arguments.repeats):
            result = await measure(
                meter, pool, server, 64, scenarios["one departure"], fares, "app"
            )
            problems += _problems(result)
            rss.append(harness.group_rss_bytes(server.process.pid))
        first, last = rss[0], rss[-1]
        print(f"\nserver RSS per process (MiB) after rush 1 and rush {len(rss)} of "
              "64 clients on one departure:")  # fmt: skip
        for pid in sorted(last):
            before = first.get(pid, 0) / 2**20
            after = last[pid] / 2**20
            print(f"  pid {pid}: {before:.1f} -> {after:.1f} ({after - before:+.1f})")
        growth = [
            statistics.mean(r.get(pid, 0) for r in rss[len(rss) // 2 :])
            - statistics.mean(r.get(pid, 0) for r in rss[: len(rss) // 2])
            for pid in last
        ]
        print(f"  mean growth, second half of the rushes over the first: "
              f"{max(growth) / 2**20:+.1f} MiB at most")  # fmt: skip
        await reset_bookings(pool)
    finally:
        if pool is not None:
            await pool.close()
        if admin is not None:
            await admin.close()
        if server is not None:
            server.finish(problems)
        await harness.empty_redis(redis_url)
        postgres.stop()
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=600, help="bookings per rush")
    parser.add_argument("--repeats", type=int, default=10, help="rushes for the memory figure")
    parser.add_argument("--database", default="tourline_bench_rush")
    parser.add_argument(
        "--pool-max", type=int, default=10, help="DATABASE_POOL_MAX of each server worker"
    )
    parser.add_argument(
        "--redis-url", default=harness.REDIS_URL, help="emptied at the end; '' for no Redis"
    )
    arguments = parser.parse_args()
    try:
        import uvloop

        code = uvloop.run(main(arguments))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted (server and database stopped)", file=sys.stderr)
        code = 130
    sys.exit(code)
