"""Booking rush: many tourists holding seats at once, against the real server on PostgreSQL.

Run: .venv/bin/python bench/booking_rush.py [--clients 200] [--requests 600]
         [--server uvicorn|granian]
Builds a catalogue in a fresh PostgreSQL database (``tourline_bench_rush`` on
127.0.0.1:5432 unless BENCH_ADMIN_URL / --database say otherwise) through the catalogue
services, serves it with ``tourline serve --server S --workers 2`` (uvicorn unless
``--server`` says granian; the public API's per-IP request limit raised out of reach, as
every client here has the same address) and fires POST /api/v1/bookings (1-4 seats each,
fixed seed) from ``--clients`` concurrent httpx clients:

- rush A: every booking on one train departure of 200 berths (one hot row lock);
- rush B: the same number of bookings spread over 200 departures of a 45-seat bus.

Each rush is first run as plain SQL through asyncpg with the same concurrency and as many
connections as the server's pools together (per booking, one transaction: lock the departure
row FOR UPDATE, read its free seats, insert the booking, its lines and its audit event,
commit), then the bookings are deleted and the same rush goes through the app. The oversold
count is read from the database after each run: live lines above a departure's capacity plus
duplicate live (departure, seat) lines. Last, the app's bookings (holds made) per second
spread over 200 departures are compared with its bookings per second on one departure
(target: at least 3x). Exits 1 if anything is oversold, a 201 was not kept,
or the server answered 5xx. These machines are noisy: read the app / raw SQL ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
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


@dataclass
class Result:
    label: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seats_held: int = 0
    errors: list[str] = field(default_factory=list)
    conflict_codes: dict[str, int] = field(default_factory=dict)
    stock: Inventory | None = None

    def count(self, status: int, latency: float, seats: int = 0) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        if status == 201:
            self.seats_held += seats

    @property
    def created(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def conflicts(self) -> int:
        return self.statuses.get(409, 0)

    @property
    def other(self) -> int:
        return sum(self.statuses.values()) - self.created - self.conflicts

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def holds_per_second(self) -> float:
        return self.created / self.elapsed

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run_clients(clients: int, jobs: list[Any], worker: Any) -> float:
    """Run `worker(job)` for every job from `clients` concurrent tasks; the wall time."""
    queue = iter(jobs)
    started = time.perf_counter()

    async def client(index: int) -> None:
        for job in queue:
            await worker(index, job)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return time.perf_counter() - started


async def app_rush(
    label: str, base_url: str, clients: int, jobs: list[tuple[uuid.UUID, str, int]]
) -> Result:
    import httpx

    result = Result(label)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    sessions = [
        httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) for _ in range(clients)
    ]
    try:
        # Open every connection before the clock starts, as a warm browser would have.
        await asyncio.gather(*(session.get("/health") for session in sessions))

        async def book(index: int, job: tuple[uuid.UUID, str, int]) -> None:
            departure, seat_class, seats = job
            body = {
                "departure_id": str(departure),
                "counts": [{"seat_class": seat_class, "count": seats}],
            }
            started = time.perf_counter()
            try:
                response = await sessions[index].post("/api/v1/bookings", json=body)
            except httpx.HTTPError as exc:
                result.count(0, time.perf_counter() - started)
                result.errors.append(f"{type(exc).__name__}: {exc}")
                return
            result.count(response.status_code, time.perf_counter() - started, seats)
            if response.status_code == 409:
                code = str(response.json().get("code"))
                result.conflict_codes[code] = result.conflict_codes.get(code, 0) + 1
            elif response.status_code != 201 and len(result.errors) < 5:
                result.errors.append(f"{response.status_code}: {response.text[:300]}")

        result.elapsed = await run_clients(clients, jobs, book)
    finally:
        await asyncio.gather(*(session.aclose() for session in sessions))
    return result


RAW_LOCK = "SELECT id, operator, vehicle FROM departure WHERE id = $1 FOR UPDATE"
RAW_FREE = """
SELECT s.id, s.label FROM seat s
WHERE s.vehicle = $1 AND s.seat_class = $3 AND s.blocked_reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM departure_seat_block x WHERE x.departure = $2 AND x.seat = s.id)
  AND NOT EXISTS (
      SELECT 1 FROM booking_line l WHERE l.departure = $2 AND l.seat = s.id AND l.live
  )
ORDER BY s.sort_key
"""
RAW_BOOKING = """
INSERT INTO booking (id, reference, token_hash, operator, departure, channel, status,
                     expires_at, total_amount, currency, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'public', 'on_hold', now() + interval '30 minutes', $6, 'CNY',
        now(), now())
