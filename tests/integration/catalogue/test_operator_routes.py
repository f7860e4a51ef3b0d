"""The operator's route API: routes, itineraries, seasonal offers and default fares.

Everything goes through HTTP as an operator's staff would use it, and every change is checked
with a follow-up read.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.factories import create_departure, itinerary_payload, route_payload

ROUTES = "/api/v1/operator/routes"
DEFAULT_POLICY = [
    {"hours_before": 72, "refund_percent": 100},
    {"hours_before": 24, "refund_percent": 50},
    {"hours_before": 0, "refund_percent": 0},
]

MakeOperator = Callable[..., Awaitable[Account]]


# ---------------------------------------------------------------- helpers


async def new_route(
    client: httpx.AsyncClient, account: Account, slug: str = "picking-line", **overrides: Any
) -> dict[str, Any]:
    """A draft route, without itinerary."""
    response = await client.post(
        ROUTES, json=route_payload(slug=slug, **overrides), headers=account.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def published_route(
    client: httpx.AsyncClient, account: Account, slug: str = "picking-line", **overrides: Any
) -> dict[str, Any]:
    route = await new_route(client, account, slug, **overrides)
    response = await client.put(
        f"{ROUTES}/{route['id']}/itinerary",
        json=itinerary_payload(route["duration_days"]),
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    response = await client.post(f"{ROUTES}/{route['id']}/publish", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def get_route(client: httpx.AsyncClient, account: Account, route_id: str) -> dict[str, Any]:
    response = await client.get(f"{ROUTES}/{route_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_problem(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """The response is a problem with this status and code, naming `field` if given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["title"]
    if field is not None:
        fields = [error["field"] for error in body.get("errors") or []]
        assert field in fields, body
    return body


def offer_payload(months: list[int], name: str = "Cherry season") -> dict[str, Any]:
    return {
        "name": {"en": name, "zh_Hans": "樱桃季"},
        "description": {"en": "Cherries ripen in late spring"},
        "months": months,
    }


def fare(
    seat_class: str = "standard", passenger_type: str = "adult", amount: int = 6800, **extra: Any
) -> dict[str, Any]:
    return {
        "seat_class": seat_class,
        "passenger_type": passenger_type,
        "amount": amount,
        **extra,
    }


# ---------------------------------------------------------------- route CRUD


