"""Vehicles and seat maps, departures, publishing rules, the status machine, season scheduling
and operator isolation, exercised through the HTTP API against a real database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from app.core import clock
from tests.assertions import fields, ok, problem
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import (
    BUS_LAYOUT,
    TRAIN_LAYOUT,
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    set_route_fares,
)

VEHICLES = "/api/v1/operator/vehicles"
DEPARTURES = "/api/v1/operator/departures"
ROUTES = "/api/v1/operator/routes"
SHANGHAI = clock.zone("Asia/Shanghai")
BERLIN = clock.zone("Europe/Berlin")
STOP_NAME = {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"}


# ---------------------------------------------------------------- helpers


async def relogin(client: httpx.AsyncClient, account: Account) -> Account:
    """The same staff member logged in again (a token issued at the current, maybe frozen, now)."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": STAFF_PASSWORD}
    )
    token = ok(response)["access_token"]
    return Account(account.operator_id, account.slug, account.email, token)


def local_today() -> date:
    return clock.now().astimezone(SHANGHAI).date()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def departure_total(
    client: httpx.AsyncClient, account: Account, route_id: str | None = None
) -> int:
    params = {"route_id": route_id} if route_id else {}
    body = ok(await client.get(DEPARTURES, params=params, headers=account.headers))
    return int(body["total"])


async def list_route_departures(
    client: httpx.AsyncClient, account: Account, route_id: str
) -> list[dict[str, Any]]:
    body = ok(
        await client.get(
            DEPARTURES, params={"route_id": route_id, "page_size": 100}, headers=account.headers
        )
    )
    assert body["total"] <= 100
    return list(body["items"])


def departure_payload(
    route: dict[str, Any], vehicle: dict[str, Any] | None, departs_at: datetime, **overrides: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"route_id": route["id"], "departs_at": departs_at.isoformat()}
    if vehicle is not None:
        payload["vehicle_id"] = vehicle["id"]
    payload.update(overrides)
    return payload


async def post_departure(
    client: httpx.AsyncClient, account: Account, payload: dict[str, Any]
) -> httpx.Response:
    return await client.post(DEPARTURES, json=payload, headers=account.headers)


async def publish(client: httpx.AsyncClient, account: Account, departure_id: str) -> httpx.Response:
    return await client.post(f"{DEPARTURES}/{departure_id}/publish", headers=account.headers)


async def transition(
    client: httpx.AsyncClient, account: Account, departure_id: str, action: str
) -> httpx.Response:
    return await client.post(f"{DEPARTURES}/{departure_id}/{action}", headers=account.headers)


async def get_departure(
    client: httpx.AsyncClient, account: Account, departure_id: str
) -> dict[str, Any]:
    return dict(ok(await client.get(f"{DEPARTURES}/{departure_id}", headers=account.headers)))


def season_payload(start: date, end: date, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "weekdays": [6, 7],
        "departure_time": "08:30",
        "return_time": "18:00",
    }
    payload.update(overrides)
    return payload


async def schedule(
    client: httpx.AsyncClient, account: Account, route_id: str, payload: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"{ROUTES}/{route_id}/departures/bulk", json=payload, headers=account.headers
    )


def next_saturday(after: date) -> date:
    return after + timedelta(days=(6 - after.isoweekday()) % 7)


def next_berlin_dst_change(after: date) -> date:
    """The first local date on or after `after` whose UTC offset in Berlin differs from the day
    before (a DST switch)."""
    day = after
    for _ in range(400):
        noon = datetime.combine(day, time(12), tzinfo=BERLIN).utcoffset()
        eve = datetime.combine(day - timedelta(days=1), time(12), tzinfo=BERLIN).utcoffset()
        if noon != eve:
            return day
        day += timedelta(days=1)
    raise AssertionError("no DST change in Berlin within 400 days")


def seat(label: str, seat_class: str = "standard", **extra: Any) -> dict[str, Any]:
    return {"label": label, "seat_class": seat_class, **extra}


# ---------------------------------------------------------------- vehicles


async def test_train_layout_labels_berths_by_car_and_counts_capacity_per_class(
    client: httpx.AsyncClient, operator: Account
) -> None:
    layout = {
        "type": "train",
        "cars": [
            {
                "car": 1,
                "seat_class": "soft_sleeper",
                "compartments": 2,
                "berths_per_compartment": 4,
            },
            {
                "car": 2,
                "seat_class": "hard_sleeper",
                "compartments": 3,
                "berths_per_compartment": 6,
            },
        ],
    }
    vehicle = ok(
        await client.post(
            VEHICLES,
            json={"kind": "train", "name": "Y801", "code": "Y801", "layout": layout},
            headers=operator.headers,
        ),
        201,
    )
    assert vehicle["kind"] == "train"
    assert vehicle["capacity_by_class"] == {"hard_sleeper": 18, "soft_sleeper": 8}
    seats = {s["label"]: s for s in vehicle["seats"]}
    assert len(vehicle["seats"]) == 26
    assert [s["label"] for s in vehicle["seats"][:5]] == [
        "01-01L",
        "01-02U",
        "01-03L",
        "01-04U",
        "01-05L",
    ]
    assert seats["01-01L"] == {
        "label": "01-01L",
        "seat_class": "soft_sleeper",
        "position": "lower",
        "car": 1,
        "compartment": 1,
        "row": None,
        "blocked_reason": None,
    }
    assert seats["01-05L"]["compartment"] == 2
    assert seats["01-08U"]["position"] == "upper"
    # A 6-berth compartment: lower, middle, upper on each side, numbered through the car.
    car2 = [s for s in vehicle["seats"] if s["car"] == 2]
    assert [(s["label"], s["position"]) for s in car2[:6]] == [
        ("02-01L", "lower"),
        ("02-02M", "middle"),
        ("02-03U", "upper"),
        ("02-04L", "lower"),
        ("02-05M", "middle"),
        ("02-06U", "upper"),
    ]
    assert car2[-1]["label"] == "02-18U"
    assert car2[-1]["compartment"] == 3
    assert {s["seat_class"] for s in car2} == {"hard_sleeper"}

    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched == vehicle
    listed = ok(await client.get(VEHICLES, headers=operator.headers))
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == vehicle["id"]
    assert listed["items"][0]["capacity_by_class"] == {"hard_sleeper": 18, "soft_sleeper": 8}


