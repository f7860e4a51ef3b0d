"""Stripe's webhook refuses, with 400, what Stripe would never send: a signed body that is
not an event, and a signature dated more than 300 seconds from now either way."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from app.payments.tables import StripeEvent
from tests.assertions import ok, problem
from tests.integration.payments.test_stripe import WEBHOOK, bad_signature, deliver, signature


async def post_signed(client: httpx.AsyncClient, payload: bytes) -> httpx.Response:
    """`payload` as Stripe would send it, correctly signed."""
    text = payload.decode(errors="surrogateescape")
    return await client.post(
        WEBHOOK,
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature(text)},
    )


MALFORMED: list[Any] = [
    b"not json",
    b"",
    b"[]",
    b'"evt_1"',
    b"null",
    {"id": "evt_1", "type": "customer.created"},
    {"id": "evt_1", "type": "customer.created", "data": {}},
    {"id": "evt_1", "type": "customer.created", "data": None},
    {"id": "evt_1", "type": "customer.created", "data": {"object": "cus_1"}},
    {"id": "evt_1", "type": "customer.created", "data": {"object": []}},
    {"type": "customer.created", "data": {"object": {}}},
    {"id": 5, "type": "customer.created", "data": {"object": {}}},
    {"id": "", "type": "customer.created", "data": {"object": {}}},
    {"id": "evt_1", "data": {"object": {}}},
    {"id": "evt_1", "type": ["payment_intent.succeeded"], "data": {"object": {}}},
    {"id": "evt_1", "type": None, "data": {"object": {}}},
    b'{"id": "evt_1", "type": "x", "data": {"object": {"amount": NaN}}}',
    b'{"id": "evt_1", "type": "x", "data": {"object": {}}',
    ("[" * 1000 + "]" * 1000).encode(),
]


@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
async def test_a_signed_body_that_is_no_event_is_400(
    client: httpx.AsyncClient, payload: Any
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    answer = problem(await post_signed(client, body), 400)
    # What is no JSON object at all is refused before any handler runs (as on every
    # route); a JSON object that is no Stripe event, by the webhook itself.
    assert answer["code"] in {"malformed_event", "malformed_json", "validation_error"}, answer
    if not isinstance(payload, bytes):
        assert answer["code"] == "malformed_event", answer
    if answer["code"] != "malformed_json":  # unreadable JSON has no field to name
        assert [(e["field"], e["source"]) for e in answer["errors"]] == [("body", "body")]
    assert answer["title"]
    assert await StripeEvent.count().run() == 0


async def test_a_body_that_is_not_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        WEBHOOK,
        content=b'{"id": "evt_\xff"}',
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
    )
    # Refused as no JSON document before the webhook runs, as on every route.
    assert problem(response, 400)["code"] in {"malformed_event", "malformed_json"}


ODD_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("payment_intent.succeeded", {"id": 42}),
    ("payment_intent.payment_failed", {"id": {"nested": True}}),
    ("charge.refunded", {"id": "ch_1", "refunds": []}),
    ("charge.refunded", {"id": "ch_1", "refunds": {"data": "re_1"}}),
    ("charge.refunded", {"id": "ch_1", "refunds": {"data": [1, None, {"id": 7}]}}),
    ("charge.refunded", {"id": "ch_1", "payment_intent": 9, "refunds": "x"}),
    ("refund.updated", {"id": None}),
]


@pytest.mark.parametrize(("kind", "data_object"), ODD_OBJECTS, ids=range(len(ODD_OBJECTS)))
async def test_an_event_whose_object_has_odd_fields_is_stored_and_ignored(
    client: httpx.AsyncClient, kind: str, data_object: dict[str, Any]
) -> None:
    event = {"id": f"evt_odd_{kind}", "type": kind, "data": {"object": data_object}}
    assert ok(await deliver(client, event)) == {"received": True, "outcome": "ignored"}
    assert await StripeEvent.count().run() == 1


def customer_event(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "customer.created", "data": {"object": {"id": "cus_1"}}}


@pytest.mark.parametrize("offset", [301, 3600, 10**9])
async def test_a_signature_dated_in_the_future_is_400(
    client: httpx.AsyncClient, offset: int
) -> None:
    sent = await deliver(client, customer_event("evt_future"), timestamp=int(time.time()) + offset)
    bad_signature(sent)
    assert await StripeEvent.count().run() == 0


@pytest.mark.parametrize("offset", [-301, -3600])
async def test_a_signature_older_than_the_tolerance_is_400(
    client: httpx.AsyncClient, offset: int
) -> None:
    bad_signature(
        await deliver(client, customer_event("evt_old"), timestamp=int(time.time()) + offset)
    )


@pytest.mark.parametrize("offset", [-280, 0, 280])
async def test_a_signature_within_the_tolerance_either_way_is_accepted(
    client: httpx.AsyncClient, offset: int
) -> None:
    sent = await deliver(
        client, customer_event(f"evt_{offset}"), timestamp=int(time.time()) + offset
    )
    assert ok(sent)["outcome"] == "ignored"
