"""Day plans in the itinerary (where the night is spent, meals, back on board) and a
departure's crew roster, through the operator and public APIs as their users meet them."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.assertions import fields, ok, problem
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)

ROUTES = "/api/v1/operator/routes"
DEPARTURES = "/api/v1/operator/departures"
MakeOperator = Callable[..., Awaitable[Account]]

HOTEL = {
    "name": {"zh_Hans": "喀纳斯山庄", "en": "Kanas Lodge"},
    "address": {"zh_Hans": "布尔津县喀纳斯景区贾登峪", "en": "Jiadengyu, Kanas, Burqin County"},
    "phone": "+86 906 6326 000",
}


def three_days() -> dict[str, Any]:
    """A three-day train trip: a night on board, a hotel night, then home."""
    return {
        "days": [
            {
                "day_number": 1,
                "title": {"zh_Hans": "天山天池", "en": "Tianshan Heavenly Lake"},
                "overnight": "train",
                "meals": ["dinner", "lunch"],
                "back_on_board_at": "19:30",
                "stops": [
                    {
                        "place": {"zh_Hans": "天山天池", "en": "Heavenly Lake"},
                        "arrive_time": "09:30",
                        "depart_time": "16:00",
                        "activities": [{"zh_Hans": "环湖步行", "en": "Lakeside walk"}],
                        "coach_transfer": True,
                    }
                ],
            },
            {
                "day_number": 2,
                "title": {"zh_Hans": "喀纳斯", "en": "Kanas"},
                "overnight": HOTEL,
                "meals": ["breakfast", "lunch", "dinner"],
                "stops": [
                    {
                        "place": {"zh_Hans": "喀纳斯湖", "en": "Kanas Lake"},
                        "arrive_time": "11:00",
                    }
                ],
            },
            {
                "day_number": 3,
                "title": {"zh_Hans": "返程", "en": "Home"},
                "meals": ["breakfast"],
            },
        ]
    }


async def train_route(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    return await create_route(
        client, operator.headers, slug="xinjiang-train", kind="train", duration_days=3
    )


async def put_itinerary(
    client: httpx.AsyncClient, operator: Account, route_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.put(f"{ROUTES}/{route_id}/itinerary", json=body, headers=operator.headers)


# ---------------------------------------------------------------- day plans


async def test_day_plans_are_stored_and_read_back_by_operator_and_public(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await train_route(client, operator)
    saved = ok(await put_itinerary(client, operator, route["id"], three_days()))
    fetched = ok(await client.get(f"{ROUTES}/{route['id']}/itinerary", headers=operator.headers))
    assert fetched == saved
    first, second, third = fetched["days"]
    assert first["overnight"] == "train"
    assert first["night_on_train"] is True
    # Meals come back in the order they are eaten, whatever order they were sent in.
    assert first["meals"] == ["lunch", "dinner"]
    assert first["back_on_board_at"] == "19:30"
    assert second["overnight"] == HOTEL
    assert second["night_on_train"] is False
    assert second["back_on_board_at"] is None
    assert third["overnight"] is None
    assert third["meals"] == ["breakfast"]

    english = ok(
        await client.get(f"/api/v1/routes/{route['slug']}", headers={"Accept-Language": "en"})
    )
    day1, day2, day3 = english["itinerary"]
    assert day1["overnight"] == "train"
    assert day1["back_on_board_at"] == "19:30"
    assert day1["meals"] == ["lunch", "dinner"]
    assert day1["stops"][0]["place"] == "Heavenly Lake"
    assert day2["overnight"] == {
        "name": "Kanas Lodge",
        "address": "Jiadengyu, Kanas, Burqin County",
        "phone": "+86 906 6326 000",
    }
    assert day3["overnight"] is None
    chinese = ok(await client.get(f"/api/v1/routes/{route['slug']}"))
    assert chinese["itinerary"][1]["overnight"]["name"] == "喀纳斯山庄"


async def test_night_on_train_from_older_clients_means_a_night_on_board(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await train_route(client, operator)
    body = {"days": [{"day_number": 1, "title": {"en": "Away"}, "night_on_train": True}]}
    day = ok(await put_itinerary(client, operator, route["id"], body))["days"][0]
    assert (day["overnight"], day["night_on_train"], day["meals"]) == ("train", True, [])


def _change(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(three_days())
    edit(body)
    return body


def _set(day: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body["days"][day].update(values)

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        pytest.param(_set(0, overnight="hotel"), "days[0].overnight", id="unknown-overnight"),
        pytest.param(
            _set(1, overnight={"name": {"en": "Lodge"}}),
            "days[1].overnight.address",
            id="hotel-without-address",
        ),
        pytest.param(
            _set(1, overnight={**HOTEL, "stars": 4}),
            "days[1].overnight.stars",
            id="hotel-unknown-field",
        ),
        pytest.param(
            _set(1, overnight={**HOTEL, "phone": "call us"}),
            "days[1].overnight.phone",
            id="hotel-bad-phone",
        ),
        pytest.param(_set(1, night_on_train=True), "days[1].night_on_train", id="train-and-hotel"),
        pytest.param(_set(2, overnight="train"), "days[2].overnight", id="night-after-last-day"),
        pytest.param(_set(0, meals=["supper"]), "days[0].meals[0]", id="unknown-meal"),
        pytest.param(_set(0, meals=["lunch", "lunch"]), "days[0].meals", id="meal-twice"),
        pytest.param(_set(0, back_on_board_at="25:00"), "days[0].back_on_board_at", id="bad-time"),
        pytest.param(
            _set(0, back_on_board_at="08:00"), "days[0].back_on_board_at", id="before-arrival"
        ),
        pytest.param(
            _set(1, back_on_board_at="20:00"), "days[1].back_on_board_at", id="hotel-night-boarding"
        ),
    ],
)
async def test_a_wrong_day_plan_names_the_field_and_keeps_the_old_itinerary(
    client: httpx.AsyncClient,
    operator: Account,
    edit: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    route = await train_route(client, operator)
    before = ok(await put_itinerary(client, operator, route["id"], three_days()))
    body = problem(await put_itinerary(client, operator, route["id"], _change(edit)), 400)
    assert fields(body) == [field], body
    after = ok(await client.get(f"{ROUTES}/{route['id']}/itinerary", headers=operator.headers))
    assert after == before


async def test_a_bus_line_cannot_spend_the_night_on_a_train(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, slug="two-day-bus", duration_days=2)
    body = {
        "days": [
            {"day_number": 1, "title": {"en": "Out"}, "overnight": "train"},
            {"day_number": 2, "title": {"en": "Back"}},
        ]
    }
    problem_body = problem(await put_itinerary(client, operator, route["id"], body), 400)
    assert fields(problem_body) == ["days[0].overnight"]
    body["days"][0]["overnight"] = HOTEL
    assert ok(await put_itinerary(client, operator, route["id"], body))["days"][0]["overnight"]


# ---------------------------------------------------------------- crew


async def train_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    route = await train_route(client, operator)
    vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    return await create_departure(client, operator.headers, route, vehicle, in_days(20))


CREW = [
    {"name": "李建华", "role": "steward", "phone": "+86 138 0371 0001", "car": 1},
    {"name": "王医生", "role": "medical", "phone": "+86 138 0371 0002", "car": 2},
    {"name": "Aliya", "role": "guide", "phone": "+86 139 9901 0003", "coach": "新A·12345"},
]


async def test_the_crew_roster_is_replaced_whole_and_read_back(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    assert ok(await client.get(url, headers=operator.headers)) == {
        "departure_id": departure["id"],
        "members": [],
    }
    saved = ok(await client.put(url, json={"members": CREW}, headers=operator.headers))
    assert saved["members"] == [
        {"name": "李建华", "role": "steward", "phone": "+86 138 0371 0001", "car": 1, "coach": ""},
        {"name": "王医生", "role": "medical", "phone": "+86 138 0371 0002", "car": 2, "coach": ""},
        {
            "name": "Aliya",
            "role": "guide",
            "phone": "+86 139 9901 0003",
            "car": None,
            "coach": "新A·12345",
        },
    ]
    assert ok(await client.get(url, headers=operator.headers)) == saved

    # The whole roster is replaced: what is not sent again is gone, in the new order.
    again = ok(
        await client.put(url, json={"members": [CREW[2], CREW[0]]}, headers=operator.headers)
    )
    assert [member["name"] for member in again["members"]] == ["Aliya", "李建华"]
    assert (
        ok(await client.put(url, json={"members": []}, headers=operator.headers))["members"] == []
    )


def _member(index: int, **values: Any) -> dict[str, Any]:
    members = copy.deepcopy(CREW)
    members[index].update(values)
    for key, value in values.items():
        if value is None:
            del members[index][key]
    return {"members": members}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(_member(0, role="captain"), "members[0].role", id="unknown-role"),
        pytest.param(_member(1, phone="ask the office"), "members[1].phone", id="bad-phone"),
        pytest.param(_member(1, phone=None), "members[1].phone", id="no-phone"),
        pytest.param(_member(0, name=""), "members[0].name", id="empty-name"),
        pytest.param(_member(0, name="   "), "members[0].name", id="blank-name"),
        pytest.param(_member(0, car=9), "members[0].car", id="car-the-train-lacks"),
        pytest.param(_member(0, car=0), "members[0].car", id="car-zero"),
        pytest.param(_member(2, coach="x" * 61), "members[2].coach", id="coach-too-long"),
        pytest.param(_member(2, seat="01-01L"), "members[2].seat", id="unknown-field"),
        pytest.param(_member(2, name="李建华", role="steward"), "members[2].name", id="twice"),
        pytest.param({"members": "everyone"}, "members", id="not-a-list"),
    ],
)
async def test_a_wrong_roster_names_the_field_and_keeps_the_old_one(
    client: httpx.AsyncClient, operator: Account, body: dict[str, Any], field: str
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    before = ok(await client.put(url, json={"members": CREW[:1]}, headers=operator.headers))
    answer = problem(await client.put(url, json=body, headers=operator.headers), 400)
    assert fields(answer) == [field], answer
    assert ok(await client.get(url, headers=operator.headers)) == before


async def test_a_bus_crew_rides_a_coach_not_a_car(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    driver = {"name": "赵师傅", "role": "driver", "phone": "+86 137 0000 0004"}
    answer = problem(
        await client.put(url, json={"members": [{**driver, "car": 1}]}, headers=operator.headers),
        400,
    )
    assert fields(answer) == ["members[0].car"]
    saved = ok(
        await client.put(
            url, json={"members": [{**driver, "coach": "豫A·8866"}]}, headers=operator.headers
        )
    )
    assert saved["members"][0]["coach"] == "豫A·8866"


async def test_another_operators_departure_has_no_crew_to_see_or_change(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    ok(await client.put(url, json={"members": CREW}, headers=operator.headers))
    rival = await make_operator("yy-tours")
    problem(await client.get(url, headers=rival.headers), 404, "departure_not_found")
    problem(
        await client.put(url, json={"members": []}, headers=rival.headers),
        404,
        "departure_not_found",
    )
    assert len(ok(await client.get(url, headers=operator.headers))["members"]) == 3


async def test_staff_read_the_crew_and_only_admins_change_it(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    ok(await client.put(url, json={"members": CREW}, headers=operator.headers))
    staff = await make_operator("zz-bus", "operator_staff")
    assert len(ok(await client.get(url, headers=staff.headers))["members"]) == 3
    problem(
        await client.put(url, json={"members": []}, headers=staff.headers),
        403,
        "operator_admin_required",
    )
    problem(await client.get(url), 401)


async def test_a_roster_change_is_audited_with_what_was_sent(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    ok(await client.put(url, json={"members": CREW}, headers=operator.headers))
    problem(await client.put(url, json=_member(0, car=9), headers=operator.headers), 400)
    items = ok(await client.get("/api/v1/operator/audit", headers=operator.headers))["items"]
    entries = [item for item in items if item["path"] == url]
    assert [(entry["method"], entry["status_code"]) for entry in entries] == [
        ("PUT", 400),
        ("PUT", 200),
    ]
    assert entries[1]["changes"] == {"members": CREW}


async def test_a_cancelled_departures_crew_stays_as_it_was(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator)
    url = f"{DEPARTURES}/{departure['id']}/crew"
    ok(await client.put(url, json={"members": CREW}, headers=operator.headers))
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    problem(
        await client.put(url, json={"members": []}, headers=operator.headers),
        409,
        "departure_cancelled",
    )
    assert len(ok(await client.get(url, headers=operator.headers))["members"]) == 3