async def test_train_layout_rejects_a_car_number_given_twice(
    client: httpx.AsyncClient, operator: Account
) -> None:
    car = {"car": 3, "seat_class": "soft_sleeper", "compartments": 1, "berths_per_compartment": 2}
    body = problem(
        await client.post(
            VEHICLES,
            json={"kind": "train", "name": "T", "layout": {"type": "train", "cars": [car, car]}},
            headers=operator.headers,
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["layout.cars"]
    assert ok(await client.get(VEHICLES, headers=operator.headers))["total"] == 0


async def test_bus_layout_of_45_seats_with_front_rows_and_accessible_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    layout = {**BUS_LAYOUT, "front_rows": 2, "accessible_labels": ["10A", "10B"]}
    vehicle = ok(
        await client.post(
            VEHICLES,
            json={"kind": "bus", "name": "Yutong", "layout": layout},
            headers=operator.headers,
        ),
        201,
    )
    labels = [s["label"] for s in vehicle["seats"]]
    expected = [f"{row}{letter}" for row in range(1, 11) for letter in "ABCD"] + [
        f"11{letter}" for letter in "ABCDE"
    ]
    assert labels == expected
    assert len(labels) == 45
    assert labels[0] == "1A"
    assert labels[-1] == "11E"
    assert vehicle["capacity_by_class"] == {"accessible": 2, "front": 8, "standard": 35}
    seats = {s["label"]: s for s in vehicle["seats"]}
    assert seats["1A"]["seat_class"] == "front"
    assert seats["2D"]["seat_class"] == "front"
    assert seats["3A"]["seat_class"] == "standard"
    assert seats["10A"]["seat_class"] == "accessible"
    assert seats["10C"]["seat_class"] == "standard"
    assert (seats["3A"]["position"], seats["3B"]["position"]) == ("window", "aisle")
    assert (seats["3C"]["position"], seats["3D"]["position"]) == ("aisle", "window")
    assert seats["11D"]["position"] == "aisle"
    assert seats["11E"]["position"] == "window"
    assert seats["11E"]["row"] == 11
    assert seats["11E"]["car"] is None


async def test_bus_layout_rejects_unknown_accessible_seat(
    client: httpx.AsyncClient, operator: Account
) -> None:
    layout = {**BUS_LAYOUT, "accessible_labels": ["12A"]}
    body = problem(
        await client.post(
            VEHICLES,
            json={"kind": "bus", "name": "Bus", "layout": layout},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["layout.accessible_labels"]
    assert "12A" in body["errors"][0]["message"]


async def test_explicit_seat_list_keeps_given_attributes_and_pre_blocked_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    seats = [
        seat("1A", "front", position="window", row=1),
        seat("1B", "front", position="aisle", row=1),
        seat("2A", position="window", row=2),
        seat("2B", position="aisle", row=2, blocked_reason="guide"),
        seat("2C", position="window", row=2),
    ]
    vehicle = ok(
        await client.post(
            VEHICLES,
            json={"kind": "bus", "name": "Minibus", "code": "MB-1", "seats": seats},
            headers=operator.headers,
        ),
        201,
    )
    assert [s["label"] for s in vehicle["seats"]] == ["1A", "1B", "2A", "2B", "2C"]
    assert vehicle["capacity_by_class"] == {"front": 2, "standard": 2}
    by_label = {s["label"]: s for s in vehicle["seats"]}
    assert by_label["2B"]["blocked_reason"] == "guide"
    assert by_label["1B"]["position"] == "aisle"
    assert by_label["2C"]["row"] == 2


async def test_duplicate_seat_labels_are_rejected(
    client: httpx.AsyncClient, operator: Account
) -> None:
    body = problem(
        await client.post(
            VEHICLES,
            json={"kind": "bus", "name": "Bus", "seats": [seat("1A"), seat("1B"), seat("1A")]},
            headers=operator.headers,
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["seats"]
    assert "1A" in body["errors"][0]["message"]
    assert ok(await client.get(VEHICLES, headers=operator.headers))["total"] == 0


@pytest.mark.parametrize(
    "seat_map",
    [
        pytest.param({"layout": BUS_LAYOUT, "seats": [seat("1A")]}, id="both"),
        pytest.param({}, id="neither"),
    ],
)
async def test_vehicle_needs_exactly_one_of_layout_and_seats(
    client: httpx.AsyncClient, operator: Account, seat_map: dict[str, Any]
) -> None:
    body = problem(
        await client.post(
            VEHICLES, json={"kind": "bus", "name": "Bus", **seat_map}, headers=operator.headers
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["layout"]
    assert ok(await client.get(VEHICLES, headers=operator.headers))["total"] == 0


@pytest.mark.parametrize(
    ("kind", "layout"), [("bus", TRAIN_LAYOUT), ("train", BUS_LAYOUT)], ids=["bus", "train"]
)
async def test_layout_must_match_vehicle_kind(
    client: httpx.AsyncClient, operator: Account, kind: str, layout: dict[str, Any]
) -> None:
    body = problem(
        await client.post(
            VEHICLES, json={"kind": kind, "name": "X", "layout": layout}, headers=operator.headers
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["layout.type"]
    assert ok(await client.get(VEHICLES, headers=operator.headers))["total"] == 0


async def test_patch_vehicle_changes_details_but_not_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    vehicle = await create_vehicle(client, operator.headers, "bus")
    updated = ok(
        await client.patch(
            f"{VEHICLES}/{vehicle['id']}",
            json={"name": "Golden Dragon", "description": "Air-conditioned coach"},
            headers=operator.headers,
        )
    )
    assert updated["name"] == "Golden Dragon"
    assert updated["description"] == "Air-conditioned coach"
    assert updated["code"] == vehicle["code"]
    assert updated["seats"] == vehicle["seats"]
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched["name"] == "Golden Dragon"
    assert fetched["capacity_by_class"] == {"standard": 45}

    # The kind and the seats are not fields of a PATCH.
    body = problem(
        await client.patch(
            f"{VEHICLES}/{vehicle['id']}", json={"kind": "train"}, headers=operator.headers
        ),
        400,
    )
    assert fields(body) == ["kind"]
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched["kind"] == "bus"
    assert fetched["name"] == "Golden Dragon"


async def test_vehicle_seat_block_reduces_and_release_restores_capacity(
    client: httpx.AsyncClient, operator: Account
) -> None:
    vehicle = await create_vehicle(client, operator.headers, "train")
    assert vehicle["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 8}
    route = await create_route(client, operator.headers, kind="train", duration_days=2)
    departure = await create_departure(
        client, operator.headers, route, vehicle, in_days(12), publish=False
    )
    assert departure["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 8}

    blocked = ok(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats/01-01L/block",
            json={"reason": "steward"},
            headers=operator.headers,
        )
    )
    assert blocked["label"] == "01-01L"
    assert blocked["blocked_reason"] == "steward"
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 7}
    assert next(s for s in fetched["seats"] if s["label"] == "01-01L")["blocked_reason"] == (
        "steward"
    )
    # Every departure of the vehicle loses the seat.
    after_block = await get_departure(client, operator, departure["id"])
    assert after_block["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 7}

    released = ok(
        await client.delete(
            f"{VEHICLES}/{vehicle['id']}/seats/01-01L/block", headers=operator.headers
        )
    )
    assert released["blocked_reason"] is None
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 8}
    after_release = await get_departure(client, operator, departure["id"])
    assert after_release["capacity_by_class"] == {"hard_sleeper": 12, "soft_sleeper": 8}

    problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats/09-01L/block",
            json={"reason": "crew"},
            headers=operator.headers,
        ),
        404,
        "seat_not_found",
    )
    problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats/01-02U/block",
            json={"reason": "sleeping"},
            headers=operator.headers,
        ),
        400,
    )


async def test_seat_map_cannot_change_while_a_published_departure_uses_the_vehicle(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    smaller = {"layout": {"type": "bus", "rows": 10, "seat_letters": "ABCD"}}

    # A draft departure does not freeze the seat map.
    replaced = ok(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats", json=smaller, headers=operator.headers
        )
    )
    assert replaced["capacity_by_class"] == {"standard": 40}
    assert replaced["seats"][-1]["label"] == "10D"
    assert (await get_departure(client, operator, departure["id"]))["capacity_by_class"] == {
        "standard": 40
    }

    ok(await publish(client, operator, departure["id"]))
    problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"layout": BUS_LAYOUT},
            headers=operator.headers,
        ),
        409,
        "vehicle_in_use",
    )
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert len(fetched["seats"]) == 40

    # Closed sales still hold the seat map; a cancelled departure releases it.
    ok(await transition(client, operator, departure["id"], "close"))
    problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"layout": BUS_LAYOUT},
            headers=operator.headers,
        ),
        409,
        "vehicle_in_use",
    )
    ok(await transition(client, operator, departure["id"], "cancel"))
    replaced = ok(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"layout": BUS_LAYOUT},
            headers=operator.headers,
        )
    )
    assert replaced["capacity_by_class"] == {"standard": 45}


