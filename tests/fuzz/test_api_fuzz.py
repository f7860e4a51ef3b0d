"""The public, operator and partner APIs fuzzed by schemathesis from /schema/openapi.json.

Each operation of the schema (but the exclusions below) gets generated requests, valid and
invalid, and every answer must be no 5xx and conform to the schema: a documented status code,
a documented content type, the documented headers, and a body matching the response schema.

Every operation is called by each role: nobody, a tourist with the booking's token, an
operator's admin, an operator's staff member, a platform admin and an agency's key. The
role the operation is for (`owner`) sends all MAX_EXAMPLES requests; each other role sends
a few of the same ones (OTHER_ROLE_SHARE). A role that may call the operation (`may_call`)
gets the same checks; one that may not must be refused (401, 403 or 404, see `refusals`),
never served and never a 5xx.

The requests run in-process on the app, in this session's event loop and on its database (the
PostgreSQL pool belongs to that loop), through httpx's ASGI transport. Schemathesis' own ASGI
client would run them in a thread and event loop of its own, and would start the app's
lifespan there: a second database pool, and the in-process job loop running `tick` every
30 seconds under the other tests of the worker.

Each operation gets fresh data (tables are emptied after each test): an operator with a
published bus line, fares and a departure, its admin and a staff member, a guest booking
with a contact, a partner agency on account with a key, and whatever else the operation's
path names (an offer, an allotment, a second key, a notification, an OCTO booking, a failed
webhook event). Most generated requests carry real ids, so that they get past 404, and the
owner's carry valid credentials; the rest keep the generated ones. Which ones is decided by
a hash of the generated value, so every run sends the same requests but for the ids
(`derandomize=True`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
import requests
import schemathesis
import urllib3
from hypothesis import HealthCheck, settings
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from schemathesis.generation import GenerationMode
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.python.asgi import ASGIClient

from app.asgi import create_app
from app.core.tables import AttemptCounter
from app.partners.tables import WebhookDelivery, WebhookStatus
from tests.assertions import ok
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import published_bus_departure

# Generated requests per operation for its owner (plus the schema's own examples): about
# 2,900 requests for the whole API, and about 2,200 more by the other roles.
MAX_EXAMPLES = 25

# ---------------------------------------------------------------- the app and its schema


class WithoutLifespan:
    """The app with a lifespan that does nothing: this session's fixtures own the database,
    and the app's startup would open a second pool and start the in-process job loop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _refs(node: Any, found: set[str], components: dict[str, Any]) -> set[str]:
    """The component schemas `node` uses, directly or through other components."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in found:
                found.add(name)
                _refs(components.get(name), found, components)
        for value in node.values():
            _refs(value, found, components)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found, components)
    return found


def _close(node: Any) -> None:
    """`additionalProperties: false` on the objects of `node` that say nothing about it."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    if raw_schema.get("info", {}).get("title") != "Tourline API":
        return
    paths = raw_schema.get("paths", {})
    # Unknown body fields are a 400 (README: "clients never set prices, statuses or owners
    # (unknown fields are a 400)"), but the input schemas do not say so: without this, most
    # valid bodies schemathesis makes carry an extra field and stop at the 400. Only schemas
    # no response uses are closed, so that response checks stay the app's own.
    components = raw_schema.get("components", {}).get("schemas", {})
    operations = [op for item in paths.values() for op in item.values() if isinstance(op, dict)]
    inputs = _refs([op.get("requestBody") for op in operations], set(), components)
    outputs = _refs([op.get("responses") for op in operations], set(), components)
    for name in inputs - outputs:
        _close(components[name])


APP = WithoutLifespan(create_app())

