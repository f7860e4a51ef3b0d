"""How much a public catalogue read costs compared with the cheapest request, /health.

Run: .venv/bin/python bench/public_catalogue.py [--requests 300]
Loads the demo data into a fresh database (SQLite by default; DATABASE_URL selects
PostgreSQL), serves the app in-process and prints, for each endpoint, the mean latency and
its ratio to /health measured in the same run (these machines are noisy: read the ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time


def _prepare_environment() -> None:
    if not os.environ.get("DATABASE_URL"):
        folder = tempfile.mkdtemp(prefix="tourline-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"


async def main(requests: int) -> None:
    import httpx

    import app  # noqa: F401
    from app.asgi import create_app
    from app.core import database
    from app.core.settings import get_settings
    from app.demo.data import load_demo

    await database.open_database(get_settings())
    await database.migrate()
    await load_demo()
    if get_settings().uses_postgres:
        # Fresh tables have no statistics; production has autovacuum's.
        await database.get_engine().run_ddl("ANALYZE")
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        listing = (await client.get("/api/v1/routes?kind=bus")).json()
        slug = listing["items"][0]["slug"]
        departures = (await client.get(f"/api/v1/routes/{slug}/departures")).json()
        departure_id = departures["items"][0]["id"]
        endpoints = {
            "health (baseline)": "/health",
            "route search": "/api/v1/routes?page_size=20",
            "route search, text + dates": "/api/v1/routes?q=picking&from=2027-06-01&to=2027-07-31",
            "route detail": f"/api/v1/routes/{slug}",
            "route departures": f"/api/v1/routes/{slug}/departures?page_size=20",
            "departure detail": f"/api/v1/departures/{departure_id}",
            "seat map": f"/api/v1/departures/{departure_id}/seats",
        }
        timings: dict[str, list[float]] = {name: [] for name in endpoints}
        # Interleave endpoints so drift in machine load affects all of them alike.
        for _ in range(requests):
            for name, path in endpoints.items():
                started = time.perf_counter()
                response = await client.get(path, headers={"Accept-Language": "en"})
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
    await database.close_database()
    baseline = statistics.median(timings["health (baseline)"])
    engine = "PostgreSQL" if get_settings().uses_postgres else "SQLite"
    print(f"{requests} requests per endpoint, in-process, {engine}")
    print(f"{'endpoint':32} {'median ms':>10} {'p95 ms':>8} {'x health':>9}")
    for name, samples in timings.items():
        samples.sort()
        median = statistics.median(samples)
        p95 = samples[int(len(samples) * 0.95) - 1]
        print(f"{name:32} {median * 1000:10.2f} {p95 * 1000:8.2f} {median / baseline:9.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    arguments = parser.parse_args()
    _prepare_environment()
    asyncio.run(main(arguments.requests))