async def test_seat_map_replacement_validates_like_creation(
    client: httpx.AsyncClient, operator: Account
) -> None:
    vehicle = await create_vehicle(client, operator.headers, "bus")
    body = problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"layout": TRAIN_LAYOUT},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["layout.type"]
    body = problem(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"seats": [seat("1A"), seat("1A")]},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["seats"]
    fetched = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert len(fetched["seats"]) == 45


async def test_delete_vehicle_refused_while_departures_use_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    used = await create_vehicle(client, operator.headers, "bus")
    unused = await create_vehicle(client, operator.headers, "bus")
    await create_departure(client, operator.headers, route, used, publish=False)

    problem(
        await client.delete(f"{VEHICLES}/{used['id']}", headers=operator.headers),
        409,
        "vehicle_in_use",
    )
    ok(await client.get(f"{VEHICLES}/{used['id']}", headers=operator.headers))

    response = await client.delete(f"{VEHICLES}/{unused['id']}", headers=operator.headers)
    assert response.status_code == 204, response.text
    problem(
        await client.get(f"{VEHICLES}/{unused['id']}", headers=operator.headers),
        404,
        "vehicle_not_found",
    )
    listed = ok(await client.get(VEHICLES, headers=operator.headers))
    assert [v["id"] for v in listed["items"]] == [used["id"]]


# ---------------------------------------------------------------- departures


async def test_create_departure_is_a_draft_shown_in_its_time_zone_with_defaults(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, duration_days=3)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    local = in_days(10, hour=8)
    # Sent in UTC; shown back in the departure's zone (the operator's, Asia/Shanghai).
    payload = departure_payload(
        route,
        vehicle,
        local.astimezone(UTC),
        stops=[
            {
                "kind": "boarding",
                "name": STOP_NAME,
                "at": (local - timedelta(minutes=30)).isoformat(),
            }
        ],
        notes="Bring a hat",
    )
    departure = ok(await post_departure(client, operator, payload), 201)
    assert departure["status"] == "draft"
    assert departure["route_id"] == route["id"]
    assert departure["route_slug"] == route["slug"]
    assert departure["vehicle_id"] == vehicle["id"]
    assert departure["time_zone"] == "Asia/Shanghai"
    assert departure["departs_at"] == local.isoformat()
    assert departure["departs_at"].endswith("T08:00:00+08:00")
    assert departure["returns_at"] == (local + timedelta(days=3)).isoformat()
    assert departure["sales_close_at"] == departure["departs_at"]
    assert departure["sales_open_at"] is None
    assert departure["capacity_by_class"] == {"standard": 45}
    assert departure["blocked"] == []
    assert departure["notes"] == "Bring a hat"
    assert departure["stops"] == [
        {
            "kind": "boarding",
            "name": STOP_NAME,
            "address": None,
            "at": (local - timedelta(minutes=30)).isoformat(),
        }
    ]
    assert departure["stops"][0]["at"].endswith("T07:30:00+08:00")

    fetched = await get_departure(client, operator, departure["id"])
    assert fetched == departure
    listed = await list_route_departures(client, operator, route["id"])
    assert [d["id"] for d in listed] == [departure["id"]]
    # Drafts are not public.
    problem(await client.get(f"/api/v1/departures/{departure['id']}"), 404)


async def test_create_departure_in_another_time_zone(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    local = in_days(9, hour=8)
    departure = ok(
        await post_departure(
            client,
            operator,
            departure_payload(
                route,
                None,
                local,
                time_zone="Asia/Tokyo",
                returns_at=(local + timedelta(hours=10)).isoformat(),
            ),
        ),
        201,
    )
    assert departure["time_zone"] == "Asia/Tokyo"
    assert departure["vehicle_id"] is None
    assert departure["capacity_by_class"] == {}
    assert departure["departs_at"].endswith("T09:00:00+09:00")
    assert parse(departure["departs_at"]) == local
    assert parse(departure["returns_at"]) == local + timedelta(hours=10)


def _naive_departs(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    return departure_payload(route, vehicle, local.replace(tzinfo=None))


def _returns_first(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    return departure_payload(
        route, vehicle, local, returns_at=(local - timedelta(hours=1)).isoformat()
    )


def _unknown_zone(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    return departure_payload(route, vehicle, local, time_zone="Mars/Olympus_Mons")


def _stop_too_early(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    stop = {"name": STOP_NAME, "at": (local - timedelta(hours=13)).isoformat()}
    return departure_payload(route, vehicle, local, stops=[stop])


def _stop_after_return(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    stop = {"name": STOP_NAME, "at": (local + timedelta(days=1, minutes=1)).isoformat()}
    return departure_payload(route, vehicle, local, stops=[stop])


def _naive_stop(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    stops = [
        {"name": STOP_NAME, "at": local.isoformat()},
        {"name": STOP_NAME, "at": local.replace(tzinfo=None).isoformat()},
    ]
    return departure_payload(route, vehicle, local, stops=stops)


def _sales_close_late(route: dict[str, Any], vehicle: dict[str, Any], local: datetime) -> dict:
    return departure_payload(
        route, vehicle, local, sales_close_at=(local + timedelta(minutes=1)).isoformat()
    )


@pytest.mark.parametrize(
    ("make_payload", "field"),
    [
        pytest.param(_naive_departs, "departs_at", id="naive-departs_at"),
        pytest.param(_returns_first, "returns_at", id="returns-before-departs"),
        pytest.param(_unknown_zone, "time_zone", id="unknown-time-zone"),
        pytest.param(_stop_too_early, "stops[0].at", id="stop-before-window"),
        pytest.param(_stop_after_return, "stops[0].at", id="stop-after-return"),
        pytest.param(_naive_stop, "stops[1].at", id="naive-stop"),
        pytest.param(_sales_close_late, "sales_close_at", id="sales-close-after-departure"),
    ],
)
async def test_create_departure_rejects_invalid_times(
    client: httpx.AsyncClient,
    operator: Account,
    make_payload: Callable[..., dict[str, Any]],
    field: str,
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    body = problem(
        await post_departure(client, operator, make_payload(route, vehicle, in_days(10))),
        400,
        "validation_error",
    )
    assert fields(body) == [field]
    assert body["errors"][0]["source"] == "body"
    assert await departure_total(client, operator) == 0


async def test_create_departure_rejects_a_vehicle_of_another_kind(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, kind="bus")
    train = await create_vehicle(client, operator.headers, "train")
    body = problem(
        await post_departure(client, operator, departure_payload(route, train, in_days(10))),
        400,
    )
    assert fields(body) == ["vehicle_id"]
    assert await departure_total(client, operator) == 0


async def test_create_departure_on_an_archived_route_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    ok(await client.post(f"{ROUTES}/{route['id']}/archive", headers=operator.headers))
    problem(
        await post_departure(client, operator, departure_payload(route, None, in_days(10))),
        409,
        "route_archived",
    )
    assert await departure_total(client, operator) == 0


async def test_patch_departure(client: httpx.AsyncClient, operator: Account) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(
        client, operator.headers, route, vehicle, in_days(10), publish=False
    )
    later = in_days(11, hour=7)
    patched = ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={
                "departs_at": later.isoformat(),
                "returns_at": (later + timedelta(hours=12)).isoformat(),
                "sales_close_at": (later - timedelta(hours=2)).isoformat(),
                "notes": "Moved one day later",
                "stops": [
                    {"kind": "pickup", "name": STOP_NAME, "at": later.isoformat()},
                    {
                        "kind": "dropoff",
                        "name": STOP_NAME,
                        "at": (later + timedelta(hours=11)).isoformat(),
                    },
                ],
            },
            headers=operator.headers,
        )
    )
    assert patched["departs_at"] == later.isoformat()
    assert patched["returns_at"] == (later + timedelta(hours=12)).isoformat()
    assert patched["sales_close_at"] == (later - timedelta(hours=2)).isoformat()
    assert patched["notes"] == "Moved one day later"
    assert [(s["kind"], s["at"]) for s in patched["stops"]] == [
        ("pickup", later.isoformat()),
        ("dropoff", (later + timedelta(hours=11)).isoformat()),
    ]
    assert patched["status"] == "draft"
    assert await get_departure(client, operator, departure["id"]) == patched

    # Another zone changes how the same moments are shown, not the moments.
    tokyo = ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"time_zone": "Asia/Tokyo"},
            headers=operator.headers,
        )
    )
    assert tokyo["departs_at"].endswith("T08:00:00+09:00")
    assert parse(tokyo["departs_at"]) == later

    # Invalid changes are refused and change nothing.
    body = problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"returns_at": (later - timedelta(hours=1)).isoformat(), "notes": "x"},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["returns_at"]
    body = problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"status": "published"},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["status"]
    body = problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"departs_at": later.replace(tzinfo=None).isoformat()},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["departs_at"]
    assert await get_departure(client, operator, departure["id"]) == tokyo

    # Removing the vehicle of a draft is allowed.
    unassigned = ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}", json={"vehicle_id": None}, headers=operator.headers
        )
    )
    assert unassigned["vehicle_id"] is None
    assert unassigned["capacity_by_class"] == {}


