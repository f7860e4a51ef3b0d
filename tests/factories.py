"""Request bodies and API steps that many tests share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.core import clock


def route_payload(
    slug: str = "picking-line", kind: str = "bus", **overrides: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "slug": slug,
        "kind": kind,
        "themes": ["picking", "family"],
        "name": {"zh_Hans": "采摘号", "en": "Picking Line"},
        "description": {
            "zh_Hans": "周末采摘樱桃和桑葚",
            "en": "Weekend cherry and mulberry picking",
        },
        "duration_days": 1,
        "meeting_point": {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"},
    }
    payload.update(overrides)
    return payload


def itinerary_payload(days: int = 1) -> dict[str, Any]:
    return {
        "days": [
            {
                "day_number": day,
                "title": {"zh_Hans": f"第{day}天", "en": f"Day {day}"},
                "night_on_train": False,
                "stops": [
                    {
                        "place": {"zh_Hans": "樱桃园", "en": "Cherry orchard"},
                        "arrive_time": "09:30",
                        "depart_time": "11:30",
                        "activities": [{"zh_Hans": "摘樱桃", "en": "Cherry picking"}],
                        "coach_transfer": False,
                    }
                ],
            }
            for day in range(1, days + 1)
        ]
    }


BUS_LAYOUT = {"type": "bus", "rows": 11, "seat_letters": "ABCD", "last_row_letters": "ABCDE"}
TRAIN_LAYOUT = {
    "type": "train",
    "cars": [
        {"car": 1, "seat_class": "soft_sleeper", "compartments": 2, "berths_per_compartment": 4},
        {"car": 2, "seat_class": "hard_sleeper", "compartments": 2, "berths_per_compartment": 6},
    ],
}


def in_days(days: float, hour: int = 8) -> datetime:
    """A moment `days` from now, at a whole hour, in China Standard Time."""
    moment = clock.now() + timedelta(days=days)
    return moment.astimezone(clock.zone("Asia/Shanghai")).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


async def create_route(
    client: httpx.AsyncClient, headers: dict[str, str], publish: bool = True, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/operator/routes", json=route_payload(**overrides), headers=headers
    )
    assert response.status_code == 201, response.text
    route = response.json()
    days = route["duration_days"]
    response = await client.put(
        f"/api/v1/operator/routes/{route['id']}/itinerary",
        json=itinerary_payload(days),
        headers=headers,
    )
    assert response.status_code == 200, response.text
    if publish:
        response = await client.post(
            f"/api/v1/operator/routes/{route['id']}/publish", headers=headers
        )
        assert response.status_code == 200, response.text
        route = response.json()
    return route


async def create_vehicle(
    client: httpx.AsyncClient, headers: dict[str, str], kind: str = "bus"
) -> dict[str, Any]:
    layout = BUS_LAYOUT if kind == "bus" else TRAIN_LAYOUT
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": kind, "name": f"{kind} one", "code": "ZZ-01", "layout": layout},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def set_route_fares(
    client: httpx.AsyncClient, headers: dict[str, str], route_id: str, seat_classes: list[str]
) -> None:
    fares = []
    for index, seat_class in enumerate(seat_classes):
        fares.append(
            {"seat_class": seat_class, "passenger_type": "adult", "amount": 6800 + index * 1000}
        )
        fares.append(
            {"seat_class": seat_class, "passenger_type": "child", "amount": 3800 + index * 1000}
        )
    response = await client.put(
        f"/api/v1/operator/routes/{route_id}/fares", json={"fares": fares}, headers=headers
    )
    assert response.status_code == 200, response.text


async def create_departure(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    route: dict[str, Any],
    vehicle: dict[str, Any] | None,
    departs_at: datetime | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    departs_at = departs_at or in_days(10)
    payload: dict[str, Any] = {
        "route_id": route["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat()
        if route["duration_days"] == 1
        else (departs_at + timedelta(days=route["duration_days"])).isoformat(),
        "stops": [
            {
                "kind": "pickup",
                "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"},
                "at": departs_at.isoformat(),
            }
        ],
    }
    if vehicle is not None:
        payload["vehicle_id"] = vehicle["id"]
    response = await client.post("/api/v1/operator/departures", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    departure = response.json()
    if publish:
        response = await client.post(
            f"/api/v1/operator/departures/{departure['id']}/publish", headers=headers
        )
        assert response.status_code == 200, response.text
        departure = response.json()
    return dict(departure)


async def published_bus_departure(
    client: httpx.AsyncClient, headers: dict[str, str], slug: str = "picking-line"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published bus route with fares, a 45-seat bus and one published departure."""
    route = await create_route(client, headers, slug=slug)
    vehicle = await create_vehicle(client, headers, "bus")
    await set_route_fares(client, headers, route["id"], ["standard"])
    departure = await create_departure(client, headers, route, vehicle)
    return route, vehicle, departure
