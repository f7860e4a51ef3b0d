"""Coach excursions through the operator API against a real database: planning excursions and
coaches (validated, scoped to the operator, audited), assigning the departure's confirmed
travellers automatically (parties and cars together, coach by coach, within capacity) and
by hand, what cancellations and new bookings do to the plan, the coach manifest as JSON and
CSV, and two operators moving parties at once never filling a coach past its capacity."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from app.accounts.tables import AuditEntry
from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.core.database import write_transaction
from app.excursions.tables import CoachAssignment
from tests.assertions import fields, ok, problem
from tests.conftest import Account
from tests.excursion_factories import (
    coach_body,
    confirmed_booking,
    excursion_body,
    excursion_with_coaches,
    train_departure,
)
from tests.factories import create_departure, in_days

DEPARTURES = "/api/v1/operator/departures"
EXCURSIONS = "/api/v1/operator/excursions"


def plan_of(body: dict[str, Any]) -> dict[str, list[str]]:
    """Coach label -> references on it (a reference once per coach), and "-" the unassigned."""
    plan = {
        item["coach"]["label"]: [party["reference"] for party in item["parties"]]
        for item in body["coaches"]
    }
    plan["-"] = [party["reference"] for party in body["unassigned"]]
    return plan


async def assign(
    client: httpx.AsyncClient, account: Account, excursion_id: str, body: dict[str, Any]
) -> httpx.Response:
    # In English: the tests read the messages.
    headers = {**account.headers, "Accept-Language": "en"}
    return await client.post(f"{EXCURSIONS}/{excursion_id}/assignments", json=body, headers=headers)


async def cancel(reference: str) -> None:
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.cancelled, actor="test", reason="guest"
        )


# ---------------------------------------------------------------- planning


async def test_an_operator_plans_an_excursion_and_its_coaches(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    url = f"{DEPARTURES}/{departure['id']}/excursions"
    created = ok(await client.post(url, json=excursion_body(day=2), headers=operator.headers), 201)
    assert created["day_number"] == 2
    assert created["sight"] == {"zh_Hans": "天山天池", "en": "Tianshan Heavenly Lake"}
    # Times are the departure's local times on day 2 of the trip.
    assert created["meet_at"].endswith("07:40:00+08:00")
    assert created["return_at"].endswith("17:30:00+08:00")
    assert created["date"] == created["meet_at"][:10]
    assert created["date"] > departure["departs_at"][:10]
    assert (created["coaches"], created["capacity"], created["travellers"]) == ([], 0, 0)

    coach = ok(
        await client.post(
            f"{EXCURSIONS}/{created['id']}/coaches", json=coach_body(33), headers=operator.headers
        ),
        201,
    )
    assert coach["label"] == "1"
    assert coach["position"] == 1
    assert (coach["capacity"], coach["assigned"], coach["free"]) == (33, 0, 33)
    assert coach["plate"] == "新A·10001"
    assert (coach["driver_name"], coach["guide_name"]) == ("司机1", "导游1")
    second = ok(
        await client.post(
            f"{EXCURSIONS}/{created['id']}/coaches",
            json=coach_body(20, 2, label="B", guide_name="", guide_phone=None),
            headers=operator.headers,
        ),
        201,
    )
    assert (second["label"], second["position"], second["guide_phone"]) == ("B", 2, "")
    listed = ok(await client.get(f"{EXCURSIONS}/{created['id']}/coaches", headers=operator.headers))
    assert [c["label"] for c in listed] == ["1", "B"]

    changed = ok(
        await client.patch(
            f"{EXCURSIONS}/{created['id']}/coaches/{second['id']}",
            json={"plate": "新A·99999", "driver_phone": "+86 139 1111 2222"},
            headers=operator.headers,
        )
    )
    assert (changed["plate"], changed["driver_phone"]) == ("新A·99999", "+86 139 1111 2222")
    moved = ok(
        await client.patch(
            f"{EXCURSIONS}/{created['id']}",
            json={"day_number": 3, "meet_time": "08:10", "notes": "带好护照"},
            headers=operator.headers,
        )
    )
    assert moved["meet_at"].endswith("08:10:00+08:00")
    assert moved["day_number"] == 3
    assert moved["capacity"] == 53
    listing = ok(await client.get(url, headers=operator.headers))
    assert [item["id"] for item in listing] == [created["id"]]
    assert listing[0]["notes"] == "带好护照"

    response = await client.delete(
        f"{EXCURSIONS}/{created['id']}/coaches/{second['id']}", headers=operator.headers
    )
    assert response.status_code == 204
    response = await client.delete(f"{EXCURSIONS}/{created['id']}", headers=operator.headers)
    assert response.status_code == 204
    assert ok(await client.get(url, headers=operator.headers)) == []
    problem(await client.get(f"{EXCURSIONS}/{created['id']}", headers=operator.headers), 404)

    # Every change is in the operator's audit log.
    logged = await AuditEntry.select(AuditEntry.method, AuditEntry.route).run()
    routes = Counter((row["method"], row["route"]) for row in logged)
    assert routes[("POST", "/api/v1/operator/excursions/{excursion_id}/coaches")] == 2
    assert routes[("DELETE", "/api/v1/operator/excursions/{excursion_id}")] == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (excursion_body(day=6), "day_number", "validation_error"),
        (excursion_body(day=0), "day_number", "validation_error"),
        (excursion_body(return_time="07:00"), "return_time", "validation_error"),
        (excursion_body(meet_time="7:40"), "meet_time", "validation_error"),
        (excursion_body(day=1, meet_time="06:00"), "meet_time", "validation_error"),
        (excursion_body(sight={}), "sight", "validation_error"),
        (excursion_body(meeting_point={"fr": "gare"}), "meeting_point", "validation_error"),
        ({**excursion_body(), "price": 100}, "price", "validation_error"),
    ],
)
async def test_an_excursion_that_does_not_fit_the_trip_is_refused_naming_the_field(
    client: httpx.AsyncClient, operator: Account, body: dict[str, Any], field: str, code: str
) -> None:
    departure = await train_departure(client, operator.headers)
    response = await client.post(
        f"{DEPARTURES}/{departure['id']}/excursions", json=body, headers=operator.headers
    )
    found = problem(response, 400, code)
    assert field in " ".join(fields(found)), found


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (coach_body(0), "capacity"),
        (coach_body(121), "capacity"),
        (coach_body(30, plate=" "), "plate"),
        (coach_body(30, driver_phone="call me"), "driver_phone"),
        (coach_body(30, driver_name=""), "driver_name"),
        (coach_body(30, guide_name=""), "guide_name"),
    ],
)
async def test_a_coach_without_what_the_day_needs_is_refused_naming_the_field(
    client: httpx.AsyncClient, operator: Account, body: dict[str, Any], field: str
) -> None:
    departure = await train_departure(client, operator.headers)
    excursion, _coaches = await excursion_with_coaches(
        client, operator.headers, departure["id"], []
    )
    response = await client.post(
        f"{EXCURSIONS}/{excursion['id']}/coaches", json=body, headers=operator.headers
    )
    assert fields(problem(response, 400)) == [field]


async def test_another_operators_excursions_are_not_found(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await train_departure(client, operator.headers)
    await confirmed_booking(client, departure["id"], "soft_sleeper", ["Li Na"])
    excursion, coaches = await excursion_with_coaches(
        client, operator.headers, departure["id"], [10]
    )
    other = await make_operator("other-rail")
    h = other.headers
    one = f"{EXCURSIONS}/{excursion['id']}"
    coach = f"{one}/coaches/{coaches[0]['id']}"
    for response in (
        await client.get(f"{DEPARTURES}/{departure['id']}/excursions", headers=h),
        await client.post(
            f"{DEPARTURES}/{departure['id']}/excursions", json=excursion_body(), headers=h
        ),
        await client.get(one, headers=h),
        await client.patch(one, json={"notes": "x"}, headers=h),
        await client.delete(one, headers=h),
        await client.get(f"{one}/coaches", headers=h),
        await client.post(f"{one}/coaches", json=coach_body(10), headers=h),
        await client.patch(coach, json={"capacity": 50}, headers=h),
        await client.delete(coach, headers=h),
        await client.get(f"{one}/assignments", headers=h),
        await client.post(f"{one}/assignments", json={"auto": True}, headers=h),
        await client.get(f"{one}/manifest", headers=h),
        await client.get(f"{one}/manifest", params={"format": "csv"}, headers=h),
    ):
        problem(response, 404)
    # Nothing changed for its owner.
    mine = ok(await client.get(one, headers=operator.headers))
    assert mine["coaches"][0]["capacity"] == 10
    assert mine["notes"] == ""
    assert mine["assigned"] == 0


async def test_staff_may_assign_but_only_admins_plan(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure = await train_departure(client, operator.headers)
    await confirmed_booking(client, departure["id"], "soft_sleeper", ["Li Na"])
    excursion, coaches = await excursion_with_coaches(
        client, operator.headers, departure["id"], [10]
    )
    staff = await make_operator("zz-bus", role="operator_staff")
    problem(
        await client.post(
            f"{DEPARTURES}/{departure['id']}/excursions",
            json=excursion_body(),
            headers=staff.headers,
        ),
        403,
    )
    problem(
        await client.post(
            f"{EXCURSIONS}/{excursion['id']}/coaches", json=coach_body(5), headers=staff.headers
        ),
        403,
    )
    body = ok(await assign(client, staff, excursion["id"], {"auto": True}))
    assert body["assigned"] == 1
    assert body["coaches"][0]["coach"]["id"] == coaches[0]["id"]


# ---------------------------------------------------------------- assigning


async def test_auto_assignment_keeps_parties_and_cars_together_within_capacity(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    # Car 1 (soft sleeper): a family of three and a couple; car 2 (hard sleeper): a group of
    # four and a couple.
    family = await confirmed_booking(
        client, dep, "soft_sleeper", ["王芳", "王小明", "王奶奶"], children=1
    )
    couple1 = await confirmed_booking(client, dep, "soft_sleeper", ["赵磊", "钱雪"])
    group = await confirmed_booking(client, dep, "hard_sleeper", ["A1", "A2", "A3", "A4"])
    couple2 = await confirmed_booking(client, dep, "hard_sleeper", ["孙一", "孙二"])
    excursion, coaches = await excursion_with_coaches(client, operator.headers, dep, [5, 4])
    # A booking on hold is no traveller yet.
    held = await client.post(
        "/api/v1/bookings",
        json={"departure_id": dep, "counts": [{"seat_class": "hard_sleeper", "count": 1}]},
    )
    assert held.status_code == 201

    body = ok(await assign(client, operator, excursion["id"], {"auto": True}))
    refs = {name: b["reference"] for name, b in (
        ("family", family), ("couple1", couple1), ("group", group), ("couple2", couple2)
    )}  # fmt: skip
    # Coach 1 fills first with car 1's parties; coach 2 takes car 2's group; the last couple
    # fits nowhere whole and is said so.
    assert plan_of(body) == {
        "1": [refs["family"], refs["couple1"]],
        "2": [refs["group"]],
        "-": [refs["couple2"]],
    }
    assert (body["travellers"], body["assigned"]) == (11, 9)
    outcome = body["outcome"]
    assert outcome["action"] == "auto"
    assert outcome["placed"] == 9
    assert outcome["not_placed"] == [
        {
            "reference": refs["couple2"],
            "passengers": 2,
            "reason": "No coach has 2 free places together.",
        }
    ]
    assert refs["couple2"] in outcome["message"]
    assert "could not be placed" in outcome["message"]
    assert [c["coach"]["free"] for c in body["coaches"]] == [0, 0]
    family_on_coach = body["coaches"][0]["parties"][0]
    assert [p["passenger_name"] for p in family_on_coach["passengers"]] == [
        "王芳",
        "王小明",
        "王奶奶",
    ]
    assert {p["car"] for p in family_on_coach["passengers"]} == {1}

    # A third coach: the next run keeps everyone where they are and seats the couple.
    ok(
        await client.post(
            f"{EXCURSIONS}/{excursion['id']}/coaches",
            json=coach_body(3, 3),
            headers=operator.headers,
        ),
        201,
    )
    again = ok(await assign(client, operator, excursion["id"], {"auto": True}))
    assert plan_of(again) == {
        "1": [refs["family"], refs["couple1"]],
        "2": [refs["group"]],
        "3": [refs["couple2"]],
        "-": [],
    }
    assert again["outcome"]["placed"] == 2
    assert again["outcome"]["not_placed"] == []
    assert again["outcome"]["message"] == "2 travellers were given a coach."
    # The database holds one place per traveller, none beyond a coach's capacity.
    rows = await CoachAssignment.select().where(CoachAssignment.excursion == excursion["id"]).run()
    capacity = {coaches[0]["id"]: 5, coaches[1]["id"]: 4}
    for row in rows:
        assert 1 <= row["place"] <= capacity.get(str(row["coach"]), 3)
    assert len(rows) == 11


async def test_a_party_bigger_than_every_coach_is_split_by_car(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    group = await confirmed_booking(
        client, departure["id"], "hard_sleeper", [f"团员{n}" for n in range(1, 8)]
    )
    excursion, _coaches = await excursion_with_coaches(
        client, operator.headers, departure["id"], [4, 4]
    )
    body = ok(await assign(client, operator, excursion["id"], {"auto": True}))
    assert [c["coach"]["assigned"] for c in body["coaches"]] == [4, 3]
    assert plan_of(body) == {"1": [group["reference"]], "2": [group["reference"]], "-": []}
    assert body["outcome"]["not_placed"] == []


async def test_moves_by_hand_respect_capacity(client: httpx.AsyncClient, operator: Account) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    family = await confirmed_booking(client, dep, "soft_sleeper", ["王芳", "王小明", "王奶奶"])
    couple = await confirmed_booking(client, dep, "hard_sleeper", ["赵磊", "钱雪"])
    excursion, coaches = await excursion_with_coaches(client, operator.headers, dep, [4, 3])
    ex = excursion["id"]
    one, two = coaches[0]["id"], coaches[1]["id"]
    ok(await assign(client, operator, ex, {"auto": True}))

    # Coach 1 holds the family (3 of 4): the couple does not fit there.
    full = problem(
        await assign(client, operator, ex, {"reference": couple["reference"], "coach_id": one}),
        409,
        "coach_full",
    )
    assert full["detail"] == f"Coach 1 has 1 free place; {couple['reference']} needs 2."
    # The couple off the coaches, and the family to coach 2, lower-case reference and all.
    body = ok(
        await assign(client, operator, ex, {"reference": couple["reference"], "coach_id": None})
    )
    assert (
        body["outcome"]["message"] == f"{couple['reference']}: 2 travellers taken off the coaches."
    )
    body = ok(
        await assign(
            client, operator, ex, {"reference": family["reference"].lower(), "coach_id": two}
        )
    )
    assert body["outcome"]["message"] == f"{family['reference']}: 3 travellers moved to coach 2."
    assert plan_of(body) == {"1": [], "2": [family["reference"]], "-": [couple["reference"]]}
    # The grandmother, by her berth, off the coaches.
    labels = [p["seat_label"] for p in body["coaches"][1]["parties"][0]["passengers"]]
    body = ok(
        await assign(
            client, operator, ex,
            {"reference": family["reference"], "coach_id": None, "seat_labels": [labels[2]]},
        )
    )  # fmt: skip
    assert [c["coach"]["assigned"] for c in body["coaches"]] == [0, 2]
    assert [p["seat_label"] for p in body["unassigned"][0]["passengers"]] == [labels[2]]
    # Auto seats her with the rest of her party on coach 2, and the couple on coach 1.
    body = ok(await assign(client, operator, ex, {"auto": True}))
    assert plan_of(body) == {"1": [couple["reference"]], "2": [family["reference"]], "-": []}
    on_two = [p["seat_label"] for p in body["coaches"][1]["parties"][0]["passengers"]]
    assert on_two == labels
    # Redo starts from empty coaches: car 1's family fills coach 1 first.
    body = ok(await assign(client, operator, ex, {"auto": True, "redo": True}))
    assert plan_of(body) == {"1": [family["reference"]], "2": [couple["reference"]], "-": []}
    # One of the family, by berth, to coach 2's last place.
    body = ok(
        await assign(
            client, operator, ex,
            {"reference": family["reference"], "coach_id": two, "seat_labels": [labels[0]]},
        )
    )  # fmt: skip
    assert [c["coach"]["assigned"] for c in body["coaches"]] == [2, 3]

    # Wrong moves name what is wrong.
    problem(await assign(client, operator, ex, {"reference": "ZZZZZZZZ", "coach_id": one}), 404)
    other, _ = await excursion_with_coaches(client, operator.headers, dep, [40])
    bad = await client.post(
        f"{EXCURSIONS}/{other['id']}/coaches", json=coach_body(5), headers=operator.headers
    )
    assert bad.status_code == 201
    for body_in, field in (
        ({"reference": family["reference"], "coach_id": bad.json()["id"]}, "coach_id"),
        ({"reference": family["reference"]}, "coach_id"),
        ({"coach_id": one}, "reference"),
        ({"auto": True, "reference": family["reference"]}, "reference"),
        ({"auto": True, "coach_id": one}, "coach_id"),
        (
            {"reference": family["reference"], "coach_id": one, "seat_labels": ["99-99L"]},
            "seat_labels[0]",
        ),
        ({"auto": "yes"}, "auto"),
    ):
        assert fields(problem(await assign(client, operator, ex, body_in), 400)) == [field]


async def test_cancelled_bookings_leave_and_new_ones_wait_for_the_next_assignment(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    family = await confirmed_booking(client, dep, "soft_sleeper", ["王芳", "王小明"])
    couple = await confirmed_booking(client, dep, "soft_sleeper", ["赵磊", "钱雪"])
    excursion, coaches = await excursion_with_coaches(client, operator.headers, dep, [4])
    ex = excursion["id"]
    ok(await assign(client, operator, ex, {"auto": True}))

    await cancel(family["reference"])
    body = ok(await client.get(f"{EXCURSIONS}/{ex}/assignments", headers=operator.headers))
    assert plan_of(body) == {"1": [couple["reference"]], "-": []}
    assert body["coaches"][0]["coach"]["free"] == 2
    assert await CoachAssignment.count().where(CoachAssignment.excursion == ex).run() == 2

    late = await confirmed_booking(client, dep, "hard_sleeper", ["孙一"])
    body = ok(await client.get(f"{EXCURSIONS}/{ex}/assignments", headers=operator.headers))
    assert plan_of(body) == {"1": [couple["reference"]], "-": [late["reference"]]}
    summary = ok(await client.get(f"{EXCURSIONS}/{ex}", headers=operator.headers))
    assert (summary["travellers"], summary["assigned"], summary["unassigned"]) == (3, 2, 1)
    body = ok(await assign(client, operator, ex, {"auto": True}))
    assert plan_of(body) == {"1": [couple["reference"], late["reference"]], "-": []}

    # A coach cannot shrink below who it carries; to exactly that, its places are kept within.
    url = f"{EXCURSIONS}/{ex}/coaches/{coaches[0]['id']}"
    problem(
        await client.patch(url, json={"capacity": 2}, headers=operator.headers),
        409,
        "coach_capacity_below_assigned",
    )
    ok(await client.patch(url, json={"capacity": 3}, headers=operator.headers))
    places = await CoachAssignment.select(CoachAssignment.place).where(
        CoachAssignment.excursion == ex
    )
    assert sorted(row["place"] for row in places) == [1, 2, 3]
    # Dropping the coach leaves its travellers without one.
    assert (await client.delete(url, headers=operator.headers)).status_code == 204
    body = ok(await client.get(f"{EXCURSIONS}/{ex}/assignments", headers=operator.headers))
    assert body["coaches"] == []
    assert body["assigned"] == 0
    assert len(body["unassigned"]) == 2
    no_coach = ok(await assign(client, operator, ex, {"auto": True}))
    assert no_coach["outcome"]["message"] == (
        "This excursion has no coach yet: add coaches, then assign."
    )


async def test_a_rebooked_party_leaves_the_coaches_of_its_old_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    family = await confirmed_booking(client, dep, "soft_sleeper", ["王芳", "王小明"])
    couple = await confirmed_booking(client, dep, "soft_sleeper", ["赵磊", "钱雪"])
    excursion, _coaches = await excursion_with_coaches(client, operator.headers, dep, [4])
    ok(await assign(client, operator, excursion["id"], {"auto": True}))
    route = {"id": departure["route_id"], "duration_days": 5}
    later = await create_departure(
        client, operator.headers, route, {"id": departure["vehicle_id"]}, in_days(12)
    )
    moved = await client.post(
        f"/api/v1/bookings/{family['reference']}/rebook",
        json={"departure_id": later["id"]},
        headers={"X-Booking-Token": family["access_token"]},
    )
    assert ok(moved)["departure_id"] == later["id"]
    body = ok(
        await client.get(f"{EXCURSIONS}/{excursion['id']}/assignments", headers=operator.headers)
    )
    assert plan_of(body) == {"1": [couple["reference"]], "-": []}
    rows = await CoachAssignment.select().where(CoachAssignment.excursion == excursion["id"]).run()
    assert len(rows) == 2


# ---------------------------------------------------------------- the manifest


async def test_the_coach_manifest_has_the_headcount_the_coach_company_needs(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    family = await confirmed_booking(
        client, dep, "soft_sleeper", ["王芳", "=HYPERLINK(1)", "王小红"], children=2
    )
    await confirmed_booking(client, dep, "hard_sleeper", ["赵磊", "钱雪"])
    late = await confirmed_booking(client, dep, "hard_sleeper", ["孙一"])
    excursion, _coaches = await excursion_with_coaches(client, operator.headers, dep, [3, 2])
    ex = excursion["id"]
    ok(await assign(client, operator, ex, {"auto": True}))
    await cancel(late["reference"])
    late2 = await confirmed_booking(client, dep, "hard_sleeper", ["周末"])

    manifest = ok(await client.get(f"{EXCURSIONS}/{ex}/manifest", headers=operator.headers))
    assert manifest["sight"] == "天山天池"
    assert manifest["meeting_point"] == "乌鲁木齐站出站口"
    assert manifest["meet_at"].endswith("07:40:00+08:00")
    assert manifest["headcount"] == {"passengers": 5, "adults": 3, "seniors": 0, "children": 2}
    first, second = manifest["coaches"]
    assert first["coach"]["plate"] == "新A·10001"
    assert first["coach"]["driver_phone"] == "+86 139 0000 0001"
    assert first["headcount"] == {"passengers": 3, "adults": 1, "seniors": 0, "children": 2}
    assert {p["reference"] for p in first["passengers"]} == {family["reference"]}
    assert second["headcount"] == {"passengers": 2, "adults": 2, "seniors": 0, "children": 0}
    assert [p["passenger_name"] for p in second["passengers"]] == ["赵磊", "钱雪"]
    assert [p["reference"] for p in manifest["unassigned"]] == [late2["reference"]]
    english = ok(
        await client.get(
            f"{EXCURSIONS}/{ex}/manifest", headers={**operator.headers, "Accept-Language": "en"}
        )
    )
    assert english["sight"] == "Tianshan Heavenly Lake"

    response = await client.get(
        f"{EXCURSIONS}/{ex}/manifest",
        params={"format": "csv"},
        headers={**operator.headers, "Accept-Language": "en"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:8] == [
        "Coach", "Plate", "Driver", "Driver's phone", "Guide", "Guide's phone", "Passenger",
        "Passenger type",
    ]  # fmt: skip
    body = rows[1:]
    assert len(body) == 5
    assert Counter(row[0] for row in body) == {"1": 3, "2": 2}
    names = [row[6] for row in body]
    # A name a spreadsheet would run as a formula is written as text.
    assert "'=HYPERLINK(1)" in names
    assert "周末" not in names
    assert {row[7] for row in body} == {"adult", "child"}
    assert {row[13] for row in body} == {"Tianshan Heavenly Lake"}


# ---------------------------------------------------------------- concurrency


async def test_operators_moving_parties_at_once_never_fill_a_coach_past_capacity(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    """Twelve moves of one- and two-traveller parties race for a coach of five places; as
    many as fit win, the others get 409 coach_full, the coach never holds more than five,
    and nothing answers 5xx. On PostgreSQL these are real concurrent transactions."""
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    colleague = await make_operator("zz-bus", role="operator_staff")
    parties = [
        await confirmed_booking(
            client,
            dep,
            "hard_sleeper" if n % 2 else "soft_sleeper",
            [f"P{n}a", f"P{n}b"] if n % 3 == 0 else [f"P{n}"],
        )
        for n in range(12)
    ]
    excursion, coaches = await excursion_with_coaches(client, operator.headers, dep, [40, 5])
    ex, small = excursion["id"], coaches[1]["id"]
    # Everyone starts on the big coach, the first to fill.
    assert ok(await assign(client, operator, ex, {"auto": True}))["coaches"][1]["parties"] == []

    async def move(index: int, party: dict[str, Any]) -> httpx.Response:
        who = operator if index % 2 else colleague
        return await assign(client, who, ex, {"reference": party["reference"], "coach_id": small})

    answers = await asyncio.gather(*(move(n, party) for n, party in enumerate(parties)))
    assert [a.text for a in answers if a.status_code >= 500] == []
    won = [a for a in answers if a.status_code == 200]
    lost = [a for a in answers if a.status_code != 200]
    assert all(problem(a, 409, "coach_full") for a in lost)
    moved = sum(a.json()["outcome"]["placed"] for a in won)
    assert 4 <= moved <= 5
    rows = await CoachAssignment.select().where(CoachAssignment.coach == small).run()
    assert len(rows) == moved
    assert sorted(row["place"] for row in rows) == list(range(1, moved + 1))
    body = ok(await client.get(f"{EXCURSIONS}/{ex}/assignments", headers=operator.headers))
    small_plan = next(c for c in body["coaches"] if c["coach"]["id"] == small)
    assert small_plan["coach"]["assigned"] == moved
    assert body["assigned"] == body["travellers"] == 16


async def test_the_database_refuses_a_second_traveller_in_one_place(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """Even a writer that skipped the excursion's lock cannot seat two travellers in one
    place of a coach, nor one traveller on two coaches of an excursion."""
    departure = await train_departure(client, operator.headers)
    dep = departure["id"]
    first = await confirmed_booking(client, dep, "soft_sleeper", ["甲"])
    await confirmed_booking(client, dep, "soft_sleeper", ["乙"])
    excursion, coaches = await excursion_with_coaches(client, operator.headers, dep, [1, 1])
    ok(
        await assign(
            client,
            operator,
            excursion["id"],
            {"reference": first["reference"], "coach_id": coaches[0]["id"]},
        )
    )
    [taken] = (
        await CoachAssignment.select().where(CoachAssignment.excursion == excursion["id"]).run()
    )
    others = await Booking.select(Booking.id).where(Booking.reference != first["reference"]).run()
    [line] = (
        await BookingLine.select(BookingLine.id).where(BookingLine.booking == others[0]["id"]).run()
    )
    integrity = (sqlite3.IntegrityError, asyncpg.exceptions.UniqueViolationError)
    with pytest.raises(integrity):
        await CoachAssignment.insert(
            CoachAssignment(
                excursion=excursion["id"], coach=taken["coach"], booking=others[0]["id"],
                line=line["id"], place=1, actor="test",
            )
        ).run()  # fmt: skip
    with pytest.raises(integrity):
        await CoachAssignment.insert(
            CoachAssignment(
                excursion=excursion["id"], coach=coaches[1]["id"], booking=taken["booking"],
                line=taken["line"], place=1, actor="test",
            )
        ).run()  # fmt: skip