async def test_vehicle_of_a_published_departure_cannot_be_swapped(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    other = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle)
    problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"vehicle_id": other["id"]},
            headers=operator.headers,
        ),
        409,
        "departure_published",
    )
    assert (await get_departure(client, operator, departure["id"]))["vehicle_id"] == vehicle["id"]


async def test_only_a_draft_departure_can_be_deleted(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    draft = await create_departure(client, operator.headers, route, vehicle, in_days(8), False)
    published = await create_departure(client, operator.headers, route, vehicle, in_days(9))

    problem(
        await client.delete(f"{DEPARTURES}/{published['id']}", headers=operator.headers),
        409,
        "departure_not_draft",
    )
    assert (await get_departure(client, operator, published["id"]))["status"] == "published"

    response = await client.delete(f"{DEPARTURES}/{draft['id']}", headers=operator.headers)
    assert response.status_code == 204, response.text
    problem(
        await client.get(f"{DEPARTURES}/{draft['id']}", headers=operator.headers),
        404,
        "departure_not_found",
    )
    assert [d["id"] for d in await list_route_departures(client, operator, route["id"])] == [
        published["id"]
    ]


async def test_departure_blocks_reduce_capacity_and_show_in_public_seat_map(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(11))

    blocked = ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/blocks",
            json={
                "blocks": [{"label": "1B", "reason": "medical"}, {"label": "1A", "reason": "guide"}]
            },
            headers=operator.headers,
        )
    )
    assert blocked["capacity_by_class"] == {"standard": 43}
    assert blocked["blocked"] == [
        {"label": "1A", "reason": "guide"},
        {"label": "1B", "reason": "medical"},
    ]
    assert (await get_departure(client, operator, departure["id"]))["blocked"] == blocked["blocked"]

    seat_map = ok(await client.get(f"/api/v1/departures/{departure['id']}/seats"))
    free = {s["label"]: s["free"] for s in seat_map["seats"]}
    assert len(free) == 45
    assert free["1A"] is False
    assert free["1B"] is False
    assert free["1C"] is True
    assert sum(free.values()) == 43
    public = ok(await client.get(f"/api/v1/departures/{departure['id']}"))
    assert public["seats_left"] == 43

    # Only this departure loses the seats; the vehicle keeps them.
    other_map = ok(await client.get(f"/api/v1/departures/{other['id']}/seats"))
    assert all(s["free"] for s in other_map["seats"])
    fetched_vehicle = ok(await client.get(f"{VEHICLES}/{vehicle['id']}", headers=operator.headers))
    assert fetched_vehicle["capacity_by_class"] == {"standard": 45}

    # Replacing with no blocks releases them.
    released = ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/blocks", json={"blocks": []}, headers=operator.headers
        )
    )
    assert released["capacity_by_class"] == {"standard": 45}
    assert released["blocked"] == []
    seat_map = ok(await client.get(f"/api/v1/departures/{departure['id']}/seats"))
    assert all(s["free"] for s in seat_map["seats"])