schema = (
    schemathesis.openapi.from_asgi("/schema/openapi.json", APP)
    # Stripe's webhook takes only bodies signed with Stripe's secret: every generated request
    # is (rightly) refused before any code worth fuzzing runs. tests/integration/payments
    # sends it signed events.
    .exclude(path="/api/v1/webhooks/stripe")
    # The API documentation pages are Litestar's (and the schema does not list them).
    .exclude(path_regex=r"^/schema")
)
schema.config.checks.update(
    included_check_names=[
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
# The schema's examples and generated requests. Not the coverage phase: its deterministic
# boundary cases are about 5,000 requests for this API, several minutes on 2 cores.
schema.config.phases.update(phases=["examples", "fuzzing"])
# No string constants mined from the app's modules: their order follows which modules the
# worker happened to import (this file alone or the whole suite), and so would the requests.
schema.config.analysis.constants.enabled = False
# Show failing requests whole (tokens, idempotency keys): they are test values, and a
# reproduction needs them.
schema.config.output.sanitization.update(enabled=False)


# ---------------------------------------------------------------- requests in the session loop


def _share(*parts: Any) -> float:
    """A number in [0, 1) that depends only on the parts: the same on every run."""
    return zlib.crc32(repr(parts).encode()) / 2**32


class _SessionLoopAdapter(BaseAdapter):
    """A `requests` adapter that sends the prepared request through httpx's ASGI transport
    in the test session's event loop, and turns the answer into a `requests` response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
        super().__init__()
        self.loop = loop
        self.client = client

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        body = request.body
        content = body.encode() if isinstance(body, str) else bytes(body or b"")
        answer = self.loop.run_until_complete(
            self.client.request(
                str(request.method),
                str(request.url),
                headers=list(request.headers.items()),
                content=content,
            )
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason_phrase
        response.headers = CaseInsensitiveDict(answer.headers.multi_items())
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=list(answer.headers.multi_items()),
            status=answer.status_code,
            preload_content=False,
        )
        response.encoding = answer.encoding
        response.url = str(request.url)
        response.request = request
        response.connection = self
        return response

    def close(self) -> None:
        pass


class SessionLoopClient(ASGIClient):
    """What `case.call(session=...)` takes for a schema loaded from an ASGI app, sending
    through `_SessionLoopAdapter`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
        super().__init__(APP)
        adapter = _SessionLoopAdapter(loop, client)
        self.mount("http://", adapter)
        self.mount("https://", adapter)


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.fixture
async def fuzz_clients(
    operation: str, session_loop: asyncio.AbstractEventLoop
) -> AsyncIterator[dict[str, SessionLoopClient]]:
    """A client per role, each from its own address: wrong booking tokens are counted per
    address in the process's memory (20 in 10 minutes, then 429), and must not spill into
    other tests or other roles."""
    clients = {}
    async with contextlib.AsyncExitStack() as stack:
        for role in ROLES:
            n = zlib.crc32(f"{operation} {role}".encode()) % (1 << 24)
            address = f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}"
            transport = httpx.ASGITransport(
                app=APP, raise_app_exceptions=False, client=(address, 50000)
            )
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )
            clients[role] = SessionLoopClient(session_loop, client)
        yield clients


# ---------------------------------------------------------------- the data each operation needs

AGENCIES = "/api/v1/operator/agencies"
OCTO_CAPABILITIES = "octo/pricing, octo/pickups, octo/content"
# Body fields naming an object of the world (the world's id is sent for most of them).
BODY_IDS = {
    "departure_id": "departure_id",
    "route_id": "route_id",
    "vehicle_id": "vehicle_id",
    "productId": "product_id",
    "availabilityId": "departure_id",
}
# Body fields that must name a seat class or passenger type the line sells.
BODY_VALUES = {
    "seat_class": "standard",
    "optionId": "standard",
    "passenger_type": "adult",
}


# Who calls: nobody, a tourist with the booking's token, each staff role, an agency's key.
ROLES = ("anonymous", "tourist", "operator_admin", "operator_staff", "platform_admin", "agency")
STAFF = ("operator_admin", "operator_staff", "platform_admin")
# The share of generated requests each other role sends too (about 4 of MAX_EXAMPLES).
OTHER_ROLE_SHARE = 0.15
# What an operator's staff (not its admins) may do in the operator API: read most things,
# check passengers in, resend a notification or a failed webhook event. Everything else is
# the admins'.
STAFF_MAY_NOT_READ = {
    "/api/v1/operator/audit",
    "/api/v1/operator/agencies/{agency_id}/webhook-secret",
}
STAFF_MAY_WRITE = {
    "POST /api/v1/operator/departures/{departure_id}/check-in",
    "POST /api/v1/operator/notifications/{notification_id}/resend",
    "POST /api/v1/operator/agencies/{agency_id}/webhooks/{event_id}/retry",
}
# Statuses for a role that may not call an operation: never 2xx, never 5xx.
REFUSED = (401, 403, 404)


