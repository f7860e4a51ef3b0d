"""Stripe webhook throughput: verify, deduplicate, refetch and record (and confirm + enqueue)
signed events, next to a hello-world POST on the same server.

Run: .venv/bin/python bench/webhooks.py [--server uvicorn|granian] [--workers 2]
         [--seconds 5] [--concurrency 64] [--rounds 3] [--paid 200]
(uvicorn by default, as `tourline serve`; the README's figures were taken with granian)

Loads the demo data into a fresh PostgreSQL database (``tourline_bench_webhooks`` on
127.0.0.1:5432 unless BENCH_ADMIN_URL / --database say otherwise), starts localstripe (the
fake Stripe the tests use) and ``tourline serve --server S --workers N`` with
STRIPE_SECRET_KEY=sk_test_x, STRIPE_WEBHOOK_SECRET and STRIPE_API_BASE pointing at
localstripe, and bench/hello_app.py on the same server with the same workers. Setup (not
timed) makes ``--paid`` x rounds real bookings on hold of one bus seat each, starts their
payment (the app creates the PaymentIntent at localstripe) and pays them with a test card at
localstripe, as Stripe.js would.

Every request is a POST of an event signed exactly as Stripe signs it:
``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. What
POST /api/v1/webhooks/stripe does per event (app/payments/services/webhook.py), scenario by
scenario:

- redelivered event: verify the signature, parse, find the event id already stored
  (one SELECT) -> "duplicate". The cheapest answer Stripe ever gets.
- charge.succeeded, new: verify, dedupe (miss), record the event id in a write
  transaction (INSERT .. ON CONFLICT DO NOTHING) -> "ignored". No Stripe call.
- payment_intent.succeeded for an intent Stripe does not know: as above plus the refetch
  of the PaymentIntent from Stripe (localstripe answers 404) -> "ignored".
- payment_intent.succeeded for a paid hold: verify, dedupe, refetch the intent (200,
  succeeded), then in one transaction record the event, mark the payment succeeded, lock and
  confirm the booking (status change, audit event) and enqueue its side effects in the
  outbox (the confirmation notice) -> "confirmed". Each of these events can be sent once, so
  this scenario sends ``--paid`` events per round instead of running for ``--seconds``.

The baseline is POST /hello on the hello-world app with the same signed
payment_intent.succeeded body (read and answered, not verified). The refetch goes to
localstripe on this machine (its CPU is shown; real Stripe would add network latency
instead). Rows are counted at the end: one stripe_event per new event, and the outbox
messages written per confirmed booking. Scenarios run in turn in every round; the table
gives medians over the rounds (min-max) and "x hello", the median of each round's ratio
app rps / hello rps. These machines are noisy: read the ratios and the cores columns
(client, server, database backends, localstripe, whole machine). Redis and the public
API's per-IP limit are set up as in bench/availability.py. Exits 1 on any answer that is
not a 2xx with the expected outcome, or if the stripe_event rows do not match.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import harness
from harness import Load, ServerProcess, build_request, median, spread

WEBHOOK = "/api/v1/webhooks/stripe"
STRIPE_SECRET_KEY = "sk_test_x"
WEBHOOK_SECRET = "whsec_tourline_bench"
BUS_ROUTES = ("caizhai-picking", "huatian-flower-fields", "tianyuan-farm-day")
BUS_CLASS = "standard"
SEED = 359
# localstripe, without its habit of pickling its whole store to /tmp after every write
# (quadratic in the number of objects, and a file the test suites' localstripes share).
LOCALSTRIPE = (
    "import localstripe.resources as r; r.Store.dump_to_disk = lambda self: None; "
    "from localstripe.server import start; start()"
)


# ---------------------------------------------------------------- events


def signed_post(port: int, path: str, payload: bytes, secret: str = WEBHOOK_SECRET) -> bytes:
    """A POST as Stripe sends it: the raw JSON body, signed over "<t>.<body>"."""
    timestamp = int(time.time())
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": f"t={timestamp},v1={digest}",
    }
    return build_request("POST", path, port, payload, headers)


EVENT_ID = "__EVENT_ID__"
OBJECT_ID = "__OBJECT_ID__"


def event_template(kind: str, data_object: dict[str, Any]) -> str:
    """An event as Stripe sends it, with placeholders for the event (and object) id."""
    return json.dumps(
        {
            "id": EVENT_ID,
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        },
        separators=(",", ":"),
    )


class EventIds:
    """Event ids never sent before in this run (Stripe's are evt_ + 24 characters)."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(4)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"evt_{self.run}{next(self.counter):016d}"


# ---------------------------------------------------------------- setup: paid holds


async def paid_holds(
    app: ServerProcess, stripe_base: str, count: int, rng: random.Random
) -> list[dict[str, Any]]:
    """`count` bookings on hold of one bus seat each, their payment started through the app
    and paid at localstripe with a test card; the PaymentIntents as Stripe has them."""
    import httpx
    import stripe

    async with httpx.AsyncClient(base_url=app.base_url, timeout=60) as client:
        free: list[str] = []
        for slug in BUS_ROUTES:
            page = 1
            while True:
                listing = (
                    await client.get(
                        f"/api/v1/routes/{slug}/departures", params={"page": page, "page_size": 100}
                    )
                ).json()
                for item in listing["items"]:
                    if item["on_sale"]:
                        left = sum(
                            c["seats_left"] for c in item["classes"] if c["seat_class"] == BUS_CLASS
                        )
                        free += [item["id"]] * max(0, left - 1)
                if len(listing["items"]) < 100:
                    break
                page += 1
        if len(free) < count:
            raise SystemExit(f"only {len(free)} free bus seats for {count} paid holds")
        departures = rng.sample(free, count)
        browser = stripe.StripeClient(
            STRIPE_SECRET_KEY,
            base_addresses={"api": stripe_base},
            http_client=stripe.HTTPXClient(),
        )
        intents: list[dict[str, Any]] = []
        semaphore = asyncio.Semaphore(8)

        async def one(index: int, departure: str) -> None:
            async with semaphore:
                created = await client.post(
                    "/api/v1/bookings",
                    json={
                        "departure_id": departure,
                        "counts": [
                            {"seat_class": BUS_CLASS, "passenger_type": "adult", "count": 1}
                        ],
                        "contact": {
                            "name": f"压测游客{index}",
                            "email": f"bench{index}@example.cn",
                            "phone": "+86 138 0000 0000",
                        },
                        "passengers": [{"name": f"压测游客{index}"}],
                    },
                )
                assert created.status_code == 201, created.text
                body = created.json()
                reference = body["booking"]["reference"]
                started = await client.post(
                    f"/api/v1/bookings/{reference}/payments",
                    headers={"X-Booking-Token": body["access_token"]},
                )
                assert started.status_code == 200, started.text
                intent_id = started.json()["client_secret"].split("_secret_")[0]
                await browser.v1.payment_intents.update_async(
                    intent_id, params={"payment_method": "pm_card_visa"}
                )
                paid = await browser.v1.payment_intents.confirm_async(intent_id)
                assert paid.status == "succeeded", paid.status
                intents.append(paid.to_dict())

        await asyncio.gather(*(one(i, d) for i, d in enumerate(departures)))
    rng.shuffle(intents)
    return intents


# ---------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    label: str
    server: ServerProcess
    expected: str | None  # the webhook's outcome, None for hello world
    make: Any  # RequestMaker, given the round
    requests: int | None = None  # a fixed number per round instead of --seconds
    rounds: list[Load] = field(default_factory=list)


def outcome_of(status: int, body: bytes) -> str:
    if status != 200:
        return f"http {status}"
    try:
        return str(json.loads(body).get("outcome", "?"))
    except ValueError:
        return "not json"


def print_table(title: str, scenarios: list[Scenario]) -> None:
    baseline = scenarios[0]
    print(f"\n{title}")
    print(
        f"{'scenario':44} {'rps median (min-max)':>22} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'x hello':>7} {'p50 x':>6}  outcomes; cores used (median)"
    )
    base_p50 = median([load.percentile(0.5) for load in baseline.rounds])
    for scenario in scenarios:
        loads = scenario.rounds
        ratios = [load.rps / base.rps for load, base in zip(loads, baseline.rounds, strict=True)]
        p50 = median([load.percentile(0.5) for load in loads])
        p99 = median([load.percentile(0.99) for load in loads])
        outcomes: Counter[str] = Counter()
        for load in loads:
            outcomes.update(load.outcomes)
        named = ",".join(f"{name} {n}" for name, n in outcomes.most_common()) or "-"
        print(
            f"{scenario.label:44} {spread([load.rps for load in loads]):>22} "
            f"{p50 * 1000:7.2f} {p99 * 1000:7.2f} {median(ratios):7.3f} {p50 / base_p50:6.1f}  "
            f"{named}; {harness.cpu_columns(loads)}"
        )


async def count_rows(database_url: str) -> tuple[int, dict[str, int]]:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        events = await connection.fetchval("SELECT COUNT(*) FROM stripe_event")
        kinds = await connection.fetch(
            "SELECT kind, COUNT(*) AS n FROM outbox_message GROUP BY kind ORDER BY kind"
        )
    finally:
        await connection.close()
    return int(events), {row["kind"]: int(row["n"]) for row in kinds}


# ---------------------------------------------------------------- main


async def main(arguments: argparse.Namespace) -> int:
    url = harness.database_url(arguments.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("TOURLINE_ENV", "development")
    import app  # noqa: F401  (sets PICCOLO_CONF before the engine is looked up)

    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    await harness.claim_redis(arguments.redis_url)
    rng = random.Random(SEED)
    servers: list[ServerProcess] = []
    problems: list[str] = []
    await harness.create_database(arguments.database)
    try:
        print(await harness.load_demo_data())
        stripe_port = harness.free_port()
        localstripe = ServerProcess(
            "localstripe",
            [sys.executable, "-c", LOCALSTRIPE, "--port", str(stripe_port), "--from-scratch"],
            dict(os.environ),
            stripe_port,
        )
        servers.append(localstripe)
        await localstripe.wait_ready(
            "/v1/customers", headers={"Authorization": f"Bearer {STRIPE_SECRET_KEY}"}
        )
        env = harness.app_env(
            url,
            arguments.redis_url,
            STRIPE_SECRET_KEY=STRIPE_SECRET_KEY,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE=localstripe.base_url,
        )
        app_server = harness.app_server(arguments.server, arguments.workers, env)
        servers.append(app_server)
        hello = harness.hello_server(arguments.server, arguments.workers)
        servers.append(hello)
        await app_server.wait_ready("/health")
        await hello.wait_ready("/hello")

        setup_started = time.perf_counter()
        paid = arguments.paid * arguments.rounds
        intents = await paid_holds(app_server, localstripe.base_url, paid, rng) if paid else []
        print(
            f"setup: {len(intents)} paid holds of one bus seat "
            f"({time.perf_counter() - setup_started:.1f}s)"
        )
        sample = intents[0] if intents else {"id": "pi_bench", "object": "payment_intent"}
        succeeded = event_template("payment_intent.succeeded", sample)
        charge = dict(sample, id=OBJECT_ID, object="charge", payment_intent=sample["id"])
        charge_template = event_template("charge.succeeded", charge)
        unknown_template = event_template(
            "payment_intent.succeeded", dict(sample, id=OBJECT_ID, client_secret=None)
        )
        paid_payloads = [
            event_template("payment_intent.succeeded", intent) for intent in intents
        ]  # each still needs its event id
        new_id = EventIds()

        def fresh(template: str, object_prefix: str) -> Any:
            """New events, each about a new object (`object_prefix` + the event's number)."""

            def make(_index: int) -> bytes:
                event_id = new_id()
                payload = template.replace(EVENT_ID, event_id)
                payload = payload.replace(OBJECT_ID, event_id.replace("evt_", object_prefix))
                return signed_post(app_server.port, WEBHOOK, payload.encode())

            return lambda _round: make

        # Events already stored, for the redelivery scenario.
        stored = [
            charge_template.replace(EVENT_ID, new_id()).replace(OBJECT_ID, f"ch_bench{i:08d}")
            for i in range(256)
        ]
        seeding = await harness.run_load(
            "seed", app_server,
            lambda i: signed_post(app_server.port, WEBHOOK, stored[i].encode()),
            concurrency=arguments.concurrency, requests=len(stored), inspect=outcome_of,
        )  # fmt: skip
        if seeding.outcomes != Counter({"ignored": len(stored)}):
            problems.append(f"seeding the stored events: {dict(seeding.outcomes)}")

        def redelivered(_round: int) -> Any:
            return lambda i: signed_post(app_server.port, WEBHOOK, stored[i % len(stored)].encode())

        def paid_events(number: int) -> Any:
            chunk = paid_payloads[number * arguments.paid : (number + 1) * arguments.paid]
            return lambda i: signed_post(
                app_server.port, WEBHOOK, chunk[i].replace(EVENT_ID, new_id()).encode()
            )

        scenarios = [
            Scenario(
                "hello world POST /hello (baseline)", hello, None,
                lambda _round: lambda _i: signed_post(
                    hello.port, "/hello", succeeded.replace(EVENT_ID, new_id()).encode()
                ),
            ),
            Scenario("redelivered event (duplicate)", app_server, "duplicate", redelivered),
            Scenario(
                "charge.succeeded, new (record, ignore)", app_server, "ignored",
                fresh(charge_template, "ch_"),
            ),
            Scenario(
                "pi.succeeded, intent unknown (+refetch 404)", app_server, "ignored",
                fresh(unknown_template, "pi_"),
            ),
        ]  # fmt: skip
        if arguments.paid:
            scenarios.append(
                Scenario(
                    "pi.succeeded, paid hold (+refetch, confirm)",
                    app_server,
                    "confirmed",
                    paid_events,
                    requests=arguments.paid,
                )
            )
        print(harness.describe_code())
        print(
            f"{arguments.server}, {arguments.workers} workers each (app and hello world), "
            f"{arguments.concurrency} connections, {arguments.rounds} rounds x "
            f"{arguments.seconds:g} s per scenario (+{arguments.warmup:g} s warm-up), "
            f"{arguments.paid} paid-hold events per round; event body {len(succeeded)} bytes"
        )
        for number in range(arguments.rounds):
            for scenario in scenarios:
                timed = scenario.requests is None
                load = await harness.run_load(
                    scenario.label, scenario.server, scenario.make(number),
                    concurrency=arguments.concurrency,
                    seconds=arguments.seconds if timed else None,
                    requests=scenario.requests, warmup=arguments.warmup if timed else 0.0,
                    inspect=None if scenario.expected is None else outcome_of,
                    meters=harness.cpu_meters(
                        scenario.server, arguments.database, stripe=localstripe
                    ),
                )  # fmt: skip
                scenario.rounds.append(load)
                if scenario.expected is not None:
                    unexpected = {k: n for k, n in load.outcomes.items() if k != scenario.expected}
                    if unexpected:
                        problems.append(f"{scenario.label}: unexpected outcomes {unexpected}")
                if load.failed or load.errors:
                    problems.append(
                        f"{scenario.label}: {dict(load.statuses)} {'; '.join(load.errors)}"
                    )
            print(
                f"round {number + 1}: "
                + ", ".join(f"{s.label.split(' (')[0]} {s.rounds[-1].rps:.0f}" for s in scenarios),
                flush=True,
            )
        print_table(
            f"Stripe webhooks, {arguments.server} --workers {arguments.workers}, "
            f"concurrency {arguments.concurrency}",
            scenarios,
        )
        events, outbox = await count_rows(url)
        # Every event but the hello world's and the redelivered ones is new (warm-ups too).
        new_events = len(stored) + sum(
            load.outcomes.total() + load.warmup_outcomes.total()
            for scenario in scenarios[2:]
            for load in scenario.rounds
        )
        confirmed = sum(load.outcomes["confirmed"] for s in scenarios for load in s.rounds)
        print(
            f"\nrows: {events} stripe_event for {new_events} new events sent; outbox after "
            f"{confirmed} confirmations: " + ", ".join(f"{kind} {n}" for kind, n in outbox.items())
        )
        if events != new_events:
            problems.append(f"{events} stripe_event rows for {new_events} new events")
    finally:
        for server in reversed(servers):
            server.finish(problems)
        await harness.drop_database(arguments.database)
        await harness.empty_redis(arguments.redis_url)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


def run() -> None:
    parser = harness.load_parser(__doc__, "tourline_bench_webhooks", "scenario")
    parser.add_argument(
        "--paid", type=int, default=200, help="paid-hold events per round (0: skip)"
    )
    harness.run_load_benchmark(parser, main)


if __name__ == "__main__":
    run()