async def test_departure_blocks_are_validated(client: httpx.AsyncClient, operator: Account) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    no_vehicle = await create_departure(client, operator.headers, route, None, in_days(12), False)
    url = f"{DEPARTURES}/{departure['id']}/blocks"
    ok(
        await client.put(
            url, json={"blocks": [{"label": "2A", "reason": "crew"}]}, headers=operator.headers
        )
    )

    body = problem(
        await client.put(
            url,
            json={
                "blocks": [{"label": "1A", "reason": "crew"}, {"label": "99Z", "reason": "crew"}]
            },
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["blocks[1].label"]
    body = problem(
        await client.put(
            url,
            json={
                "blocks": [{"label": "1A", "reason": "crew"}, {"label": "1A", "reason": "guide"}]
            },
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["blocks"]
    body = problem(
        await client.put(
            f"{DEPARTURES}/{no_vehicle['id']}/blocks",
            json={"blocks": [{"label": "1A", "reason": "crew"}]},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["blocks"]
    # The failed requests left the earlier blocks in place.
    fetched = await get_departure(client, operator, departure["id"])
    assert fetched["blocked"] == [{"label": "2A", "reason": "crew"}]
    assert fetched["capacity_by_class"] == {"standard": 44}


# ---------------------------------------------------------------- publishing


async def test_publish_without_vehicle_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    departure = await create_departure(client, operator.headers, route, None, publish=False)
    body = problem(
        await publish(client, operator, departure["id"]), 409, "departure_not_publishable"
    )
    assert fields(body) == ["vehicle_id"]
    assert (await get_departure(client, operator, departure["id"]))["status"] == "draft"
    problem(await client.get(f"/api/v1/departures/{departure['id']}"), 404)

    vehicle = await create_vehicle(client, operator.headers, "bus")
    ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={"vehicle_id": vehicle["id"]},
            headers=operator.headers,
        )
    )
    assert ok(await publish(client, operator, departure["id"]))["status"] == "published"


async def test_publish_needs_a_fare_for_every_class_on_sale(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, kind="train", duration_days=2)
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper"])
    train = await create_vehicle(client, operator.headers, "train")
    departure = await create_departure(client, operator.headers, route, train, publish=False)

    body = problem(
        await publish(client, operator, departure["id"]), 409, "departure_not_publishable"
    )
    assert fields(body) == ["fares"]
    assert "hard_sleeper" in body["errors"][0]["message"]
    assert (await get_departure(client, operator, departure["id"]))["status"] == "draft"

    # Blocking every hard sleeper takes the class off sale: no fare is needed for it any more.
    hard = [
        {"label": s["label"], "reason": "crew"}
        for s in train["seats"]
        if s["seat_class"] == "hard_sleeper"
    ]
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/blocks",
            json={"blocks": hard},
            headers=operator.headers,
        )
    )
    assert ok(await publish(client, operator, departure["id"]))["status"] == "published"


async def test_departure_fares_override_route_fares_and_make_it_publishable(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, kind="train", duration_days=2)
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper"])
    train = await create_vehicle(client, operator.headers, "train")
    departure = await create_departure(client, operator.headers, route, train, publish=False)
    url = f"{DEPARTURES}/{departure['id']}/fares"

    inherited = ok(await client.get(url, headers=operator.headers))
    assert {(f["seat_class"], f["passenger_type"], f["source"]) for f in inherited} == {
        ("soft_sleeper", "adult", "route"),
        ("soft_sleeper", "child", "route"),
    }

    fares = ok(
        await client.put(
            url,
            json={
                "fares": [
                    {"seat_class": "hard_sleeper", "passenger_type": "adult", "amount": 29900},
                    {"seat_class": "soft_sleeper", "passenger_type": "adult", "amount": 45800},
                ]
            },
            headers=operator.headers,
        )
    )
    by_key = {(f["seat_class"], f["passenger_type"]): f for f in fares}
    assert set(by_key) == {
        ("hard_sleeper", "adult"),
        ("soft_sleeper", "adult"),
        ("soft_sleeper", "child"),
    }
    assert by_key[("hard_sleeper", "adult")]["source"] == "departure"
    assert by_key[("hard_sleeper", "adult")]["price"]["amount"] == 29900
    assert by_key[("soft_sleeper", "adult")]["source"] == "departure"
    assert by_key[("soft_sleeper", "adult")]["price"]["amount"] == 45800
    assert by_key[("soft_sleeper", "child")]["source"] == "route"
    assert by_key[("soft_sleeper", "child")]["price"]["amount"] == 3800
    assert ok(await client.get(url, headers=operator.headers)) == fares
    # The route keeps its own prices.
    route_fares = ok(await client.get(f"{ROUTES}/{route['id']}/fares", headers=operator.headers))
    assert {(f["seat_class"], f["passenger_type"], f["price"]["amount"]) for f in route_fares} == {
        ("soft_sleeper", "adult", 6800),
        ("soft_sleeper", "child", 3800),
    }

    assert ok(await publish(client, operator, departure["id"]))["status"] == "published"
    public = ok(await client.get(f"/api/v1/departures/{departure['id']}"))
    public_prices = {
        (f["seat_class"], f["passenger_type"]): f["price"]["amount"] for f in public["fares"]
    }
    assert public_prices[("soft_sleeper", "adult")] == 45800
    assert public_prices[("hard_sleeper", "adult")] == 29900

    body = problem(
        await client.put(
            url,
            json={
                "fares": [
                    {"seat_class": "hard_sleeper", "passenger_type": "adult", "amount": 1},
                    {"seat_class": "hard_sleeper", "passenger_type": "adult", "amount": 2},
                ]
            },
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["fares[1]"]
    assert ok(await client.get(url, headers=operator.headers)) == fares


async def test_publish_in_the_past_is_refused(client: httpx.AsyncClient, operator: Account) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departs_at = in_days(2)
    departure = await create_departure(client, operator.headers, route, vehicle, departs_at, False)

    with clock.frozen(departs_at + timedelta(hours=1)):
        later = await relogin(client, operator)
        body = problem(
            await publish(client, later, departure["id"]), 409, "departure_not_publishable"
        )
        assert fields(body) == ["departs_at"]
        assert (await get_departure(client, later, departure["id"]))["status"] == "draft"
    with clock.frozen(departs_at):
        later = await relogin(client, operator)
        body = problem(
            await publish(client, later, departure["id"]), 409, "departure_not_publishable"
        )
        assert fields(body) == ["departs_at"]

    # Back at the real "now" the same departure is in the future and can be published.
    assert ok(await publish(client, operator, departure["id"]))["status"] == "published"


async def test_publish_on_a_draft_route_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, publish=False)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    body = problem(
        await publish(client, operator, departure["id"]), 409, "departure_not_publishable"
    )
    assert fields(body) == ["route"]
    assert (await get_departure(client, operator, departure["id"]))["status"] == "draft"

    ok(await client.post(f"{ROUTES}/{route['id']}/publish", headers=operator.headers))
    assert ok(await publish(client, operator, departure["id"]))["status"] == "published"


async def test_publish_reports_every_problem_at_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, publish=False)
    departs_at = in_days(1)
    departure = await create_departure(client, operator.headers, route, None, departs_at, False)
    with clock.frozen(departs_at + timedelta(days=1)):
        later = await relogin(client, operator)
        body = problem(
            await publish(client, later, departure["id"]), 409, "departure_not_publishable"
        )
    assert sorted(fields(body)) == ["departs_at", "route", "vehicle_id"]
    assert all(error["message"] for error in body["errors"])


# ---------------------------------------------------------------- status machine


async def test_status_machine_draft_published_closed_reopened_cancelled(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    departure_id = departure["id"]

    problem(await transition(client, operator, departure_id, "close"), 409, "illegal_transition")
    problem(await transition(client, operator, departure_id, "depart"), 409, "illegal_transition")

    for action, status in [
        ("publish", "published"),
        ("close", "closed"),
        ("reopen", "published"),
        ("cancel", "cancelled"),
    ]:
        body = ok(await transition(client, operator, departure_id, action))
        # Cancelling answers with the departure and what happened to its bookings.
        assert body.get("departure", body)["status"] == status
        assert (await get_departure(client, operator, departure_id))["status"] == status

    for action in ("publish", "reopen", "unpublish", "close", "depart"):
        problem(await transition(client, operator, departure_id, action), 409, "illegal_transition")
    # Cancelling again is a safe retry: nothing left to cancel.
    again = ok(await transition(client, operator, departure_id, "cancel"))
    assert again["bookings_cancelled"] == 0
    assert again["departure"]["status"] == "cancelled"
    problem(
        await client.patch(
            f"{DEPARTURES}/{departure_id}", json={"notes": "again"}, headers=operator.headers
        ),
        409,
        "departure_not_editable",
    )
    fetched = await get_departure(client, operator, departure_id)
    assert fetched["status"] == "cancelled"
    assert fetched["notes"] == ""
    # The public still sees it, as cancelled and not on sale.
    public = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    assert public["status"] == "cancelled"
    assert public["on_sale"] is False


async def test_unpublish_takes_a_departure_back_to_draft(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle)
    assert ok(await transition(client, operator, departure["id"], "unpublish"))["status"] == "draft"
    problem(await client.get(f"/api/v1/departures/{departure['id']}"), 404)


async def test_departed_is_terminal(client: httpx.AsyncClient, operator: Account) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle)
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=3)):
        later = await relogin(client, operator)
        problem(
            await transition(client, later, departure["id"], "depart"), 409, "departure_not_due"
        )
    with clock.frozen(departs_at - timedelta(minutes=30)):
        later = await relogin(client, operator)
        departed = ok(await transition(client, later, departure["id"], "depart"))
    assert departed["status"] == "departed"
    for action in ("publish", "reopen", "unpublish", "close", "cancel", "depart"):
        problem(
            await transition(client, operator, departure["id"], action), 409, "illegal_transition"
        )
    problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}", json={"notes": "late"}, headers=operator.headers
        ),
        409,
        "departure_not_editable",
    )
    problem(
        await client.delete(f"{DEPARTURES}/{departure['id']}", headers=operator.headers),
        409,
        "departure_not_draft",
    )
    assert (await get_departure(client, operator, departure["id"]))["status"] == "departed"


# ---------------------------------------------------------------- bulk scheduling


