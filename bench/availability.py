"""Availability reads under load: what a departure and its seat map cost next to hello world.

Run: .venv/bin/python bench/availability.py [--server uvicorn|granian] [--workers 2]
         [--seconds 5] [--concurrency 64] [--rounds 3]

Loads the demo data into a fresh PostgreSQL database (``tourline_bench_availability`` on
127.0.0.1:5432 unless BENCH_ADMIN_URL / --database say otherwise), starts
``tourline serve --server S --workers N`` on it and, beside it, bench/hello_app.py (a bare
Litestar hello world) on the same server with the same workers and options. Then, with the
same number of keep-alive connections for each, it measures requests per second and
p50/p99 latency of:

- GET /hello on the hello-world app (the baseline);
- GET /health on the real app (routing, middleware and serialisation, no database);
- GET /api/v1/departures/{id} and GET /api/v1/departures/{id}/seats for the demo train
  departure (中原铁道·大河之南号, 270 berths) and for a demo bus departure (45 seats).

Every endpoint is measured once per round, in turn, so that drift in the machine's load
touches them all alike; the table gives the median over the rounds (with min-max), and
"x hello" is the median of each round's ratio app rps / hello rps. These machines are
noisy (2 cores shared by the server, PostgreSQL, this client and other people's test
suites): read the ratios, and the last columns (cores used by this client, the server's
processes, the database's backends and the whole machine) to see who was busy.

The app uses Redis (``--redis-url``, which must be empty and is emptied at the end) as in
production: jobs go there, so no in-process job loop runs beside the requests, and the
public API's per-IP request limit counts every request there; that limit is raised out of
reach (TOURLINE_PUBLIC_RATE_LIMIT), since all the load comes from 127.0.0.1.
``--redis-url ''`` runs without Redis. Exits 1 if any answer was not a 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import harness
from harness import Load, ServerProcess, build_request, median, spread

TRAIN_ROUTE = "y359-henan-xinjiang"
BUS_ROUTE = "caizhai-picking"


@dataclass
class Endpoint:
    label: str
    server: ServerProcess
    path: str
    rounds: list[Load]

    @functools.cached_property
    def request(self) -> bytes:
        return build_request("GET", self.path, self.server.port)

    def make(self, _index: int) -> bytes:
        """Every request to an endpoint is the same GET."""
        return self.request


async def get_json(server: ServerProcess, path: str) -> Any:
    connection = harness.Connection("127.0.0.1", server.port)
    try:
        status, body = await connection.send(build_request("GET", path, server.port))
    finally:
        connection.close()
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


async def first_departure(app: ServerProcess, slug: str) -> tuple[str, int, int]:
    """The first departure on sale of a demo line: its id, seats and free seats."""
    listing = await get_json(app, f"/api/v1/routes/{slug}/departures?page_size=50")
    for item in listing["items"]:
        seat_map = await get_json(app, f"/api/v1/departures/{item['id']}/seats")
        seats = seat_map["seats"]
        detail = await get_json(app, f"/api/v1/departures/{item['id']}")
        if detail["on_sale"]:
            return item["id"], len(seats), sum(1 for s in seats if s["free"])
    raise RuntimeError(f"no departure of {slug} is on sale")


def print_table(title: str, endpoints: list[Endpoint]) -> None:
    baseline = endpoints[0]
    print(f"\n{title}")
    print(
        f"{'endpoint':34} {'rps median (min-max)':>22} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'x hello':>7} {'p50 x':>6} {'bytes':>7}  cores used (median)"
    )
    for endpoint in endpoints:
        loads = endpoint.rounds
        ratios = [load.rps / base.rps for load, base in zip(loads, baseline.rounds, strict=True)]
        p50 = median([load.percentile(0.5) for load in loads])
        p99 = median([load.percentile(0.99) for load in loads])
        base_p50 = median([load.percentile(0.5) for load in baseline.rounds])
        print(
            f"{endpoint.label:34} {spread([load.rps for load in loads]):>22} "
            f"{p50 * 1000:7.2f} {p99 * 1000:7.2f} {median(ratios):7.3f} {p50 / base_p50:6.1f} "
            f"{loads[-1].body_bytes:7d}  {harness.cpu_columns(loads)}"
        )


async def main(arguments: argparse.Namespace) -> int:
    url = harness.database_url(arguments.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("TOURLINE_ENV", "development")
    import app  # noqa: F401  (sets PICCOLO_CONF before the engine is looked up)

    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    await harness.claim_redis(arguments.redis_url)
    servers: list[ServerProcess] = []
    problems: list[str] = []
    await harness.create_database(arguments.database)
    try:
        print(await harness.load_demo_data())
        env = harness.app_env(url, arguments.redis_url)
        app_server = harness.app_server(arguments.server, arguments.workers, env)
        servers.append(app_server)
        hello = harness.hello_server(arguments.server, arguments.workers)
        servers.append(hello)
        await app_server.wait_ready("/health")
        await hello.wait_ready("/hello")
        train, train_seats, train_free = await first_departure(app_server, TRAIN_ROUTE)
        bus, bus_seats, bus_free = await first_departure(app_server, BUS_ROUTE)
        endpoints = [
            Endpoint("hello world GET /hello (baseline)", hello, "/hello", []),
            Endpoint("app GET /health", app_server, "/health", []),
            Endpoint(
                f"train departure ({train_seats} berths)", app_server,
                f"/api/v1/departures/{train}", [],
            ),
            Endpoint(
                f"train seat map ({train_seats} berths)", app_server,
                f"/api/v1/departures/{train}/seats", [],
            ),
            Endpoint(
                f"bus departure ({bus_seats} seats)", app_server, f"/api/v1/departures/{bus}", []
            ),
            Endpoint(
                f"bus seat map ({bus_seats} seats)", app_server,
                f"/api/v1/departures/{bus}/seats", [],
            ),
        ]  # fmt: skip
        print(harness.describe_code())
        print(
            f"{arguments.server}, {arguments.workers} workers each (app and hello world), "
            f"{arguments.concurrency} connections, {arguments.rounds} rounds x "
            f"{arguments.seconds:g} s per endpoint (+{arguments.warmup:g} s warm-up); "
            f"train {train} ({train_free} of {train_seats} free), "
            f"bus {bus} ({bus_free} of {bus_seats} free)"
        )
        for number in range(arguments.rounds):
            for endpoint in endpoints:
                load = await harness.run_load(
                    endpoint.label, endpoint.server, endpoint.make,
                    concurrency=arguments.concurrency, seconds=arguments.seconds,
                    warmup=arguments.warmup,
                    meters=harness.cpu_meters(endpoint.server, arguments.database),
                )  # fmt: skip
                endpoint.rounds.append(load)
                if load.failed or load.errors:
                    problems.append(
                        f"{endpoint.label}: {dict(load.statuses)} {'; '.join(load.errors)}"
                    )
            print(
                f"round {number + 1}: "
                + ", ".join(f"{e.label.split(' (')[0]} {e.rounds[-1].rps:.0f}" for e in endpoints),
                flush=True,
            )
        print_table(
            f"availability, {arguments.server} --workers {arguments.workers}, "
            f"concurrency {arguments.concurrency}",
            endpoints,
        )
    finally:
        for server in reversed(servers):
            server.finish(problems)
        await harness.drop_database(arguments.database)
        await harness.empty_redis(arguments.redis_url)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


def run() -> None:
    harness.run_load_benchmark(
        harness.load_parser(__doc__, "tourline_bench_availability", "endpoint"), main
    )


if __name__ == "__main__":
    run()