def refusals(case: schemathesis.Case, role: str) -> tuple[int, ...]:
    """What a role that may not call the operation may hear: 401, 403 or 404 (400 from
    OCTO); and 400 for a request refused for what it carries before anyone asks who sends it
    (text with a NUL character, refused by the request-input middleware; an invalid
    request), sent by staff of another role (the guards check the token and that it is an
    operator's staff before the body is read; whether that staff role may edit is the
    services' to say, after), or sent to a guest's booking (its token is checked with the
    booking, after the body: a body's validity says nothing about the booking)."""
    if case.operation.path.startswith("/octo"):
        # OCTO's own refusals, UNAUTHORIZED or FORBIDDEN, have status 400.
        return (400,)
    invalid = case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE
    guest_booking = owner(case) == "tourist"
    if role in STAFF or invalid or guest_booking or "\\x00" in repr((case.body, case.query)):
        return (*REFUSED, 400)
    return REFUSED


def owner(case: schemathesis.Case) -> str:
    """The role an operation is for, which gets the most requests."""
    path = case.operation.path
    if path.startswith(("/octo", "/api/v1/partner")):
        return "agency"
    if path.startswith("/api/v1/admin"):
        return "platform_admin"
    if path.startswith(("/api/v1/operator", "/api/v1/auth/me")):
        return "operator_admin"
    if any(p.name == "X-Booking-Token" for p in case.operation.iter_parameters()):
        return "tourist"
    return "anonymous"


def may_call(role: str, case: schemathesis.Case) -> bool:
    """Whether `role` may call the operation (rather than get 401, 403 or 404)."""
    path, method = case.operation.path, case.method.upper()
    for_role = owner(case)
    if for_role in ("anonymous", role):
        return True
    if path == "/api/v1/auth/me":
        return role in STAFF
    if for_role == "operator_admin" and role == "operator_staff":
        if method == "GET":
            return path not in STAFF_MAY_NOT_READ
        return f"{method} {path}" in STAFF_MAY_WRITE
    return False