async def test_bulk_schedule_weekends_with_skips_in_shanghai(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    start = local_today() + timedelta(days=10)
    end = start + timedelta(days=48)
    weekend = [
        start + timedelta(days=n)
        for n in range((end - start).days + 1)
        if (start + timedelta(days=n)).isoweekday() in (6, 7)
    ]
    skips = [weekend[0], weekend[3], weekend[-1]]
    expected = [day for day in weekend if day not in skips]

    body = ok(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                start,
                end,
                vehicle_id=vehicle["id"],
                skip_dates=[d.isoformat() for d in skips],
                sales_open_days_before=30,
                sales_close_minutes_before=60,
            ),
        ),
        201,
    )
    assert body["created"] == len(expected)
    departures = body["departures"]
    assert len(departures) == len(expected)
    assert [parse(d["departs_at"]).date() for d in departures] == expected
    for departure, day in zip(departures, expected, strict=True):
        assert departure["departs_at"] == f"{day.isoformat()}T08:30:00+08:00"
        assert parse(departure["departs_at"]).astimezone(UTC) == datetime.combine(
            day, time(0, 30), tzinfo=UTC
        )
        assert departure["returns_at"] == f"{day.isoformat()}T18:00:00+08:00"
        assert departure["time_zone"] == "Asia/Shanghai"
        assert departure["status"] == "draft"
        assert departure["vehicle_id"] == vehicle["id"]
        assert departure["capacity_by_class"] == {"standard": 45}
        assert departure["sales_close_at"] == f"{day.isoformat()}T07:30:00+08:00"
        assert departure["sales_open_at"] == (
            f"{(day - timedelta(days=30)).isoformat()}T08:30:00+08:00"
        )

    listed = await list_route_departures(client, operator, route["id"])
    assert [d["departs_at"] for d in listed] == [d["departs_at"] for d in departures]
    assert {d["id"] for d in listed} == {d["id"] for d in departures}
    # The list's date filter works on local dates.
    filtered = ok(
        await client.get(
            DEPARTURES,
            params={"from": expected[0].isoformat(), "to": expected[0].isoformat()},
            headers=operator.headers,
        )
    )
    assert [d["id"] for d in filtered["items"]] == [departures[0]["id"]]


async def test_bulk_schedule_in_berlin_across_a_dst_change(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    change = next_berlin_dst_change(local_today() + timedelta(days=20))
    start, end = change - timedelta(days=14), change + timedelta(days=14)
    body = ok(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(start, end, time_zone="Europe/Berlin", return_time="19:15"),
        ),
        201,
    )
    departures = body["departures"]
    expected = [
        start + timedelta(days=n)
        for n in range(29)
        if (start + timedelta(days=n)).isoweekday() in (6, 7)
    ]
    assert body["created"] == len(expected) == len(departures)
    offsets = set()
    for departure, day in zip(departures, expected, strict=True):
        assert departure["time_zone"] == "Europe/Berlin"
        local = parse(departure["departs_at"])
        assert local.date() == day
        assert local.time() == time(8, 30)
        offset = datetime.combine(day, time(8, 30), tzinfo=BERLIN).utcoffset()
        assert offset is not None
        assert local.utcoffset() == offset
        hours = int(offset.total_seconds() // 3600)
        assert departure["departs_at"] == f"{day.isoformat()}T08:30:00+0{hours}:00"
        assert local.astimezone(UTC).time() == time(8 - hours, 30)
        assert parse(departure["returns_at"]).time() == time(19, 15)
        offsets.add(hours)
    # Both sides of the change are in the season: 08:30 local is 07:30Z in winter, 06:30Z in
    # summer.
    assert offsets == {1, 2}
    listed = await list_route_departures(client, operator, route["id"])
    assert [d["departs_at"] for d in listed] == [d["departs_at"] for d in departures]


async def test_bulk_schedule_places_stops_from_the_template(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, kind="train", duration_days=3)
    saturday = next_saturday(local_today() + timedelta(days=7))
    body = ok(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                saturday,
                saturday + timedelta(days=7),
                weekdays=[6],
                departure_time="21:10",
                return_time="07:40",
                stops=[
                    {"kind": "boarding", "name": STOP_NAME, "time": "20:30"},
                    {
                        "kind": "dropoff",
                        "name": {"en": "Xi'an"},
                        "address": {"en": "Xi'an Station"},
                        "time": "06:55",
                        "day_offset": 2,
                    },
                ],
            ),
        ),
        201,
    )
    assert body["created"] == 2
    for departure, day in zip(
        body["departures"], [saturday, saturday + timedelta(days=7)], strict=True
    ):
        assert departure["departs_at"] == f"{day.isoformat()}T21:10:00+08:00"
        assert departure["returns_at"] == f"{(day + timedelta(days=2)).isoformat()}T07:40:00+08:00"
        assert departure["stops"] == [
            {
                "kind": "boarding",
                "name": STOP_NAME,
                "address": None,
                "at": f"{day.isoformat()}T20:30:00+08:00",
            },
            {
                "kind": "dropoff",
                "name": {"en": "Xi'an"},
                "address": {"en": "Xi'an Station"},
                "at": f"{(day + timedelta(days=2)).isoformat()}T06:55:00+08:00",
            },
        ]
        assert (await get_departure(client, operator, departure["id"]))["stops"] == departure[
            "stops"
        ]


async def test_bulk_schedule_stop_outside_the_window_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    saturday = next_saturday(local_today() + timedelta(days=7))
    body = problem(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                saturday,
                saturday + timedelta(days=14),
                stops=[
                    {"name": STOP_NAME, "time": "08:00"},
                    {"name": STOP_NAME, "time": "19:00"},
                ],
            ),
        ),
        400,
    )
    assert fields(body) == ["stops[1].time"]
    assert await departure_total(client, operator, route["id"]) == 0


async def test_bulk_schedule_can_publish_everything(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    saturday = next_saturday(local_today() + timedelta(days=5))
    body = ok(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                saturday, saturday + timedelta(days=20), vehicle_id=vehicle["id"], publish=True
            ),
        ),
        201,
    )
    assert body["created"] == 6
    assert {d["status"] for d in body["departures"]} == {"published"}
    listed = ok(
        await client.get(
            DEPARTURES,
            params={"route_id": route["id"], "status": "published"},
            headers=operator.headers,
        )
    )
    assert listed["total"] == 6
    public = ok(await client.get(f"/api/v1/routes/{route['slug']}/departures"))
    assert public["total"] == 6
    assert all(d["on_sale"] and d["seats_left"] == 45 for d in public["items"])


async def test_bulk_publish_without_fares_creates_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    saturday = next_saturday(local_today() + timedelta(days=5))
    body = problem(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                saturday, saturday + timedelta(days=20), vehicle_id=vehicle["id"], publish=True
            ),
        ),
        409,
        "departure_not_publishable",
    )
    assert fields(body) == ["fares"]
    assert await departure_total(client, operator, route["id"]) == 0
    assert await departure_total(client, operator) == 0

    # Without a vehicle it cannot be published either, and still nothing is created.
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    body = problem(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(saturday, saturday + timedelta(days=20), publish=True),
        ),
        409,
        "departure_not_publishable",
    )
    assert fields(body) == ["vehicle_id"]
    assert await departure_total(client, operator) == 0


async def test_bulk_schedule_with_a_date_in_the_past_creates_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    start = local_today() - timedelta(days=7)
    body = problem(
        await schedule(
            client, operator, route["id"], season_payload(start, start + timedelta(days=30))
        ),
        400,
    )
    assert fields(body) == ["start_date"]
    assert await departure_total(client, operator) == 0


