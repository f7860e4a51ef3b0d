"""The public catalogue: what tourists can find, read and open, in their language."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core import clock
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)

PROBLEM = "application/problem+json"
SHANGHAI = clock.zone("Asia/Shanghai")

MakeOperator = Callable[..., Awaitable[Account]]


def local_date(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def slugs(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["slug"] for item in response.json()["items"]]


async def add_offer(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    route_id: str,
    name: dict[str, str],
    months: list[int],
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/operator/routes/{route_id}/offers",
        json={"name": name, "months": months},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def unpublish_route(
    client: httpx.AsyncClient, headers: dict[str, str], route_id: str
) -> None:
    response = await client.post(f"/api/v1/operator/routes/{route_id}/unpublish", headers=headers)
    assert response.status_code == 200, response.text


async def build_catalogue(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> dict[str, Any]:
    """Published lines of two operators, departing at different times, and some drafts.

    - flower-train (zz-bus, train, flower_field): departs in 5 days at 00:00 Shanghai time
    - picking-line (zz-bus, bus, picking + family): departs in 20 days
    - rural-bus (zz-bus, bus, rural): only a draft departure
    - tea-hills (aa-rail, bus, nature + food): no departure at all
    - secret-line (zz-bus): a draft route, with a published-looking name
    """
    headers = operator.headers
    bus = await create_vehicle(client, headers, "bus")
    train = await create_vehicle(client, headers, "train")

    flower = await create_route(
        client,
        headers,
        slug="flower-train",
        kind="train",
        themes=["flower_field"],
        name={"zh_Hans": "花海专列", "en": "Flower Sea Train"},
        description={"zh_Hans": "乘火车看油菜花海", "en": "Ride through rapeseed flower fields"},
    )
    await set_route_fares(client, headers, flower["id"], ["soft_sleeper", "hard_sleeper"])
    flower_departs = in_days(5, hour=0)
    flower_departure = await create_departure(client, headers, flower, train, flower_departs)

    picking = await create_route(client, headers, slug="picking-line")
    await set_route_fares(client, headers, picking["id"], ["standard"])
    picking_departs = in_days(20)
    picking_departure = await create_departure(client, headers, picking, bus, picking_departs)

    rural = await create_route(
        client,
        headers,
        slug="rural-bus",
        themes=["rural"],
        name={"zh_Hans": "乡村巴士", "en": "Village Bus"},
        description={"zh_Hans": "古村落一日游", "en": "A day in old villages"},
    )
    await set_route_fares(client, headers, rural["id"], ["standard"])
    await create_departure(client, headers, rural, bus, in_days(3), publish=False)

    other = await make_operator("aa-rail")
    tea = await create_route(
        client,
        other.headers,
        slug="tea-hills",
        themes=["nature", "food"],
        name={"zh_Hans": "茶山之旅", "en": "Tea Hills Tour"},
        description={"zh_Hans": "采茶品茶", "en": "Pick and taste green tea"},
    )

    secret = await create_route(
        client,
        headers,
        publish=False,
        slug="secret-line",
        themes=["picking"],
        name={"zh_Hans": "秘密采摘", "en": "Secret Picking"},
        description={"zh_Hans": "樱桃", "en": "Cherry picking"},
    )
    return {
        "flower": flower,
        "flower_departs": flower_departs,
        "flower_departure": flower_departure,
        "picking": picking,
        "picking_departs": picking_departs,
        "picking_departure": picking_departure,
        "rural": rural,
        "tea": tea,
        "secret": secret,
        "other": other,
    }


# ---------------------------------------------------------------- listing routes


async def test_routes_are_sorted_by_next_departure_and_drafts_are_hidden(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    world = await build_catalogue(client, operator, make_operator)
    response = await client.get("/api/v1/routes")
    found = slugs(response)
    assert found[:2] == ["flower-train", "picking-line"]
    # Lines with no upcoming published departure (a draft departure does not count) come last.
    assert set(found[2:]) == {"rural-bus", "tea-hills"}
    assert "secret-line" not in found
    body = response.json()
    assert body["total"] == 4
    assert body["page"] == 1

    items = {item["slug"]: item for item in body["items"]}
    flower = items["flower-train"]
    assert flower["kind"] == "train"
    assert flower["themes"] == ["flower_field"]
    assert flower["name"] == "花海专列"
    assert flower["operator"] == {"slug": "zz-bus", "name": "zz-bus 公司"}
    next_at = datetime.fromisoformat(flower["next_departure_at"])
    assert next_at == world["flower_departs"]
    assert next_at.utcoffset() == timedelta(hours=8)
    assert flower["lowest_adult_price"] == {
        "amount": 6800,
        "currency": "CNY",
        "formatted": "¥68.00",
    }
    assert items["rural-bus"]["next_departure_at"] is None
    assert items["tea-hills"]["next_departure_at"] is None
    assert items["tea-hills"]["themes"] == ["food", "nature"]


async def test_filter_by_theme_kind_and_operator(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    await build_catalogue(client, operator, make_operator)
    # secret-line has the picking theme too, but it is a draft.
    assert slugs(await client.get("/api/v1/routes", params={"theme": "picking"})) == [
        "picking-line"
    ]
    assert slugs(await client.get("/api/v1/routes", params={"theme": "food"})) == ["tea-hills"]
    assert slugs(await client.get("/api/v1/routes", params={"theme": "culture"})) == []
    assert slugs(await client.get("/api/v1/routes", params={"kind": "train"})) == ["flower-train"]
    assert set(slugs(await client.get("/api/v1/routes", params={"kind": "bus"}))) == {
        "picking-line",
        "rural-bus",
        "tea-hills",
    }
    assert slugs(await client.get("/api/v1/routes", params={"operator": "aa-rail"})) == [
        "tea-hills"
    ]
    response = await client.get("/api/v1/routes", params={"operator": "zz-bus"})
    assert slugs(response) == ["flower-train", "picking-line", "rural-bus"]
    assert response.json()["total"] == 3
    response = await client.get("/api/v1/routes", params={"operator": "nobody"})
    assert slugs(response) == []
    assert response.json()["total"] == 0
    combined = await client.get(
        "/api/v1/routes", params={"operator": "zz-bus", "kind": "bus", "theme": "rural"}
    )
    assert slugs(combined) == ["rural-bus"]
    unknown_theme = await client.get("/api/v1/routes", params={"theme": "skiing"})
    assert unknown_theme.status_code == 400
    assert unknown_theme.json()["errors"][0]["field"] == "theme"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("樱桃", ["picking-line"]),  # in the Chinese description
        ("花海", ["flower-train"]),  # in the Chinese name
        ("茶", ["tea-hills"]),
        ("cherry", ["picking-line"]),  # English, any case
        ("FLOWER sea", ["flower-train"]),
        ("  Tea Hills  ", ["tea-hills"]),
        ("village", ["rural-bus"]),
        ("no-such-words", []),
        ("%", []),  # LIKE wildcards are searched for literally
        ("_", []),
    ],
)
async def test_text_search_in_chinese_and_english(
    client: httpx.AsyncClient,
    operator: Account,
    make_operator: MakeOperator,
    query: str,
    expected: list[str],
) -> None:
    await build_catalogue(client, operator, make_operator)
    response = await client.get("/api/v1/routes", params={"q": query})
    assert slugs(response) == expected
    assert response.json()["total"] == len(expected)


async def test_filter_by_local_travel_dates(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    world = await build_catalogue(client, operator, make_operator)
    # The flower train leaves at 00:00 Shanghai time, i.e. 16:00 UTC the day before: the
    # dates are local dates, so it belongs to its Shanghai day, not to the UTC one.
    flower_day = local_date(world["flower_departs"])
    picking_day = local_date(world["picking_departs"])
    assert world["flower_departs"].astimezone(clock.zone("UTC")).date() != flower_day

    def dates(**params: date) -> dict[str, str]:
        return {key: value.isoformat() for key, value in params.items()}

    same_day = await client.get(
        "/api/v1/routes", params=dates(**{"from": flower_day, "to": flower_day})
    )
    assert slugs(same_day) == ["flower-train"]
    day_before = flower_day - timedelta(days=1)
    assert slugs(await client.get("/api/v1/routes", params={"to": day_before.isoformat()})) == []
    assert slugs(
        await client.get(
            "/api/v1/routes", params={"from": (flower_day + timedelta(days=1)).isoformat()}
        )
    ) == ["picking-line"]
    both = await client.get(
        "/api/v1/routes", params={"from": flower_day.isoformat(), "to": picking_day.isoformat()}
    )
    assert slugs(both) == ["flower-train", "picking-line"]
    assert both.json()["total"] == 2
    # The draft departure of rural-bus never matches a date search.
    rural_day = local_date(in_days(3))
    assert "rural-bus" not in slugs(
        await client.get(
            "/api/v1/routes", params={"from": rural_day.isoformat(), "to": rural_day.isoformat()}
        )
    )


async def test_bad_travel_dates_are_400(client: httpx.AsyncClient) -> None:
    reversed_range = await client.get(
        "/api/v1/routes", params={"from": "2030-05-02", "to": "2030-05-01"}
    )
    assert reversed_range.status_code == 400
    assert reversed_range.headers["content-type"].startswith(PROBLEM)
    assert [e["field"] for e in reversed_range.json()["errors"]] == ["to"]
    not_a_date = await client.get("/api/v1/routes", params={"from": "2030-13-01"})
    assert not_a_date.status_code == 400
    error = not_a_date.json()["errors"][0]
    assert error["field"] == "from"
    assert error["source"] == "query"


async def test_pagination_reports_total(client: httpx.AsyncClient, operator: Account) -> None:
    for index in range(5):
        await create_route(client, operator.headers, slug=f"line-{index}")
    first = await client.get("/api/v1/routes", params={"page_size": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["page"], body["page_size"], body["total"]) == (1, 2, 5)
    assert len(body["items"]) == 2
    seen = [item["slug"] for item in body["items"]]
    for page in (2, 3):
        response = await client.get("/api/v1/routes", params={"page_size": 2, "page": page})
        assert response.json()["total"] == 5
        seen += slugs(response)
    assert sorted(seen) == [f"line-{index}" for index in range(5)]
    beyond = await client.get("/api/v1/routes", params={"page_size": 2, "page": 4})
    assert slugs(beyond) == []
    assert beyond.json()["total"] == 5
    default = await client.get("/api/v1/routes")
    assert default.json()["page_size"] == 20


async def test_page_size_above_maximum_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/routes", params={"page_size": 100})).status_code == 200
    response = await client.get("/api/v1/routes", params={"page_size": 101})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == "page_size_too_large"
    assert [e["field"] for e in body["errors"]] == ["page_size"]
    assert body["errors"][0]["source"] == "query"


@pytest.mark.parametrize("params", [{"page": 0}, {"page": -1}, {"page_size": 0}])
async def test_page_and_page_size_below_one_are_400(
    client: httpx.AsyncClient, params: dict[str, int]
) -> None:
    response = await client.get("/api/v1/routes", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert [e["field"] for e in body["errors"]] == list(params)


# ---------------------------------------------------------------- one route


async def _route_with_offers(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    route = await create_route(client, operator.headers, slug="picking-line", duration_days=2)
    await add_offer(
        client,
        operator.headers,
        route["id"],
        {"zh_Hans": "樱桃季", "en": "Cherry season"},
        [5, 6],
    )
    await add_offer(
        client, operator.headers, route["id"], {"zh_Hans": "桑葚季", "en": "Mulberry season"}, [4]
    )
    return route


async def test_route_detail_in_chinese_by_default(
    client: httpx.AsyncClient, operator: Account
) -> None:
    await _route_with_offers(client, operator)
    response = await client.get("/api/v1/routes/picking-line")
    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == "zh-Hans"
    body = response.json()
    assert body["slug"] == "picking-line"
    assert body["name"] == "采摘号"
    assert body["description"] == "周末采摘樱桃和桑葚"
    assert body["meeting_point"] == "郑州东站"
    assert body["operator"] == {"slug": "zz-bus", "name": "zz-bus 公司"}
    assert body["duration_days"] == 2
    assert body["themes"] == ["family", "picking"]
    assert body["next_departure_at"] is None
    assert [tier["refund_percent"] for tier in body["cancellation_policy"]] == [100, 50, 0]
    assert [day["day_number"] for day in body["itinerary"]] == [1, 2]
    day = body["itinerary"][0]
    assert day["title"] == "第1天"
    assert day["stops"] == [
        {
            "place": "樱桃园",
            "arrive_time": "09:30",
            "depart_time": "11:30",
            "activities": ["摘樱桃"],
            "coach_transfer": False,
            "notes": None,
        }
    ]
    assert body["seasonal_offers"] == [
        {"name": "桑葚季", "description": None, "months": [4]},
        {"name": "樱桃季", "description": None, "months": [5, 6]},
    ]


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept-Language": "en-US,en;q=0.9"}, {}),
        ({}, {"lang": "en"}),
        ({"Accept-Language": "zh-CN"}, {"lang": "en"}),  # an explicit choice wins
    ],
)
async def test_route_detail_in_english(
    client: httpx.AsyncClient,
    operator: Account,
    headers: dict[str, str],
    query: dict[str, str],
) -> None:
    await _route_with_offers(client, operator)
    response = await client.get("/api/v1/routes/picking-line", headers=headers, params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == "en"
    body = response.json()
    assert body["name"] == "Picking Line"
    assert body["description"] == "Weekend cherry and mulberry picking"
    assert body["meeting_point"] == "Zhengzhou East Station"
    assert body["operator"]["name"] == "zz-bus company"
    assert body["itinerary"][1]["title"] == "Day 2"
    assert body["itinerary"][0]["stops"][0]["place"] == "Cherry orchard"
    assert body["itinerary"][0]["stops"][0]["activities"] == ["Cherry picking"]
    assert [offer["name"] for offer in body["seasonal_offers"]] == [
        "Mulberry season",
        "Cherry season",
    ]


async def test_route_detail_falls_back_to_the_operators_language(
    client: httpx.AsyncClient, make_operator: MakeOperator
) -> None:
    english = await make_operator("en-tours", default_locale="en")
    await create_route(
        client,
        english.headers,
        slug="tea-hills",
        name={"en": "Tea Hills Tour"},
        description={"zh_Hans": "采茶品茶", "en": "Pick and taste green tea"},
        meeting_point={"en": "Hangzhou East"},
    )
    chinese = await client.get("/api/v1/routes/tea-hills", headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 200, chinese.text
    assert chinese.headers["content-language"] == "zh-Hans"
    body = chinese.json()
    # Missing in Chinese: the operator's default language is shown instead of nothing.
    assert body["name"] == "Tea Hills Tour"
    assert body["meeting_point"] == "Hangzhou East"
    # Present in Chinese: the reader's language wins.
    assert body["description"] == "采茶品茶"
    listed = await client.get("/api/v1/routes", params={"q": "tea"})
    assert [item["name"] for item in listed.json()["items"]] == ["Tea Hills Tour"]


# ---------------------------------------------------------------- departures of a route


async def _train_line(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A train line with two published departures in different months and three offers.

    A soft-sleeper berth is blocked on the vehicle (every departure); a hard-sleeper berth is
    blocked on the first departure only.
    """
    headers = operator.headers
    route = await create_route(
        client,
        headers,
        slug="flower-train",
        kind="train",
        themes=["flower_field"],
        name={"zh_Hans": "花海专列", "en": "Flower Sea Train"},
        description={"zh_Hans": "乘火车看花海", "en": "Flower fields by train"},
    )
    train = await create_vehicle(client, headers, "train")
    soft = [s["label"] for s in train["seats"] if s["seat_class"] == "soft_sleeper"]
    hard = [s["label"] for s in train["seats"] if s["seat_class"] == "hard_sleeper"]
    assert (len(soft), len(hard)) == (8, 12)
    response = await client.put(
        f"/api/v1/operator/vehicles/{train['id']}/seats/{soft[0]}/block",
        json={"reason": "crew"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    await set_route_fares(client, headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    first_at, second_at = in_days(10), in_days(45)
    first = await create_departure(client, headers, route, train, first_at)
    second = await create_departure(client, headers, route, train, second_at)
    draft = await create_departure(client, headers, route, train, in_days(12), publish=False)
    response = await client.put(
        f"/api/v1/operator/departures/{first['id']}/blocks",
        json={"blocks": [{"label": hard[0], "reason": "medical"}]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    first_month = first_at.astimezone(SHANGHAI).month
    second_month = second_at.astimezone(SHANGHAI).month
    assert first_month != second_month
    other_month = next(m for m in range(1, 13) if m not in (first_month, second_month))
    await add_offer(
        client,
        headers,
        route["id"],
        {"zh_Hans": "首月优惠", "en": "First month deal"},
        [first_month],
    )
    await add_offer(
        client,
        headers,
        route["id"],
        {"zh_Hans": "次月优惠", "en": "Second month deal"},
        [second_month],
    )
    await add_offer(
        client, headers, route["id"], {"zh_Hans": "淡季", "en": "Low season"}, [other_month]
    )
    return {
        "route": route,
        "train": train,
        "soft": soft,
        "hard": hard,
        "first": first,
        "second": second,
        "draft": draft,
        "first_at": first_at,
        "second_at": second_at,
    }


async def test_route_departures_with_seats_left_prices_and_offers(
    client: httpx.AsyncClient, operator: Account
) -> None:
    line = await _train_line(client, operator)
    response = await client.get("/api/v1/routes/flower-train/departures")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2  # the draft departure is not listed
    first, second = body["items"]
    assert (first["id"], second["id"]) == (line["first"]["id"], line["second"]["id"])
    assert first["route_slug"] == "flower-train"
    assert first["status"] == "published"
    assert first["on_sale"] is True
    assert first["time_zone"] == "Asia/Shanghai"
    assert datetime.fromisoformat(first["departs_at"]) == line["first_at"]
    assert datetime.fromisoformat(first["departs_at"]).utcoffset() == timedelta(hours=8)
    assert first["classes"] == [
        {"seat_class": "hard_sleeper", "capacity": 11, "seats_left": 11},
        {"seat_class": "soft_sleeper", "capacity": 7, "seats_left": 7},
    ]
    assert first["seats_left"] == 18
    assert second["classes"] == [
        {"seat_class": "hard_sleeper", "capacity": 12, "seats_left": 12},
        {"seat_class": "soft_sleeper", "capacity": 7, "seats_left": 7},
    ]
    assert second["seats_left"] == 19
    assert first["lowest_adult_price"] == {
        "amount": 6800,
        "currency": "CNY",
        "formatted": "¥68.00",
    }
    assert [offer["name"] for offer in first["offers_in_season"]] == ["首月优惠"]
    assert [offer["name"] for offer in second["offers_in_season"]] == ["次月优惠"]

    english = await client.get(
        "/api/v1/routes/flower-train/departures", headers={"Accept-Language": "en"}
    )
    assert english.headers["content-language"] == "en"
    first_en = english.json()["items"][0]
    assert first_en["lowest_adult_price"]["formatted"] == "CN¥68.00"
    assert first_en["lowest_adult_price"]["amount"] == 6800
    assert [offer["name"] for offer in first_en["offers_in_season"]] == ["First month deal"]


async def test_route_departures_between_local_dates(
    client: httpx.AsyncClient, operator: Account
) -> None:
    line = await _train_line(client, operator)
    second_day = local_date(line["second_at"]).isoformat()
    response = await client.get(
        "/api/v1/routes/flower-train/departures", params={"from": second_day, "to": second_day}
    )
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == [line["second"]["id"]]
    assert response.json()["total"] == 1
    first_day = local_date(line["first_at"]).isoformat()
    response = await client.get("/api/v1/routes/flower-train/departures", params={"to": first_day})
    assert [item["id"] for item in response.json()["items"]] == [line["first"]["id"]]
    # Past dates never list departures that already left; an empty window is empty.
    response = await client.get(
        "/api/v1/routes/flower-train/departures", params={"from": "2000-01-01", "to": "2000-01-31"}
    )
    assert response.json() == {"items": [], "page": 1, "page_size": 20, "total": 0}
    paged = await client.get("/api/v1/routes/flower-train/departures", params={"page_size": 1})
    assert paged.json()["total"] == 2
    assert [item["id"] for item in paged.json()["items"]] == [line["first"]["id"]]


async def test_departure_level_fare_lowers_only_that_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    line = await _train_line(client, operator)
    response = await client.put(
        f"/api/v1/operator/departures/{line['second']['id']}/fares",
        json={"fares": [{"seat_class": "hard_sleeper", "passenger_type": "adult", "amount": 5000}]},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    items = (await client.get("/api/v1/routes/flower-train/departures")).json()["items"]
    assert [item["lowest_adult_price"]["amount"] for item in items] == [6800, 5000]
    listed = (await client.get("/api/v1/routes")).json()["items"]
    assert listed[0]["lowest_adult_price"]["amount"] == 5000


# ---------------------------------------------------------------- one departure


async def test_departure_detail_with_stops_fares_and_seats_left(
    client: httpx.AsyncClient, operator: Account
) -> None:
    line = await _train_line(client, operator)
    response = await client.get(f"/api/v1/departures/{line['first']['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route_slug"] == "flower-train"
    assert body["route_name"] == "花海专列"
    assert body["kind"] == "train"
    assert body["status"] == "published"
    assert body["on_sale"] is True
    assert body["meeting_point"] == "郑州东站"
    assert datetime.fromisoformat(body["departs_at"]) == line["first_at"]
    assert body["stops"] == [
        {
            "id": body["stops"][0]["id"],
            "kind": "pickup",
            "name": "郑州东站",
            "address": None,
            "at": line["first_at"].isoformat(),
        }
    ]
    fares = {(f["seat_class"], f["passenger_type"]): f["price"] for f in body["fares"]}
    assert fares == {
        ("hard_sleeper", "adult"): {"amount": 7800, "currency": "CNY", "formatted": "¥78.00"},
        ("hard_sleeper", "child"): {"amount": 4800, "currency": "CNY", "formatted": "¥48.00"},
        ("soft_sleeper", "adult"): {"amount": 6800, "currency": "CNY", "formatted": "¥68.00"},
        ("soft_sleeper", "child"): {"amount": 3800, "currency": "CNY", "formatted": "¥38.00"},
    }
    assert body["seats_left"] == 18
    assert {c["seat_class"]: c["seats_left"] for c in body["classes"]} == {
        "hard_sleeper": 11,
        "soft_sleeper": 7,
    }
    assert [offer["name"] for offer in body["offers_in_season"]] == ["首月优惠"]

    english = await client.get(f"/api/v1/departures/{line['first']['id']}", params={"lang": "en"})
    body_en = english.json()
    assert english.headers["content-language"] == "en"
    assert body_en["route_name"] == "Flower Sea Train"
    assert body_en["stops"][0]["name"] == "Zhengzhou East Station"
    assert {f["price"]["formatted"] for f in body_en["fares"]} == {
        "CN¥78.00",
        "CN¥48.00",
        "CN¥68.00",
        "CN¥38.00",
    }


async def test_seat_map_marks_blocked_seats_as_not_free(
    client: httpx.AsyncClient, operator: Account
) -> None:
    line = await _train_line(client, operator)
    response = await client.get(f"/api/v1/departures/{line['first']['id']}/seats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["departure_id"] == line["first"]["id"]
    assert body["kind"] == "train"
    seats = {seat["label"]: seat for seat in body["seats"]}
    assert len(seats) == 20
    vehicle_blocked, departure_blocked = line["soft"][0], line["hard"][0]
    assert seats[vehicle_blocked]["free"] is False
    assert seats[departure_blocked]["free"] is False
    assert sorted(label for label, seat in seats.items() if not seat["free"]) == sorted(
        [vehicle_blocked, departure_blocked]
    )
    assert seats[line["soft"][1]]["seat_class"] == "soft_sleeper"
    assert seats[line["soft"][1]]["car"] == 1
    # The departure-level block is for the first departure only.
    second = (await client.get(f"/api/v1/departures/{line['second']['id']}/seats")).json()
    not_free = [seat["label"] for seat in second["seats"] if not seat["free"]]
    assert not_free == [vehicle_blocked]


async def test_bus_seat_map_of_a_published_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.get(f"/api/v1/departures/{departure['id']}/seats")
    assert response.status_code == 200, response.text
    seats = response.json()["seats"]
    assert len(seats) == len(vehicle["seats"]) == 45
    assert all(seat["free"] for seat in seats)
    assert seats[0]["label"] == "1A"


# ---------------------------------------------------------------- what the public never sees


async def assert_problem_404(response: httpx.Response, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 404
    # Nothing about the hidden row leaks.
    assert "draft" not in response.text


async def test_draft_route_is_404(client: httpx.AsyncClient, operator: Account) -> None:
    await create_route(client, operator.headers, publish=False, slug="secret-line")
    await assert_problem_404(await client.get("/api/v1/routes/secret-line"), "route_not_found")
    await assert_problem_404(
        await client.get("/api/v1/routes/secret-line/departures"), "route_not_found"
    )
    listed = await client.get("/api/v1/routes")
    assert listed.json()["total"] == 0


async def test_draft_departure_is_404(client: httpx.AsyncClient, operator: Account) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    draft = await create_departure(client, operator.headers, route, vehicle, publish=False)
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{draft['id']}"), "departure_not_found"
    )
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{draft['id']}/seats"), "departure_not_found"
    )
    listed = await client.get(f"/api/v1/routes/{route['slug']}/departures")
    assert listed.json()["total"] == 0
    summary = (await client.get("/api/v1/routes")).json()["items"][0]
    assert summary["next_departure_at"] is None


async def test_published_departure_of_an_unpublished_route_is_404(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    assert (await client.get(f"/api/v1/departures/{departure['id']}")).status_code == 200
    await unpublish_route(client, operator.headers, route["id"])
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{departure['id']}"), "departure_not_found"
    )
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{departure['id']}/seats"), "departure_not_found"
    )
    await assert_problem_404(await client.get(f"/api/v1/routes/{route['slug']}"), "route_not_found")
    assert (await client.get("/api/v1/routes")).json()["total"] == 0


async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{missing}"), "departure_not_found"
    )
    await assert_problem_404(
        await client.get(f"/api/v1/departures/{missing}/seats"), "departure_not_found"
    )
    await assert_problem_404(await client.get("/api/v1/routes/no-such-line"), "route_not_found")
    await assert_problem_404(
        await client.get("/api/v1/routes/no-such-line/departures"), "route_not_found"
    )
    # Not even a UUID: no route matches.
    await assert_problem_404(await client.get("/api/v1/departures/not-a-uuid"), "not_found")
