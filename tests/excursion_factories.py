"""A small sightseeing train with confirmed travellers, excursions and coaches, through the
API (the coach-excursion tests, API, pages and browser, share it)."""

from __future__ import annotations

from typing import Any

import httpx

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core.database import write_transaction
from tests.assertions import ok
from tests.factories import create_departure, create_route, in_days, set_route_fares

# Car 1: 4 compartments of 4 soft-sleeper berths (16); car 2: 4 of 6 hard-sleeper berths (24).
SMALL_TRAIN = {
    "type": "train",
    "cars": [
        {"car": 1, "seat_class": "soft_sleeper", "compartments": 4, "berths_per_compartment": 4},
        {"car": 2, "seat_class": "hard_sleeper", "compartments": 4, "berths_per_compartment": 6},
    ],
}
TRIP_DAYS = 5


async def train_departure(
    client: httpx.AsyncClient, headers: dict[str, str], slug: str = "xinjiang-train"
) -> dict[str, Any]:
    """A published five-day train departure leaving in ten days at 08:00 (Asia/Shanghai)."""
    route = await create_route(client, headers, slug=slug, kind="train", duration_days=TRIP_DAYS)
    vehicle = ok(
        await client.post(
            "/api/v1/operator/vehicles",
            json={"kind": "train", "name": "Y359", "code": "Y359", "layout": SMALL_TRAIN},
            headers=headers,
        ),
        201,
    )
    await set_route_fares(client, headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    return await create_departure(client, headers, route, vehicle, in_days(10))


async def confirmed_booking(
    client: httpx.AsyncClient,
    departure_id: str,
    seat_class: str,
    names: list[str],
    children: int = 0,
) -> dict[str, Any]:
    """A paid booking of `names` (the last `children` of them children) in one class."""
    counts = [{"seat_class": seat_class, "passenger_type": "adult", "count": len(names) - children}]
    if children:
        counts.append({"seat_class": seat_class, "passenger_type": "child", "count": children})
    created = ok(
        await client.post(
            "/api/v1/bookings",
            json={
                "departure_id": departure_id,
                "counts": counts,
                "contact": {
                    "name": names[0],
                    "email": "a@example.com",
                    "phone": "+86 138 0013 8000",
                },
                "passengers": [{"name": name} for name in names],
            },
        ),
        201,
    )
    reference = created["booking"]["reference"]
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    # The booking as created, with its access token (a guest's rebooking needs it).
    return {**created["booking"], "access_token": created["access_token"]}


def excursion_body(day: int = 2, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "day_number": day,
        "sight": {"zh_Hans": "天山天池", "en": "Tianshan Heavenly Lake"},
        "meeting_point": {"zh_Hans": "乌鲁木齐站出站口", "en": "Ürümqi Station, exit"},
        "meet_time": "07:40",
        "return_time": "17:30",
    }
    body.update(overrides)
    return body


def coach_body(capacity: int, number: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "capacity": capacity,
        "plate": f"新A·1000{number}",
        "company": "天山旅游客运",
        "driver_name": f"司机{number}",
        "driver_phone": f"+86 139 0000 000{number}",
        "guide_name": f"导游{number}",
        "guide_phone": f"+86 137 0000 000{number}",
    }
    body.update(overrides)
    return body


async def excursion_with_coaches(
    client: httpx.AsyncClient, headers: dict[str, str], departure_id: str, capacities: list[int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    excursion = ok(
        await client.post(
            f"/api/v1/operator/departures/{departure_id}/excursions",
            json=excursion_body(),
            headers=headers,
        ),
        201,
    )
    coaches = [
        ok(
            await client.post(
                f"/api/v1/operator/excursions/{excursion['id']}/coaches",
                json=coach_body(capacity, number),
                headers=headers,
            ),
            201,
        )
        for number, capacity in enumerate(capacities, start=1)
    ]
    return excursion, coaches