async def test_bulk_schedule_refuses_duplicate_departure_times(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    saturday = next_saturday(local_today() + timedelta(days=14))
    existing_at = datetime.combine(saturday + timedelta(days=7), time(8, 30), tzinfo=SHANGHAI)
    existing = ok(
        await post_departure(
            client,
            operator,
            departure_payload(
                route,
                None,
                existing_at.astimezone(UTC),
                returns_at=(existing_at + timedelta(hours=9)).isoformat(),
            ),
        ),
        201,
    )
    body = problem(
        await schedule(
            client, operator, route["id"], season_payload(saturday, saturday + timedelta(days=21))
        ),
        409,
        "departures_exist",
    )
    assert existing_at.isoformat() in body["detail"]
    listed = await list_route_departures(client, operator, route["id"])
    assert [d["id"] for d in listed] == [existing["id"]]

    # A cancelled departure does not hold its slot.
    ok(await transition(client, operator, existing["id"], "cancel"))
    created = ok(
        await schedule(
            client, operator, route["id"], season_payload(saturday, saturday + timedelta(days=21))
        ),
        201,
    )
    assert created["created"] == 7
    assert await departure_total(client, operator, route["id"]) == 8


async def test_bulk_schedule_twice_is_refused_the_second_time(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    saturday = next_saturday(local_today() + timedelta(days=14))
    payload = season_payload(saturday, saturday + timedelta(days=14), weekdays=[7])
    assert ok(await schedule(client, operator, route["id"], payload), 201)["created"] == 2
    problem(await schedule(client, operator, route["id"], payload), 409, "departures_exist")
    assert await departure_total(client, operator, route["id"]) == 2


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(
            lambda start: season_payload(
                start,
                start + timedelta(days=30),
                skip_dates=[(start + timedelta(days=31)).isoformat()],
            ),
            "skip_dates[0]",
            id="skip-date-after-season",
        ),
        pytest.param(
            lambda start: season_payload(
                start,
                start + timedelta(days=30),
                skip_dates=[start.isoformat(), (start - timedelta(days=1)).isoformat()],
            ),
            "skip_dates[1]",
            id="skip-date-before-season",
        ),
        pytest.param(
            # Saturday to Monday: no Wednesday.
            lambda start: season_payload(start, start + timedelta(days=2), weekdays=[3]),
            "weekdays",
            id="no-matching-weekday",
        ),
        pytest.param(
            lambda start: season_payload(
                start, start, weekdays=[6], skip_dates=[start.isoformat()]
            ),
            "weekdays",
            id="every-date-skipped",
        ),
        pytest.param(
            lambda start: season_payload(
                start, start + timedelta(days=366), weekdays=[1, 2, 3, 4, 5, 6, 7]
            ),
            "end_date",
            id="more-than-366",
        ),
        pytest.param(
            lambda start: season_payload(start, start - timedelta(days=1)),
            "end_date",
            id="end-before-start",
        ),
        pytest.param(
            lambda start: season_payload(start, start + timedelta(days=7), time_zone="Nowhere/X"),
            "time_zone",
            id="unknown-time-zone",
        ),
        pytest.param(
            lambda start: season_payload(start, start + timedelta(days=7), return_time="08:00"),
            "return_time",
            id="return-before-departure",
        ),
        pytest.param(
            lambda start: season_payload(start, start + timedelta(days=7), weekdays=[0]),
            "weekdays[0]",
            id="weekday-zero",
        ),
    ],
)
async def test_bulk_schedule_rejects_invalid_seasons(
    client: httpx.AsyncClient,
    operator: Account,
    build: Callable[[date], dict[str, Any]],
    field: str,
) -> None:
    route = await create_route(client, operator.headers)
    start = next_saturday(local_today() + timedelta(days=3))
    body = problem(await schedule(client, operator, route["id"], build(start)), 400)
    assert fields(body) == [field]
    assert await departure_total(client, operator) == 0


async def test_bulk_schedule_of_exactly_366_departures_is_allowed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    start = local_today() + timedelta(days=2)
    body = ok(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(start, start + timedelta(days=365), weekdays=[1, 2, 3, 4, 5, 6, 7]),
        ),
        201,
    )
    assert body["created"] == 366
    assert await departure_total(client, operator, route["id"]) == 366


async def test_bulk_schedule_rejects_a_vehicle_of_another_kind(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    train = await create_vehicle(client, operator.headers, "train")
    start = next_saturday(local_today() + timedelta(days=3))
    body = problem(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(start, start + timedelta(days=7), vehicle_id=train["id"]),
        ),
        400,
    )
    assert fields(body) == ["vehicle_id"]
    assert await departure_total(client, operator) == 0


# ---------------------------------------------------------------- isolation between operators


@pytest.fixture
async def other_operator(make_operator: Callable[..., Any]) -> Account:
    account: Account = await make_operator("yy-coach")
    return account


async def test_other_operator_cannot_reach_vehicles(
    client: httpx.AsyncClient, operator: Account, other_operator: Account
) -> None:
    vehicle = await create_vehicle(client, operator.headers, "train")
    url = f"{VEHICLES}/{vehicle['id']}"
    headers = other_operator.headers
    problem(await client.get(url, headers=headers), 404, "vehicle_not_found")
    problem(await client.patch(url, json={"name": "Mine"}, headers=headers), 404)
    problem(await client.delete(url, headers=headers), 404)
    problem(await client.put(f"{url}/seats", json={"layout": TRAIN_LAYOUT}, headers=headers), 404)
    problem(
        await client.put(f"{url}/seats/01-01L/block", json={"reason": "crew"}, headers=headers),
        404,
    )
    problem(await client.delete(f"{url}/seats/01-01L/block", headers=headers), 404)

    # Nothing changed for the owner.
    fetched = ok(await client.get(url, headers=operator.headers))
    assert fetched == vehicle
    assert ok(await client.get(VEHICLES, headers=headers))["total"] == 0
    assert ok(await client.get(VEHICLES, headers=operator.headers))["total"] == 1