class World:
    """Ids and credentials for one operation, and how to put them into a generated case."""

    def __init__(self, operator: Account, staff: Account, admin: Account) -> None:
        self.accounts = {"operator_admin": operator, "operator_staff": staff,
                         "platform_admin": admin}  # fmt: skip
        self.operator = operator
        self.ids: dict[str, str] = {}
        self.partner_key = ""
        self.booking_token = ""

    def credentials(self, role: str) -> str | None:
        if role == "agency":
            return self.partner_key
        if role in self.accounts:
            return self.accounts[role].token
        return None

    def prepare(self, case: schemathesis.Case) -> None:
        """Real ids and values in most cases, the generated ones in the rest."""
        path = case.operation.path
        octo_capabilities = _share(path, case.body, case.query) < 0.5
        for name, value in list((case.path_parameters or {}).items()):
            if name in self.ids and _share(path, name, value) < 0.8:
                case.path_parameters[name] = self.ids[name]
        for name, value in list((case.query or {}).items()):
            if name in self.ids and isinstance(value, str) and _share(path, name, value) < 0.6:
                case.query[name] = self.ids[name]
        self._fill(path, case.body)
        login = path == "/api/v1/auth/login" and isinstance(case.body, dict)
        if login and _share(path, case.body) < 0.5:
            case.body.update(email=self.operator.email, password=STAFF_PASSWORD)
        headers = dict(case.headers or {})
        if path.startswith("/octo") and octo_capabilities:
            headers["Octo-Capabilities"] = OCTO_CAPABILITIES
        case.headers = headers

    def as_role(self, case: schemathesis.Case, role: str) -> schemathesis.Case:
        """The case as `role` sends it. The owner keeps a generated (wrong) Authorization
        or X-Booking-Token header now and then; other roles send their own credentials
        (a tourist its booking token), or none, or the generated token."""
        path = case.operation.path
        headers = dict(case.headers or {})
        mine = role == owner(case)
        token = self.credentials(role)
        generated = headers.pop("Authorization", None)
        if token is not None and (not mine or generated is None or _share(path, generated) < 0.9):
            headers["Authorization"] = f"Bearer {token}"
        elif mine and generated is not None:
            headers["Authorization"] = generated
        generated = headers.get("X-Booking-Token")
        if role == "tourist" and (not mine or generated is None or _share(path, generated) < 0.8):
            headers["X-Booking-Token"] = self.booking_token
        return case.derive(headers=CaseInsensitiveDict(headers))

    @staticmethod
    def other_roles(case: schemathesis.Case) -> list[str]:
        """The roles, but the owner, that send this case too: each a few of them, chosen
        by the generated values (before `prepare` puts real ids in), so that Hypothesis'
        replays send the same. A request with nothing generated is sent by every role."""
        generated = (case.path_parameters, case.query, case.body, case.headers)
        everyone = not any(generated)
        return [
            role
            for role in ROLES
            if role != owner(case)
            and (everyone or _share(role, case.operation.label, generated) < OTHER_ROLE_SHARE)
        ]

    def _fill(self, path: str, body: Any) -> None:
        """Put the world's ids and values into string fields of the body, most of the time."""
        if isinstance(body, list):
            for item in body:
                self._fill(path, item)
            return
        if not isinstance(body, dict):
            return
        for name, value in list(body.items()):
            if isinstance(value, str):
                real = self.ids.get(BODY_IDS.get(name, "")) or BODY_VALUES.get(name)
                if real is not None and _share(path, name, value) < 0.7:
                    body[name] = real
            else:
                self._fill(path, value)