async def test_create_route_is_a_draft_with_the_default_cancellation_policy(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.post(
        ROUTES, json=route_payload(slug="cherry-line"), headers=operator.headers
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "draft"
    assert created["slug"] == "cherry-line"
    assert created["kind"] == "bus"
    assert created["themes"] == ["family", "picking"]
    assert created["name"] == {"zh_Hans": "采摘号", "en": "Picking Line"}
    assert created["meeting_point"] == {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"}
    assert created["duration_days"] == 1
    assert created["cancellation_policy"] == DEFAULT_POLICY
    uuid.UUID(created["id"])

    fetched = await get_route(client, operator, created["id"])
    assert fetched == created


async def test_create_route_keeps_a_given_policy_ordered_by_hours(
    client: httpx.AsyncClient, operator: Account
) -> None:
    policy = [
        {"hours_before": 0, "refund_percent": 10},
        {"hours_before": 168, "refund_percent": 100},
        {"hours_before": 48, "refund_percent": 60},
    ]
    route = await new_route(client, operator, cancellation_policy=policy, duration_days=3)

    expected = [policy[1], policy[2], policy[0]]
    assert route["cancellation_policy"] == expected
    fetched = await get_route(client, operator, route["id"])
    assert fetched["cancellation_policy"] == expected
    assert fetched["duration_days"] == 3


async def test_get_unknown_route_is_404(client: httpx.AsyncClient, operator: Account) -> None:
    response = await client.get(f"{ROUTES}/{uuid.uuid4()}", headers=operator.headers)
    assert_problem(response, 404, "route_not_found")


async def test_list_routes_paginates_and_filters_by_status(
    client: httpx.AsyncClient, operator: Account
) -> None:
    draft_a = await new_route(client, operator, "line-a")
    draft_b = await new_route(client, operator, "line-b")
    live = await published_route(client, operator, "line-c")

    first = await client.get(ROUTES, params={"page_size": 2}, headers=operator.headers)
    assert first.status_code == 200, first.text
    first_body = first.json()
    assert first_body["total"] == 3
    assert first_body["page"] == 1
    assert first_body["page_size"] == 2
    assert len(first_body["items"]) == 2

    second = await client.get(ROUTES, params={"page_size": 2, "page": 2}, headers=operator.headers)
    assert second.status_code == 200, second.text
    second_body = second.json()
    assert second_body["total"] == 3
    assert len(second_body["items"]) == 1

    seen = [item["id"] for item in first_body["items"] + second_body["items"]]
    assert sorted(seen) == sorted([draft_a["id"], draft_b["id"], live["id"]])

    published = await client.get(ROUTES, params={"status": "published"}, headers=operator.headers)
    assert published.status_code == 200, published.text
    assert [item["id"] for item in published.json()["items"]] == [live["id"]]
    assert published.json()["total"] == 1

    drafts = await client.get(ROUTES, params={"status": "draft"}, headers=operator.headers)
    assert drafts.status_code == 200, drafts.text
    assert sorted(item["id"] for item in drafts.json()["items"]) == sorted(
        [draft_a["id"], draft_b["id"]]
    )
    assert all(item["status"] == "draft" for item in drafts.json()["items"])


async def test_list_routes_rejects_an_unknown_status(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.get(ROUTES, params={"status": "deleted"}, headers=operator.headers)
    body = assert_problem(response, 400, "validation_error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [("status", "query")]


async def test_patch_route_changes_name_themes_duration_and_policy(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    policy = [
        {"hours_before": 24, "refund_percent": 80},
        {"hours_before": 96, "refund_percent": 100},
    ]

    response = await client.patch(
        f"{ROUTES}/{route['id']}",
        json={
            "name": {"en": "Mulberry Line"},
            "themes": ["rural", "food", "rural"],
            "duration_days": 2,
            "cancellation_policy": policy,
        },
        headers=operator.headers,
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == {"en": "Mulberry Line"}
    assert updated["themes"] == ["food", "rural"]
    assert updated["duration_days"] == 2
    assert updated["cancellation_policy"] == [policy[1], policy[0]]
    fetched = await get_route(client, operator, route["id"])
    assert fetched == updated
    # What was not sent is kept.
    assert fetched["slug"] == route["slug"]
    assert fetched["description"] == route["description"]
    assert fetched["meeting_point"] == route["meeting_point"]
    assert fetched["status"] == "draft"


async def test_patch_route_can_clear_the_meeting_point_and_themes(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    response = await client.patch(
        f"{ROUTES}/{route['id']}",
        json={"meeting_point": None, "themes": []},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    fetched = await get_route(client, operator, route["id"])
    assert fetched["meeting_point"] is None
    assert fetched["themes"] == []
    assert fetched["name"] == route["name"]


async def test_slug_cannot_change_while_published(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await published_route(client, operator, "cherry-line")

    response = await client.patch(
        f"{ROUTES}/{route['id']}", json={"slug": "renamed-line"}, headers=operator.headers
    )
    assert_problem(response, 409, "route_published")
    assert (await get_route(client, operator, route["id"]))["slug"] == "cherry-line"

    # Sending the current slug again is not a change.
    response = await client.patch(
        f"{ROUTES}/{route['id']}",
        json={"slug": "cherry-line", "name": {"en": "Cherry"}},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text

    response = await client.post(f"{ROUTES}/{route['id']}/unpublish", headers=operator.headers)
    assert response.status_code == 200, response.text
    response = await client.patch(
        f"{ROUTES}/{route['id']}", json={"slug": "renamed-line"}, headers=operator.headers
    )
    assert response.status_code == 200, response.text
    fetched = await get_route(client, operator, route["id"])
    assert fetched["slug"] == "renamed-line"
    assert fetched["name"] == {"en": "Cherry"}


async def test_duplicate_slug_is_a_conflict_naming_slug(
    client: httpx.AsyncClient, operator: Account
) -> None:
    first = await new_route(client, operator, "line-one")
    second = await new_route(client, operator, "line-two")

    response = await client.patch(
        f"{ROUTES}/{second['id']}", json={"slug": "line-one"}, headers=operator.headers
    )
    assert_problem(response, 409, "slug_taken", "slug")
    assert (await get_route(client, operator, second["id"]))["slug"] == "line-two"

    response = await client.post(
        ROUTES, json=route_payload(slug="line-one"), headers=operator.headers
    )
    assert_problem(response, 409, "slug_taken", "slug")

    listing = await client.get(ROUTES, headers=operator.headers)
    assert listing.json()["total"] == 2
    assert (await get_route(client, operator, first["id"]))["slug"] == "line-one"


async def test_slugs_are_unique_across_operators(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    await new_route(client, operator, "shared-slug")
    other = await make_operator("yy-rail")
    response = await client.post(
        ROUTES, json=route_payload(slug="shared-slug"), headers=other.headers
    )
    assert_problem(response, 409, "slug_taken", "slug")


async def test_duration_cannot_shrink_below_the_itinerary(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator, duration_days=3)
    response = await client.put(
        f"{ROUTES}/{route['id']}/itinerary", json=itinerary_payload(3), headers=operator.headers
    )
    assert response.status_code == 200, response.text

    response = await client.patch(
        f"{ROUTES}/{route['id']}", json={"duration_days": 2}, headers=operator.headers
    )
    assert_problem(response, 400, "validation_error", "duration_days")
    assert (await get_route(client, operator, route["id"]))["duration_days"] == 3


async def test_archived_route_cannot_be_changed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    response = await client.post(f"{ROUTES}/{route['id']}/archive", headers=operator.headers)
    assert response.status_code == 200, response.text

    response = await client.patch(
        f"{ROUTES}/{route['id']}", json={"name": {"en": "Changed"}}, headers=operator.headers
    )
    assert_problem(response, 409, "route_archived")
    assert (await get_route(client, operator, route["id"]))["name"] == route["name"]


async def test_delete_draft_route(client: httpx.AsyncClient, operator: Account) -> None:
    keep = await new_route(client, operator, "keep-line")
    route = await new_route(client, operator, "doomed-line")

    response = await client.delete(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert response.status_code == 204, response.text

    response = await client.get(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert_problem(response, 404, "route_not_found")
    listing = (await client.get(ROUTES, headers=operator.headers)).json()
    assert [item["id"] for item in listing["items"]] == [keep["id"]]

    response = await client.delete(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert_problem(response, 404, "route_not_found")


async def test_delete_route_with_itinerary_offers_and_fares(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}"
    assert (
        await client.put(f"{url}/itinerary", json=itinerary_payload(1), headers=operator.headers)
    ).status_code == 200
    assert (
        await client.post(f"{url}/offers", json=offer_payload([5, 6]), headers=operator.headers)
    ).status_code == 201
    assert (
        await client.put(f"{url}/fares", json={"fares": [fare()]}, headers=operator.headers)
    ).status_code == 200

    response = await client.delete(url, headers=operator.headers)
    assert response.status_code == 204, response.text
    assert_problem(await client.get(url, headers=operator.headers), 404, "route_not_found")
    # The slug is free again.
    await new_route(client, operator, route["slug"])


async def test_published_route_cannot_be_deleted(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await published_route(client, operator)

    response = await client.delete(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert_problem(response, 409, "route_not_draft")
    assert (await get_route(client, operator, route["id"]))["status"] == "published"


async def test_route_with_departures_cannot_be_deleted(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    await create_departure(client, operator.headers, route, None, publish=False)

    response = await client.delete(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert_problem(response, 409, "route_has_departures")
    assert (await get_route(client, operator, route["id"]))["status"] == "draft"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"status": "published"}, "status", id="unknown-status"),
        pytest.param({"operator_id": str(uuid.uuid4())}, "operator_id", id="unknown-operator"),
        pytest.param({"duration_days": "x"}, "duration_days", id="duration-not-int"),
        pytest.param({"duration_days": 0}, "duration_days", id="duration-zero"),
        pytest.param({"duration_days": 61}, "duration_days", id="duration-too-long"),
        pytest.param({"slug": "Bad Slug"}, "slug", id="slug-pattern"),
        pytest.param({"slug": "double--hyphen"}, "slug", id="slug-double-hyphen"),
        pytest.param({"slug": "x"}, "slug", id="slug-too-short"),
        pytest.param({"name": {}}, "name", id="name-empty"),
        pytest.param({"kind": "boat"}, "kind", id="kind-unknown"),
        pytest.param({"themes": ["skiing"]}, "themes[0]", id="theme-unknown"),
        pytest.param(
            {"cancellation_policy": [{"hours_before": 24, "refund_percent": 101}]},
            "cancellation_policy[0].refund_percent",
            id="policy-percent-over-100",
        ),
        pytest.param(
            {"cancellation_policy": [{"hours_before": -1, "refund_percent": 0}]},
            "cancellation_policy[0].hours_before",
            id="policy-negative-hours",
        ),
        pytest.param(
            {"cancellation_policy": [{"hours_before": 24, "refund_percent": 50, "fee": 1}]},
            "cancellation_policy[0].fee",
            id="policy-unknown-field",
        ),
    ],
)
async def test_invalid_route_body_names_the_field(
    client: httpx.AsyncClient, operator: Account, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post(ROUTES, json=route_payload(**overrides), headers=operator.headers)

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert body["errors"][0]["source"] == "body"
    assert body["errors"][0]["message"]
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0


async def test_missing_required_field_is_named(
    client: httpx.AsyncClient, operator: Account
) -> None:
    payload = route_payload()
    del payload["description"]
    response = await client.post(ROUTES, json=payload, headers=operator.headers)
    assert_problem(response, 400, "validation_error", "description")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param({"fr": "Ligne"}, id="unsupported-locale"),
        pytest.param({"zh_Hans": "采摘号", "de": "Linie"}, id="extra-unsupported-locale"),
        pytest.param({"en": ""}, id="empty-translation"),
        pytest.param({"en": "x" * 201}, id="translation-too-long"),
    ],
)
async def test_bad_translated_text_is_rejected(
    client: httpx.AsyncClient, operator: Account, name: dict[str, str]
) -> None:
    response = await client.post(ROUTES, json=route_payload(name=name), headers=operator.headers)
    body = assert_problem(response, 400, "validation_error")
    assert len(body["errors"]) == 1
    assert body["errors"][0]["field"].startswith("name"), body
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            [
                {"hours_before": 24, "refund_percent": 50},
                {"hours_before": 24, "refund_percent": 40},
            ],
            id="duplicate-hours",
        ),
        pytest.param(
            [
                {"hours_before": 72, "refund_percent": 50},
                {"hours_before": 24, "refund_percent": 80},
            ],
            id="refund-grows-towards-departure",
        ),
    ],
)
async def test_inconsistent_cancellation_policy_is_rejected(
    client: httpx.AsyncClient, operator: Account, policy: list[dict[str, int]]
) -> None:
    response = await client.post(
        ROUTES, json=route_payload(cancellation_policy=policy), headers=operator.headers
    )
    assert_problem(response, 400, "validation_error", "cancellation_policy")
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0

    route = await new_route(client, operator)
    response = await client.patch(
        f"{ROUTES}/{route['id']}", json={"cancellation_policy": policy}, headers=operator.headers
    )
    assert_problem(response, 400, "validation_error", "cancellation_policy")
    fetched = await get_route(client, operator, route["id"])
    assert fetched["cancellation_policy"] == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param({"status": "published"}, "status", id="status"),
        pytest.param({"operator_id": str(uuid.uuid4())}, "operator_id", id="operator-id"),
        pytest.param({"duration_days": "x"}, "duration_days", id="duration-type"),
        pytest.param({"slug": "Not_A_Slug"}, "slug", id="slug-pattern"),
        pytest.param({"name": {}}, "name", id="name-empty"),
        pytest.param({"name": None}, "name", id="name-null"),
    ],
)
async def test_invalid_patch_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, operator: Account, patch: dict[str, Any], field: str
) -> None:
    route = await new_route(client, operator)
    response = await client.patch(f"{ROUTES}/{route['id']}", json=patch, headers=operator.headers)

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    fetched = await get_route(client, operator, route["id"])
    assert fetched == route


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"slug": "broken-line", "kind": ', id="truncated"),
        pytest.param(b'{"slug": "broken-line", "kind": }', id="invalid-character"),
        pytest.param(b"{'slug': 'broken-line'}", id="single-quotes"),
    ],
)
async def test_malformed_json_is_a_problem(
    client: httpx.AsyncClient, operator: Account, content: bytes
) -> None:
    response = await client.post(
        ROUTES,
        content=content,
        headers={**operator.headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed_json")
    assert "errors" not in body
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'["slug"]', id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b'"picking-line"', id="string"),
    ],
)
async def test_body_that_is_not_an_object_names_the_body(
    client: httpx.AsyncClient, operator: Account, content: bytes
) -> None:
    response = await client.post(
        ROUTES, content=content, headers={**operator.headers, "Content-Type": "application/json"}
    )
    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body"], body


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_missing_body_says_a_body_is_needed(
    client: httpx.AsyncClient, operator: Account, method: str
) -> None:
    route = await new_route(client, operator)
    target = ROUTES if method == "POST" else f"{ROUTES}/{route['id']}"
    response = await client.request(
        method,
        target,
        content=b"",
        headers={**operator.headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body"], body
    # Not Litestar's internal KeyError text.
    assert body["errors"][0]["message"] != "'data'", body
    assert "'data'" not in body["detail"], body
    assert await get_route(client, operator, route["id"]) == route


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param({"page_size": 0}, "validation_error", id="page-size-zero"),
        pytest.param({"page_size": 1000}, "page_size_too_large", id="page-size-too-large"),
        pytest.param({"page": 0}, "validation_error", id="page-zero"),
        pytest.param({"page": "x"}, "validation_error", id="page-not-a-number"),
    ],
)
async def test_bad_pagination_is_a_query_error(
    client: httpx.AsyncClient, operator: Account, params: dict[str, Any], code: str
) -> None:
    response = await client.get(ROUTES, params=params, headers=operator.headers)
    body = assert_problem(response, 400, code)
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(next(iter(params)), "query")]


# ---------------------------------------------------------------- itinerary


def two_day_itinerary() -> dict[str, Any]:
    return {
        "days": [
            {
                "day_number": 2,
                "title": {"en": "Lavender fields"},
                "description": {"en": "A slow day"},
                "night_on_train": False,
                "stops": [
                    {
                        "place": {"en": "Lavender farm"},
                        "arrive_time": "08:00",
                        "depart_time": "08:00",
                        "activities": [{"en": "Walk"}, {"en": "Photos"}],
                        "coach_transfer": True,
                        "notes": {"en": "Bring a hat"},
                    },
                    {"place": {"en": "Station"}, "arrive_time": "17:45"},
                ],
            },
            {
                "day_number": 1,
                "title": {"zh_Hans": "出发", "en": "Departure"},
                "night_on_train": True,
            },
        ]
    }


async def test_itinerary_is_replaced_and_read_back(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator, duration_days=2, kind="train")
    url = f"{ROUTES}/{route['id']}/itinerary"

    empty = await client.get(url, headers=operator.headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"days": []}

    response = await client.put(url, json=two_day_itinerary(), headers=operator.headers)
    assert response.status_code == 200, response.text
    expected = {
        "days": [
            {
                "day_number": 1,
                "title": {"zh_Hans": "出发", "en": "Departure"},
                "description": None,
                "overnight": "train",
                "night_on_train": True,
                "meals": [],
                "back_on_board_at": None,
                "stops": [],
            },
            {
                "day_number": 2,
                "title": {"en": "Lavender fields"},
                "description": {"en": "A slow day"},
                "overnight": None,
                "night_on_train": False,
                "meals": [],
                "back_on_board_at": None,
                "stops": [
                    {
                        "place": {"en": "Lavender farm"},
                        "arrive_time": "08:00",
                        "depart_time": "08:00",
                        "activities": [{"en": "Walk"}, {"en": "Photos"}],
                        "coach_transfer": True,
                        "notes": {"en": "Bring a hat"},
                    },
                    {
                        "place": {"en": "Station"},
                        "arrive_time": "17:45",
                        "depart_time": None,
                        "activities": [],
                        "coach_transfer": False,
                        "notes": None,
                    },
                ],
            },
        ]
    }
    assert response.json() == expected
    fetched = await client.get(url, headers=operator.headers)
    assert fetched.json() == expected

    # A second PUT replaces the whole itinerary.
    response = await client.put(url, json=itinerary_payload(1), headers=operator.headers)
    assert response.status_code == 200, response.text
    fetched = (await client.get(url, headers=operator.headers)).json()
    assert [day["day_number"] for day in fetched["days"]] == [1]
    assert fetched["days"][0]["title"] == {"zh_Hans": "第1天", "en": "Day 1"}
    assert [stop["place"]["en"] for stop in fetched["days"][0]["stops"]] == ["Cherry orchard"]


def _with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = copy.deepcopy(itinerary_payload(2))
    change(payload)
    return payload


def _duplicate_day(payload: dict[str, Any]) -> None:
    payload["days"][1]["day_number"] = 1


def _day_beyond_duration(payload: dict[str, Any]) -> None:
    payload["days"][1]["day_number"] = 3


def _depart_before_arrive(payload: dict[str, Any]) -> None:
    payload["days"][1]["stops"][0]["arrive_time"] = "10:00"
    payload["days"][1]["stops"][0]["depart_time"] = "09:59"


def _bad_clock_time(payload: dict[str, Any]) -> None:
    payload["days"][0]["stops"][0]["arrive_time"] = "24:00"


def _day_zero(payload: dict[str, Any]) -> None:
    payload["days"][0]["day_number"] = 0


def _no_days(payload: dict[str, Any]) -> None:
    payload["days"] = []


def _unknown_stop_field(payload: dict[str, Any]) -> None:
    payload["days"][0]["stops"][0]["price"] = 100


def _missing_title(payload: dict[str, Any]) -> None:
    del payload["days"][1]["title"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(_duplicate_day, "days[1].day_number", id="duplicate-day"),
        pytest.param(_day_beyond_duration, "days[1].day_number", id="beyond-duration"),
        pytest.param(
            _depart_before_arrive, "days[1].stops[0].depart_time", id="depart-before-arrive"
        ),
        pytest.param(_bad_clock_time, "days[0].stops[0].arrive_time", id="bad-clock-time"),
        pytest.param(_day_zero, "days[0].day_number", id="day-zero"),
        pytest.param(_no_days, "days", id="no-days"),
        pytest.param(_unknown_stop_field, "days[0].stops[0].price", id="unknown-stop-field"),
        pytest.param(_missing_title, "days[1].title", id="missing-title"),
    ],
)
async def test_invalid_itinerary_names_the_field_and_keeps_the_old_one(
    client: httpx.AsyncClient,
    operator: Account,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    route = await new_route(client, operator, duration_days=2)
    url = f"{ROUTES}/{route['id']}/itinerary"
    before = await client.put(url, json=itinerary_payload(2), headers=operator.headers)
    assert before.status_code == 200, before.text

    response = await client.put(url, json=_with(change), headers=operator.headers)

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert (await client.get(url, headers=operator.headers)).json() == before.json()


async def test_itinerary_of_a_published_route_cannot_be_deleted(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await published_route(client, operator)
    url = f"{ROUTES}/{route['id']}/itinerary"

    response = await client.delete(url, headers=operator.headers)
    assert_problem(response, 409, "route_published")
    assert len((await client.get(url, headers=operator.headers)).json()["days"]) == 1


async def test_itinerary_of_a_draft_route_can_be_deleted(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}/itinerary"
    assert (
        await client.put(url, json=itinerary_payload(1), headers=operator.headers)
    ).status_code == 200

    response = await client.delete(url, headers=operator.headers)
    assert response.status_code == 204, response.text
    assert (await client.get(url, headers=operator.headers)).json() == {"days": []}
    # Without an itinerary the route can no longer be published.
    response = await client.post(f"{ROUTES}/{route['id']}/publish", headers=operator.headers)
    assert_problem(response, 409, "route_not_publishable", "itinerary")


# ---------------------------------------------------------------- seasonal offers


async def test_seasonal_offer_crud(client: httpx.AsyncClient, operator: Account) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}/offers"

    empty = await client.get(url, headers=operator.headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == []

    response = await client.post(url, json=offer_payload([6, 5]), headers=operator.headers)
    assert response.status_code == 201, response.text
    offer = response.json()
    assert offer["months"] == [5, 6]
    assert offer["name"] == {"en": "Cherry season", "zh_Hans": "樱桃季"}
    assert offer["description"] == {"en": "Cherries ripen in late spring"}
    winter = await client.post(
        url,
        json={"name": {"en": "Snow season"}, "months": [12, 1, 2]},
        headers=operator.headers,
    )
    assert winter.status_code == 201, winter.text
    assert winter.json()["description"] is None

    listing = (await client.get(url, headers=operator.headers)).json()
    assert {item["id"]: item["months"] for item in listing} == {
        offer["id"]: [5, 6],
        winter.json()["id"]: [1, 2, 12],
    }

    response = await client.patch(
        f"{url}/{offer['id']}",
        json={"months": [7, 4], "description": None},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["months"] == [4, 7]
    listing = (await client.get(url, headers=operator.headers)).json()
    patched = next(item for item in listing if item["id"] == offer["id"])
    assert patched == {
        "id": offer["id"],
        "name": offer["name"],
        "description": None,
        "months": [4, 7],
    }

    response = await client.delete(f"{url}/{offer['id']}", headers=operator.headers)
    assert response.status_code == 204, response.text
    listing = (await client.get(url, headers=operator.headers)).json()
    assert [item["id"] for item in listing] == [winter.json()["id"]]

    response = await client.delete(f"{url}/{offer['id']}", headers=operator.headers)
    assert_problem(response, 404, "offer_not_found")


@pytest.mark.parametrize(
    ("months", "field"),
    [
        pytest.param([13], "months[0]", id="month-13"),
        pytest.param([5, 0], "months[1]", id="month-0"),
        pytest.param([5, 5], "months", id="duplicate"),
        pytest.param([], "months", id="empty"),
        pytest.param(["may"], "months[0]", id="not-a-number"),
    ],
)
async def test_offer_months_are_validated(
    client: httpx.AsyncClient, operator: Account, months: list[Any], field: str
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}/offers"

    response = await client.post(url, json=offer_payload(months), headers=operator.headers)
    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert (await client.get(url, headers=operator.headers)).json() == []

    offer = (await client.post(url, json=offer_payload([5]), headers=operator.headers)).json()
    response = await client.patch(
        f"{url}/{offer['id']}", json={"months": months}, headers=operator.headers
    )
    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert (await client.get(url, headers=operator.headers)).json()[0]["months"] == [5]


async def test_offer_of_another_route_is_404(client: httpx.AsyncClient, operator: Account) -> None:
    route_a = await new_route(client, operator, "line-a")
    route_b = await new_route(client, operator, "line-b")
    response = await client.post(
        f"{ROUTES}/{route_a['id']}/offers", json=offer_payload([5]), headers=operator.headers
    )
    offer = response.json()
    wrong = f"{ROUTES}/{route_b['id']}/offers/{offer['id']}"

    response = await client.patch(wrong, json={"months": [9]}, headers=operator.headers)
    assert_problem(response, 404, "offer_not_found")
    response = await client.delete(wrong, headers=operator.headers)
    assert_problem(response, 404, "offer_not_found")
    response = await client.patch(
        f"{ROUTES}/{route_a['id']}/offers/{uuid.uuid4()}",
        json={"months": [9]},
        headers=operator.headers,
    )
    assert_problem(response, 404, "offer_not_found")

    listing = (
        await client.get(f"{ROUTES}/{route_a['id']}/offers", headers=operator.headers)
    ).json()
    assert listing == [offer]
    assert (
        await client.get(f"{ROUTES}/{route_b['id']}/offers", headers=operator.headers)
    ).json() == []


# ---------------------------------------------------------------- fares


async def test_route_fares_are_replaced_in_the_operators_currency(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}/fares"
    assert (await client.get(url, headers=operator.headers)).json() == []

    response = await client.put(
        url,
        json={
            "fares": [
                fare("standard", "adult", 6800),
                fare("standard", "child", 3800, currency="CNY"),
                fare("front", "adult", 8800),
            ]
        },
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text

    fetched = await client.get(url, headers=operator.headers)
    assert fetched.status_code == 200, fetched.text
    fares = {(f["seat_class"], f["passenger_type"]): f for f in fetched.json()}
    assert set(fares) == {("standard", "adult"), ("standard", "child"), ("front", "adult")}
    assert fares["standard", "adult"]["price"]["amount"] == 6800
    assert fares["standard", "child"]["price"]["amount"] == 3800
    assert fares["front", "adult"]["price"]["amount"] == 8800
    assert {f["price"]["currency"] for f in fetched.json()} == {"CNY"}
    assert {f["source"] for f in fetched.json()} == {"route"}
    assert all(f["price"]["formatted"] for f in fetched.json())
    assert response.json() == fetched.json()

    # Replacing means what is not sent again is gone.
    response = await client.put(
        url, json={"fares": [fare("standard", "adult", 7000)]}, headers=operator.headers
    )
    assert response.status_code == 200, response.text
    fetched = (await client.get(url, headers=operator.headers)).json()
    assert [(f["seat_class"], f["passenger_type"], f["price"]["amount"]) for f in fetched] == [
        ("standard", "adult", 7000)
    ]

    response = await client.put(url, json={"fares": []}, headers=operator.headers)
    assert response.status_code == 200, response.text
    assert (await client.get(url, headers=operator.headers)).json() == []


async def test_fares_default_to_a_non_cny_operator_currency(
    client: httpx.AsyncClient, make_operator: MakeOperator
) -> None:
    hk = await make_operator("hk-coach", currency="HKD", time_zone="Asia/Hong_Kong")
    route = await new_route(client, hk, "harbour-line")
    url = f"{ROUTES}/{route['id']}/fares"

    response = await client.put(url, json={"fares": [fare()]}, headers=hk.headers)
    assert response.status_code == 200, response.text
    fetched = (await client.get(url, headers=hk.headers)).json()
    assert [f["price"]["currency"] for f in fetched] == ["HKD"]

    response = await client.put(url, json={"fares": [fare(currency="CNY")]}, headers=hk.headers)
    assert_problem(response, 400, "validation_error", "fares[0].currency")


@pytest.mark.parametrize(
    ("fares", "field"),
    [
        pytest.param([fare(currency="USD")], "fares[0].currency", id="other-currency"),
        pytest.param([fare(currency="cny")], "fares[0].currency", id="lowercase-currency"),
        pytest.param(
            [fare("standard", "adult", 100), fare("standard", "adult", 200)],
            "fares[1]",
            id="duplicate-class-and-type",
        ),
        pytest.param([fare(amount=-1)], "fares[0].amount", id="negative-amount"),
        pytest.param([fare(amount=12.5)], "fares[0].amount", id="fractional-amount"),
        pytest.param([fare(passenger_type="pet")], "fares[0].passenger_type", id="bad-type"),
        pytest.param([fare(seat_class="Soft Sleeper")], "fares[0].seat_class", id="bad-class"),
        pytest.param([fare(), fare("front", discount=5)], "fares[1].discount", id="unknown"),
    ],
)
async def test_invalid_fares_name_the_field_and_keep_the_old_fares(
    client: httpx.AsyncClient, operator: Account, fares: list[dict[str, Any]], field: str
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}/fares"
    before = await client.put(
        url, json={"fares": [fare("standard", "adult", 5000)]}, headers=operator.headers
    )
    assert before.status_code == 200, before.text

    response = await client.put(url, json={"fares": fares}, headers=operator.headers)

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert (await client.get(url, headers=operator.headers)).json() == before.json()


# ---------------------------------------------------------------- publishing


async def test_route_without_itinerary_cannot_be_published(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await new_route(client, operator)

    response = await client.post(f"{ROUTES}/{route['id']}/publish", headers=operator.headers)

    body = assert_problem(response, 409, "route_not_publishable", "itinerary")
    assert [error["field"] for error in body["errors"]] == ["itinerary"]
    assert (await get_route(client, operator, route["id"]))["status"] == "draft"
    public = await client.get(f"/api/v1/routes/{route['slug']}")
    assert public.status_code == 404, public.text


async def test_publish_unpublish_and_archive(client: httpx.AsyncClient, operator: Account) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}"
    assert (
        await client.put(f"{url}/itinerary", json=itinerary_payload(1), headers=operator.headers)
    ).status_code == 200

    response = await client.post(f"{url}/publish", headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "published"
    assert (await get_route(client, operator, route["id"]))["status"] == "published"
    public = await client.get(f"/api/v1/routes/{route['slug']}")
    assert public.status_code == 200, public.text
    assert public.json()["slug"] == route["slug"]

    # Publishing twice is not a transition.
    response = await client.post(f"{url}/publish", headers=operator.headers)
    assert_problem(response, 409, "illegal_transition")

    response = await client.post(f"{url}/unpublish", headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "draft"
    assert (await get_route(client, operator, route["id"]))["status"] == "draft"
    assert (await client.get(f"/api/v1/routes/{route['slug']}")).status_code == 404

    response = await client.post(f"{url}/archive", headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert (await get_route(client, operator, route["id"]))["status"] == "archived"
    archived = await client.get(ROUTES, params={"status": "archived"}, headers=operator.headers)
    assert [item["id"] for item in archived.json()["items"]] == [route["id"]]


async def test_archived_route_cannot_be_published(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await published_route(client, operator)
    url = f"{ROUTES}/{route['id']}"
    response = await client.post(f"{url}/archive", headers=operator.headers)
    assert response.status_code == 200, response.text

    response = await client.post(f"{url}/publish", headers=operator.headers)
    assert_problem(response, 409, "illegal_transition")
    assert (await get_route(client, operator, route["id"]))["status"] == "archived"

    response = await client.post(f"{url}/archive", headers=operator.headers)
    assert_problem(response, 409, "illegal_transition")

    # The way back is through draft.
    response = await client.post(f"{url}/unpublish", headers=operator.headers)
    assert response.status_code == 200, response.text
    response = await client.post(f"{url}/publish", headers=operator.headers)
    assert response.status_code == 200, response.text
    assert (await get_route(client, operator, route["id"]))["status"] == "published"


# ---------------------------------------------------------------- operator isolation


def _foreign_requests(route_id: str, offer_id: str) -> list[tuple[str, str, Any]]:
    url = f"{ROUTES}/{route_id}"
    return [
        ("GET", url, None),
        ("PATCH", url, {"name": {"en": "Hijacked"}}),
        ("DELETE", url, None),
        ("POST", f"{url}/publish", None),
        ("POST", f"{url}/unpublish", None),
        ("POST", f"{url}/archive", None),
        ("GET", f"{url}/itinerary", None),
        ("PUT", f"{url}/itinerary", itinerary_payload(1)),
        ("DELETE", f"{url}/itinerary", None),
        ("GET", f"{url}/offers", None),
        ("POST", f"{url}/offers", offer_payload([1])),
        ("PATCH", f"{url}/offers/{offer_id}", {"months": [2]}),
        ("DELETE", f"{url}/offers/{offer_id}", None),
        ("GET", f"{url}/fares", None),
        ("PUT", f"{url}/fares", {"fares": [fare(amount=1)]}),
    ]


async def test_another_operators_route_is_404_everywhere(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route = await new_route(client, operator)
    url = f"{ROUTES}/{route['id']}"
    itinerary = await client.put(
        f"{url}/itinerary", json=itinerary_payload(1), headers=operator.headers
    )
    assert itinerary.status_code == 200, itinerary.text
    offer = (
        await client.post(f"{url}/offers", json=offer_payload([5]), headers=operator.headers)
    ).json()
    fares = await client.put(
        f"{url}/fares", json={"fares": [fare(amount=6800)]}, headers=operator.headers
    )
    assert fares.status_code == 200, fares.text
    route = await get_route(client, operator, route["id"])
    intruder = await make_operator("yy-rail")

    for method, target, body in _foreign_requests(route["id"], offer["id"]):
        response = await client.request(method, target, json=body, headers=intruder.headers)
        assert response.status_code == 404, f"{method} {target}: {response.text}"
        assert response.json()["code"] == "route_not_found", f"{method} {target}"

    # Nothing changed for the owner.
    assert await get_route(client, operator, route["id"]) == route
    assert (await client.get(f"{url}/itinerary", headers=operator.headers)).json() == (
        itinerary.json()
    )
    assert (await client.get(f"{url}/offers", headers=operator.headers)).json() == [offer]
    assert (await client.get(f"{url}/fares", headers=operator.headers)).json() == fares.json()


async def test_list_shows_only_the_callers_routes(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    mine = await new_route(client, operator, "zz-line")
    other = await make_operator("yy-rail")
    theirs = await new_route(client, other, "yy-line")

    listing = (await client.get(ROUTES, headers=other.headers)).json()
    assert [item["id"] for item in listing["items"]] == [theirs["id"]]
    assert listing["total"] == 1
    listing = (await client.get(ROUTES, headers=operator.headers)).json()
    assert [item["id"] for item in listing["items"]] == [mine["id"]]
    assert listing["total"] == 1


async def test_route_cannot_be_created_for_another_operator(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    other = await make_operator("yy-rail")

    for key in ("operator_id", "operator"):
        response = await client.post(
            ROUTES,
            json=route_payload(slug="sneaky-line", **{key: operator.operator_id}),
            headers=other.headers,
        )
        body = assert_problem(response, 400, "validation_error")
        assert [error["field"] for error in body["errors"]] == [key], body
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0
    assert (await client.get(ROUTES, headers=other.headers)).json()["total"] == 0

    route = await new_route(client, other, "sneaky-line")
    listing = (await client.get(ROUTES, headers=other.headers)).json()
    assert [item["id"] for item in listing["items"]] == [route["id"]]
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0
    response = await client.get(f"{ROUTES}/{route['id']}", headers=operator.headers)
    assert_problem(response, 404, "route_not_found")
    public = await client.get("/api/v1/routes/sneaky-line")
    assert public.status_code == 404  # still a draft


# ---------------------------------------------------------------- roles and authentication


async def test_operator_staff_can_read_but_not_write(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route = await published_route(client, operator)
    staff = await make_operator("zz-bus", role="operator_staff")
    url = f"{ROUTES}/{route['id']}"

    for target in (ROUTES, url, f"{url}/itinerary", f"{url}/offers", f"{url}/fares"):
        response = await client.get(target, headers=staff.headers)
        assert response.status_code == 200, f"{target}: {response.text}"
    assert (await client.get(url, headers=staff.headers)).json() == route

    response = await client.post(
        ROUTES, json=route_payload(slug="staff-line"), headers=staff.headers
    )
    assert_problem(response, 403, "operator_admin_required")
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 1

    writes: list[tuple[str, str, Any]] = [
        ("PATCH", url, {"name": {"en": "Staff edit"}}),
        ("DELETE", url, None),
        ("POST", f"{url}/unpublish", None),
        ("POST", f"{url}/archive", None),
        ("PUT", f"{url}/itinerary", itinerary_payload(1)),
        ("POST", f"{url}/offers", offer_payload([3])),
        ("PUT", f"{url}/fares", {"fares": [fare()]}),
    ]
    for method, target, body in writes:
        response = await client.request(method, target, json=body, headers=staff.headers)
        assert response.status_code == 403, f"{method} {target}: {response.text}"
        assert response.json()["code"] == "operator_admin_required", f"{method} {target}"
    assert await get_route(client, operator, route["id"]) == route
    assert (await client.get(f"{url}/offers", headers=operator.headers)).json() == []
    assert (await client.get(f"{url}/fares", headers=operator.headers)).json() == []


async def test_platform_admin_is_not_operator_staff(
    client: httpx.AsyncClient, platform_admin: Account
) -> None:
    response = await client.get(ROUTES, headers=platform_admin.headers)
    assert_problem(response, 403, "not_operator_staff")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "missing_token", id="no-header"),
        pytest.param({"Authorization": "Bearer "}, "missing_token", id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_token", id="basic"),
        pytest.param({"Authorization": "Bearer not-a-token"}, "invalid_token", id="garbage"),
        pytest.param(
            {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
            "invalid_token",
            id="forged-jwt",
        ),
    ],
)
async def test_unauthenticated_requests_are_401(
    client: httpx.AsyncClient, operator: Account, headers: dict[str, str], code: str
) -> None:
    response = await client.get(ROUTES, headers=headers)
    assert_problem(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"

    response = await client.post(ROUTES, json=route_payload(), headers=headers)
    assert_problem(response, 401, code)
    assert (await client.get(ROUTES, headers=operator.headers)).json()["total"] == 0