"""
RAW_LINES = """
INSERT INTO booking_line (booking, departure, seat, seat_label, seat_class, passenger_type,
                          price_amount, currency, position, live)
SELECT $1, $2, seat, label, $3, 'adult', $4, 'CNY', position, true
FROM unnest($5::uuid[], $6::text[]) WITH ORDINALITY AS t(seat, label, position)
"""
RAW_EVENT = """
INSERT INTO booking_event (booking, at, actor, from_status, to_status, reason, details)
VALUES ($1, now(), 'guest', NULL, 'on_hold', 'created', $2::json)
"""


async def raw_rush(
    label: str, pool: Any, clients: int, jobs: list[tuple[uuid.UUID, str, int]]
) -> Result:
    """The booking's SQL and nothing else: the floor the app's figures are measured against."""
    import asyncpg

    result = Result(label)
    price = 100

    async def book(_index: int, job: tuple[uuid.UUID, str, int]) -> None:
        departure_id, seat_class, seats = job
        started = time.perf_counter()
        try:
            async with pool.acquire() as connection, connection.transaction():
                departure = await connection.fetchrow(RAW_LOCK, departure_id)
                free = await connection.fetch(
                    RAW_FREE, departure["vehicle"], departure_id, seat_class
                )
                if len(free) < seats:
                    result.count(409, time.perf_counter() - started)
                    return
                chosen = free[:seats]
                booking_id = uuid.uuid4()
                await connection.execute(
                    RAW_BOOKING, booking_id, secrets.token_hex(4).upper(),
                    secrets.token_hex(32), departure["operator"], departure_id, price * seats,
                )  # fmt: skip
                await connection.execute(
                    RAW_LINES, booking_id, departure_id, seat_class, price,
                    [s["id"] for s in chosen], [s["label"] for s in chosen],
                )  # fmt: skip
                labels = [s["label"] for s in chosen]
                details = json.dumps({"seats": labels, "channel": "public"})
                await connection.execute(RAW_EVENT, booking_id, details)
        except (asyncpg.PostgresError, OSError) as exc:
            result.count(0, time.perf_counter() - started)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        result.count(201, time.perf_counter() - started, seats)

    result.elapsed = await run_clients(clients, jobs, book)
    return result


# ---------------------------------------------------------------- the server


# ---------------------------------------------------------------- report


def _print_rush(title: str, raw: Result, app: Result, capacity: str) -> None:
    print(f"\n{title}")
    header = (
        f"{'':22} {'req/s':>7} {'holds/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'201':>5} {'409':>5} {'other':>5} {'seats':>6} {'oversold':>8}"
    )
    print(header)
    for result in (raw, app):
        stock = result.stock
        oversold = "?" if stock is None else str(stock.oversold)
        seats = "?" if stock is None else str(stock.live_lines)
        print(
            f"{result.label:22} {result.requests_per_second:7.1f} {result.holds_per_second:8.1f} "
            f"{result.percentile(0.5) * 1000:8.1f} {result.percentile(0.99) * 1000:8.1f} "
            f"{result.created:5d} {result.conflicts:5d} {result.other:5d} {seats:>6} "
            f"{oversold:>8}"
        )
    print(
        f"app / raw SQL: {app.requests_per_second / raw.requests_per_second:.2f}x throughput, "
        f"{app.percentile(0.5) / raw.percentile(0.5):.1f}x p50, "
        f"{app.percentile(0.99) / raw.percentile(0.99):.1f}x p99   ({capacity})"
    )
    if app.conflict_codes:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(app.conflict_codes.items()))
        print(f"app 409s: {codes}")
    for result in (raw, app):
        for error in result.errors[:5]:
            print(f"  {result.label}: {error}")


def _problems(result: Result) -> list[str]:
    problems = []
    stock = result.stock
    if stock is not None and stock.oversold:
        problems.append(
            f"{result.label}: {stock.oversold} oversold ({stock.over_capacity} above capacity, "
            f"{stock.duplicates} duplicate seats)"
        )
    if stock is not None and stock.live_lines != result.seats_held:
        problems.append(
            f"{result.label}: 201s promised {result.seats_held} seats, "
            f"the database holds {stock.live_lines}"
        )
    if result.server_errors or result.statuses.get(0):
        problems.append(
            f"{result.label}: {result.server_errors} 5xx, {result.statuses.get(0, 0)} failed"
        )
    return problems


# ---------------------------------------------------------------- main


async def main(
    clients: int, requests: int, database_name: str, pool_max: int, server_name: str
) -> int:
    import asyncpg

    database_url = harness.database_url(database_name)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("TOURLINE_ENV", "development")
    import app  # noqa: F401  (sets PICCOLO_CONF before the engine is looked up)

    # Stop on SIGTERM as on Ctrl-C: through the finally below, which cleans up.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    rng = random.Random(SEED)
    server: harness.ServerProcess | None = None
    pool: Any = None
    problems: list[str] = []
    await harness.create_database(database_name)
    try:
        setup_started = time.perf_counter()
        catalogue = await build_catalogue()
        print(
            f"catalogue: 1 train departure of {catalogue.train_capacity} berths, "
            f"{len(catalogue.bus_departures)} bus departures of {catalogue.bus_capacity} seats "
            f"({time.perf_counter() - setup_started:.1f}s)"
        )
        env = harness.app_env(
            database_url, "", DATABASE_POOL_MIN=str(pool_max), DATABASE_POOL_MAX=str(pool_max)
        )
        server = harness.app_server(server_name, WORKERS, env)
        await server.wait_ready("/health")
        connections = WORKERS * pool_max
        pool = await asyncpg.create_pool(database_url, min_size=connections, max_size=connections)
        print(
            f"{requests} bookings of 1-4 seats per rush, {clients} concurrent clients; "
            f"app: {server_name}, {WORKERS} workers x {pool_max} connections; "
            f"raw SQL: {connections} connections"
        )
        sizes = [rng.randint(1, 4) for _ in range(requests)]
        rushes = [
            (
                f"rush A: one train departure, {catalogue.train_capacity} berths",
                [(catalogue.train_departure, TRAIN_CLASS, n) for n in sizes],
                f"{sum(sizes)} berths asked for {catalogue.train_capacity}",
            ),
            (
                f"rush B: {len(catalogue.bus_departures)} bus departures of "
                f"{catalogue.bus_capacity} seats",
                [(rng.choice(catalogue.bus_departures), BUS_CLASS, n) for n in sizes],
                f"{sum(sizes)} seats asked for "
                f"{catalogue.bus_capacity * len(catalogue.bus_departures)}",
            ),
        ]
        app_results: list[Result] = []
        for title, jobs, capacity in rushes:
            await reset_bookings(pool)
            raw = await raw_rush("raw SQL (asyncpg)", pool, clients, jobs)
            raw.stock = await inventory(pool)
            await reset_bookings(pool)
            app_result = await app_rush(
                f"app ({server_name}, {WORKERS} w)", server.base_url, clients, jobs
            )
            app_result.stock = await inventory(pool)
            _print_rush(title, raw, app_result, capacity)
            problems += _problems(raw) + _problems(app_result)
            app_results.append(app_result)
        one, spread = app_results
        # The second target: bookings made per second when the rush is spread over
        # many departures (no shared row lock) against the rush on one departure.
        print(
            f"\napp bookings/s spread over {len(catalogue.bus_departures)} departures / on one: "
            f"{spread.holds_per_second:.1f} / {one.holds_per_second:.1f} = "
            f"{spread.holds_per_second / one.holds_per_second:.1f}x (target: at least 3x)"
        )
        await reset_bookings(pool)
    finally:
        if pool is not None:
            await pool.close()
        if server is not None:
            code = server.stop()
            if code not in (0, None):
                problems.append(f"the server exited with {code}")
            if problems and server.tracebacks():
                print(f"\nserver log ({server.log}):\n{server.tracebacks()}", file=sys.stderr)
            else:
                server.log.unlink(missing_ok=True)
        await harness.drop_database(database_name)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=600, help="bookings per rush")
    parser.add_argument("--database", default="tourline_bench_rush", help="created and dropped")
    parser.add_argument(
        "--pool-max", type=int, default=10, help="DATABASE_POOL_MAX of each server worker"
    )
    parser.add_argument(
        "--server", choices=["uvicorn", "granian"], default="uvicorn", help="the ASGI server"
    )
    arguments = parser.parse_args()
    if arguments.database in ("postgres", "test", "template0", "template1"):
        parser.error(f"refusing to drop {arguments.database!r}")
    try:
        code = asyncio.run(
            main(
                arguments.clients,
                arguments.requests,
                arguments.database,
                arguments.pool_max,
                arguments.server,
            )
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted (server stopped, database dropped)", file=sys.stderr)
        code = 130
    sys.exit(code)