async def build_world(
    client: httpx.AsyncClient, operator: Account, staff: Account, admin: Account, path: str
) -> World:
    world = World(operator, staff, admin)
    headers = operator.headers
    route, vehicle, departure = await published_bus_departure(client, headers)
    world.ids.update(
        operator_id=str(operator.operator_id),
        route_id=route["id"],
        slug=route["slug"],
        product_id=route["id"],
        vehicle_id=vehicle["id"],
        label="1A",
        departure_id=departure["id"],
    )
    booking = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 2}],
        "contact": {"name": "张三", "email": "zhang@example.cn", "phone": "+86 138 0000 0000"},
    }
    created = ok(await client.post("/api/v1/bookings", json=booking), 201)
    world.ids["reference"] = created["booking"]["reference"]
    world.booking_token = created["access_token"]
    # A prepaying agency for the card payment of OCTO holds, one on account otherwise.
    terms = {
        "name": "Beijing Tours",
        "contact_email": "ops@bjtours.example",
        "credit_limit": 10_000_000,
        "commission_bp": 1000,
        "payment_terms": "prepay" if path.endswith("/payment") else "on_account",
        "webhook_url": "https://agency.example/events",
    }
    agency = ok(await client.post(AGENCIES, json=terms, headers=headers), 201)
    world.ids["agency_id"] = agency["id"]
    keys = f"{AGENCIES}/{agency['id']}/keys"
    key = ok(await client.post(keys, json={"name": "main"}, headers=headers), 201)
    world.partner_key = key["key"]
    if "{key_id}" in path:
        # Another key to rotate and revoke: the main one keeps working for the caller.
        spare = ok(await client.post(keys, json={"name": "spare"}, headers=headers), 201)
        world.ids["key_id"] = spare["api_key"]["id"]
    if "{offer_id}" in path:
        offer = {"name": {"zh_Hans": "樱桃", "en": "Cherries"}, "months": [5, 6]}
        offers = f"/api/v1/operator/routes/{route['id']}/offers"
        world.ids["offer_id"] = ok(await client.post(offers, json=offer, headers=headers), 201)[
            "id"
        ]
    if "{allotment_id}" in path:
        allotment = {"departure_id": departure["id"], "seat_class": "standard", "seats": 4}
        allotments = f"{AGENCIES}/{agency['id']}/allotments"
        world.ids["allotment_id"] = ok(
            await client.post(allotments, json=allotment, headers=headers), 201
        )["id"]
    if "{notification_id}" in path:
        departure_path = f"/api/v1/operator/departures/{departure['id']}"
        advisory = {"kind": "weather", "message": {"zh_Hans": "有雨", "en": "Rain"}}
        ok(await client.post(f"{departure_path}/advisories", json=advisory, headers=headers), 201)
        sent = ok(await client.get(f"{departure_path}/notifications", headers=headers))
        world.ids["notification_id"] = sent[0]["id"]
    if "{uuid}" in path or "{event_id}" in path:
        partner = {"Authorization": f"Bearer {world.partner_key}"}
        world.ids["uuid"] = f"fuzz-{uuid4()}"
        hold = {
            "uuid": world.ids["uuid"],
            "productId": route["id"],
            "optionId": "standard",
            "availabilityId": departure["id"],
            "unitItems": [{"unitId": "adult"}, {"unitId": "child"}],
        }
        ok(await client.post("/octo/bookings", json=hold, headers=partner))
        if "{event_id}" in path:
            # Confirmed on account: the agency's booking.confirmed event, made a failed one
            # so that a retry has something to do.
            contact = {"contact": {"fullName": "Wang Fang", "emailAddress": "w@example.cn"}}
            confirm = f"/octo/bookings/{world.ids['uuid']}/confirm"
            ok(await client.post(confirm, json=contact, headers=partner))
            event = await WebhookDelivery.select(WebhookDelivery.id).first().run()
            assert event is not None
            await (
                WebhookDelivery.update({WebhookDelivery.status: WebhookStatus.failed.value})
                .where(WebhookDelivery.id == event["id"])
                .run()
            )
            world.ids["event_id"] = str(event["id"])
    return world


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    operation: str,
    client: httpx.AsyncClient,
    operator: Account,
    make_operator: Callable[..., Awaitable[Account]],
    platform_admin: Account,
) -> World:
    path = operation.partition(" ")[2]
    if path.endswith(("/payments", "/payment")):
        request.getfixturevalue("stripe_server")
    staff = await make_operator(operator.slug, role="operator_staff")
    return await build_world(client, operator, staff, platform_admin, path)


# ---------------------------------------------------------------- the test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The operation's label for the fixtures, and in the test's id: with pytest 9.2 the
    items schemathesis makes are otherwise all `test_api`, which reports cannot tell apart."""
    operation = ApiOperationMark.get(metafunc.function)
    if operation is not None and "operation" in metafunc.fixturenames:
        metafunc.parametrize("operation", [operation.label], ids=[""])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The world is built once per operation on purpose: its generated requests share it
    # (and a DELETE may leave 404s to the requests after it).
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api(
    case: schemathesis.Case,
    operation: str,
    world: World,
    fuzz_clients: dict[str, SessionLoopClient],
    session_loop: asyncio.AbstractEventLoop,
) -> None:
    # Wrong booking tokens are counted per client address and per booking (20 and 100 in
    # 10 minutes, then 429): Hypothesis' replays of a failing example must not reach that.
    session_loop.run_until_complete(AttemptCounter.delete(force=True).run())
    others = world.other_roles(case)
    world.prepare(case)
    mine = owner(case)
    world.as_role(case, mine).call_and_validate(session=fuzz_clients[mine])
    for role in others:
        sent = world.as_role(case, role)
        response = sent.call(session=fuzz_clients[role])
        if not may_call(role, case):
            assert response.status_code in refusals(sent, role), (
                f"{operation} as {role}: {response.status_code} {response.text[:500]}\n"
                f"Reproduce with:\n    {sent.as_curl_command()}"
            )
        sent.validate_response(response)