async def test_other_operator_cannot_reach_departures(
    client: httpx.AsyncClient, operator: Account, other_operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    draft = await create_departure(client, operator.headers, route, vehicle, in_days(8), False)
    published = await create_departure(client, operator.headers, route, vehicle, in_days(9))
    headers = other_operator.headers

    for departure in (draft, published):
        url = f"{DEPARTURES}/{departure['id']}"
        problem(await client.get(url, headers=headers), 404, "departure_not_found")
        problem(await client.patch(url, json={"notes": "mine"}, headers=headers), 404)
        problem(await client.delete(url, headers=headers), 404)
        for action in ("publish", "unpublish", "close", "reopen", "cancel", "depart"):
            problem(await client.post(f"{url}/{action}", headers=headers), 404)
        problem(await client.get(f"{url}/fares", headers=headers), 404)
        problem(
            await client.put(
                f"{url}/fares",
                json={
                    "fares": [{"seat_class": "standard", "passenger_type": "adult", "amount": 1}]
                },
                headers=headers,
            ),
            404,
        )
        problem(
            await client.put(
                f"{url}/blocks",
                json={"blocks": [{"label": "1A", "reason": "crew"}]},
                headers=headers,
            ),
            404,
        )

    # Nothing changed for the owner.
    assert await get_departure(client, operator, draft["id"]) == draft
    assert await get_departure(client, operator, published["id"]) == published
    fares = ok(await client.get(f"{DEPARTURES}/{published['id']}/fares", headers=operator.headers))
    assert {f["source"] for f in fares} == {"route"}

    # B's lists exclude A's objects, even when filtered by A's route.
    assert await departure_total(client, other_operator) == 0
    assert await departure_total(client, other_operator, route["id"]) == 0
    assert await departure_total(client, operator) == 2


async def test_other_operator_cannot_use_routes_or_vehicles_it_does_not_own(
    client: httpx.AsyncClient, operator: Account, other_operator: Account
) -> None:
    route_a = await create_route(client, operator.headers, slug="a-line")
    vehicle_a = await create_vehicle(client, operator.headers, "bus")
    route_b = await create_route(client, other_operator.headers, slug="b-line")
    vehicle_b = await create_vehicle(client, other_operator.headers, "bus")
    departs_at = in_days(10)

    body = problem(
        await post_departure(
            client, other_operator, departure_payload(route_a, vehicle_b, departs_at)
        ),
        400,
        "route_not_found",
    )
    assert fields(body) == ["route_id"]
    body = problem(
        await post_departure(
            client, other_operator, departure_payload(route_b, vehicle_a, departs_at)
        ),
        400,
        "vehicle_not_found",
    )
    assert fields(body) == ["vehicle_id"]

    start = next_saturday(local_today() + timedelta(days=3))
    problem(
        await schedule(client, other_operator, route_a["id"], season_payload(start, start)),
        404,
        "route_not_found",
    )
    body = problem(
        await schedule(
            client,
            other_operator,
            route_b["id"],
            season_payload(start, start, vehicle_id=vehicle_a["id"]),
        ),
        400,
    )
    assert fields(body) == ["vehicle_id"]
    # B's own ones work; A sees none of them.
    mine = ok(
        await post_departure(
            client, other_operator, departure_payload(route_b, vehicle_b, departs_at)
        ),
        201,
    )
    assert await departure_total(client, operator) == 0
    assert await departure_total(client, other_operator) == 1
    problem(await client.get(f"{DEPARTURES}/{mine['id']}", headers=operator.headers), 404)
    vehicles_a = ok(await client.get(VEHICLES, headers=operator.headers))
    assert [v["id"] for v in vehicles_a["items"]] == [vehicle_a["id"]]
    vehicles_b = ok(await client.get(VEHICLES, headers=other_operator.headers))
    assert [v["id"] for v in vehicles_b["items"]] == [vehicle_b["id"]]


async def test_replacing_a_seat_map_drops_draft_blocks_on_removed_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/blocks",
            json={"blocks": [{"label": "11E", "reason": "crew"}]},
            headers=operator.headers,
        )
    )
    ok(
        await client.put(
            f"{VEHICLES}/{vehicle['id']}/seats",
            json={"seats": [seat("1A"), seat("1B")]},
            headers=operator.headers,
        )
    )
    fetched = await get_departure(client, operator, departure["id"])
    assert fetched["blocked"] == []
    assert fetched["capacity_by_class"] == {"standard": 2}


async def test_publish_refused_when_no_seat_is_on_sale(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = ok(
        await client.post(
            VEHICLES,
            json={"kind": "bus", "name": "Van", "seats": [seat("1A", blocked_reason="crew")]},
            headers=operator.headers,
        ),
        201,
    )
    assert vehicle["capacity_by_class"] == {}
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    body = problem(
        await publish(client, operator, departure["id"]), 409, "departure_not_publishable"
    )
    assert fields(body) == ["vehicle_id"]
    assert (await get_departure(client, operator, departure["id"]))["status"] == "draft"


async def test_bulk_schedule_refuses_sales_that_would_close_before_they_open(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    start = next_saturday(local_today() + timedelta(days=3))
    body = problem(
        await schedule(
            client,
            operator,
            route["id"],
            season_payload(
                start,
                start + timedelta(days=7),
                sales_open_days_before=0,
                sales_close_minutes_before=60,
            ),
        ),
        400,
    )
    assert fields(body) == ["sales_open_days_before"]
    assert await departure_total(client, operator) == 0


async def test_other_operators_vehicle_cannot_be_assigned_by_patch(
    client: httpx.AsyncClient, operator: Account, other_operator: Account
) -> None:
    vehicle_a = await create_vehicle(client, operator.headers, "bus")
    route_b = await create_route(client, other_operator.headers, slug="b-line")
    departure_b = await create_departure(
        client, other_operator.headers, route_b, None, publish=False
    )
    body = problem(
        await client.patch(
            f"{DEPARTURES}/{departure_b['id']}",
            json={"vehicle_id": vehicle_a["id"]},
            headers=other_operator.headers,
        ),
        400,
        "vehicle_not_found",
    )
    assert fields(body) == ["vehicle_id"]
    assert (await get_departure(client, other_operator, departure_b["id"]))["vehicle_id"] is None


async def test_moving_a_departure_away_from_its_stops_is_refused(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    departs_at = in_days(10)
    departure = await create_departure(client, operator.headers, route, None, departs_at, False)
    assert len(departure["stops"]) == 1
    week_later = departs_at + timedelta(days=7)
    body = problem(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={
                "departs_at": week_later.isoformat(),
                "returns_at": (week_later + timedelta(hours=9)).isoformat(),
                "sales_close_at": week_later.isoformat(),
            },
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["stops"]
    assert await get_departure(client, operator, departure["id"]) == departure

    # Moving the stops along with it is fine.
    moved = ok(
        await client.patch(
            f"{DEPARTURES}/{departure['id']}",
            json={
                "departs_at": week_later.isoformat(),
                "returns_at": (week_later + timedelta(hours=9)).isoformat(),
                "sales_close_at": week_later.isoformat(),
                "stops": [{"name": STOP_NAME, "at": week_later.isoformat()}],
            },
            headers=operator.headers,
        )
    )
    assert moved["departs_at"] == week_later.isoformat()
    assert moved["stops"][0]["at"] == week_later.isoformat()


async def test_reopen_only_reopens_a_closed_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    draft = await create_departure(client, operator.headers, route, vehicle, publish=False)
    problem(await transition(client, operator, draft["id"], "reopen"), 409, "illegal_transition")
    assert (await get_departure(client, operator, draft["id"]))["status"] == "draft"
    ok(await transition(client, operator, draft["id"], "publish"))
    ok(await transition(client, operator, draft["id"], "close"))
    assert ok(await transition(client, operator, draft["id"], "reopen"))["status"] == "published"


async def test_a_departure_on_sale_cannot_move_into_the_past(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle)
    past = clock.now() - timedelta(days=1)
    response = await client.patch(
        f"{DEPARTURES}/{departure['id']}",
        json={
            "departs_at": past.isoformat(),
            "returns_at": (past + timedelta(hours=8)).isoformat(),
            "stops": [],
        },
        headers=operator.headers,
    )
    problem(response, 400, "validation_error")
    assert response.json()["errors"][0]["field"] == "departs_at"
    after = await get_departure(client, operator, departure["id"])
    assert after["departs_at"] == departure["departs_at"]


async def test_sales_close_at_departure_follows_a_moved_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    vehicle = await create_vehicle(client, operator.headers, "bus")
    departure = await create_departure(client, operator.headers, route, vehicle, publish=False)
    assert departure["sales_close_at"] == departure["departs_at"]
    earlier = datetime.fromisoformat(departure["departs_at"]) - timedelta(days=1)
    response = await client.patch(
        f"{DEPARTURES}/{departure['id']}",
        json={
            "departs_at": earlier.isoformat(),
            "returns_at": (earlier + timedelta(hours=9)).isoformat(),
            "stops": [],
        },
        headers=operator.headers,
    )
    moved = ok(response)
    assert moved["departs_at"] == earlier.isoformat()
    assert moved["sales_close_at"] == moved["departs_at"]
