"""The demo data, as a visitor and the demo operators see it through the API."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from app.accounts.tables import Staff
from app.core import clock
from app.core.settings import get_settings
from app.demo.data import (
    DEMO_EXCURSIONS,
    DEMO_LOGINS,
    DEMO_PARTNER_KEY,
    DEMO_PASSWORD,
    DEMO_TRAVELLERS,
    DemoSummary,
    demo_party,
    load_demo,
)

SHANGHAI = clock.zone("Asia/Shanghai")
TRAIN = "y359-henan-xinjiang"
BUS_LINES = ("caizhai-picking", "huatian-flower-fields", "tianyuan-farm-day")
ROUTES = {TRAIN, *BUS_LINES}
ADMIN, RAIL, BUS = DEMO_LOGINS
XINJIANG_SIGHTS = (
    "天山天池",
    "那拉提草原",
    "赛里木湖",
    "喀纳斯",
    "禾木古村落",
    "喀什古城",
    "慕士塔格峰",
    "天山神秘大峡谷",
)
PICKING_OFFERS = ("樱桃", "葡萄", "桑葚", "孔雀菜", "冰菜", "田七", "紫甘蓝", "小吊瓜")
CREW_BLOCKS = {"01-01L": "steward", "01-02U": "steward", "01-03L": "guide", "01-04U": "guide"}
MEDICAL_BLOCKS = {"03-01L": "medical", "03-02M": "medical"}
# ISO weekdays of each bus line's departures (6 Saturday, 7 Sunday).
BUS_WEEKDAYS = {
    "caizhai-picking": {6, 7},
    "huatian-flower-fields": {6},
    "tianyuan-farm-day": {7},
}


@pytest.fixture
async def demo(client: httpx.AsyncClient) -> DemoSummary:
    return await load_demo(get_settings())


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
    response = await client.get(url, **kwargs)
    assert response.status_code == 200, f"{url}: {response.text}"
    return response.json()


async def all_items(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a paginated list, fetched 100 at a time."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = await get_json(
            client,
            url,
            headers=headers or {},
            params={**(params or {}), "page": page, "page_size": 100},
        )
        items += body["items"]
        if not body["items"] or len(items) >= body["total"]:
            assert len(items) == body["total"]
            return items
        page += 1


def local(moment: str) -> datetime:
    return datetime.fromisoformat(moment).astimezone(SHANGHAI)


async def counts(client: httpx.AsyncClient) -> dict[str, int]:
    """What the API shows: public routes, and each operator's routes, departures and staff."""
    result = {"public routes": (await get_json(client, "/api/v1/routes"))["total"]}
    for email in (RAIL, BUS):
        headers = await login(client, email)
        for kind in ("routes", "departures", "vehicles"):
            body = await get_json(client, f"/api/v1/operator/{kind}", headers=headers)
            result[f"{email} {kind}"] = body["total"]
        staff = await get_json(client, "/api/v1/operator/staff", headers=headers)
        result[f"{email} staff"] = len(staff)
    admin = await login(client, ADMIN)
    result["operators"] = (await get_json(client, "/api/v1/admin/operators", headers=admin))[
        "total"
    ]
    result["staff"] = await Staff.count().run()
    return result


# ---------------------------------------------------------------- the routes


async def test_the_four_routes_are_listed_in_chinese_by_default(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    assert any("zy-rail" in line for line in demo.created)
    assert any("zz-bus" in line for line in demo.created)
    assert demo.skipped == []
    response = await client.get("/api/v1/routes")
    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == "zh-Hans"
    body = response.json()
    assert body["total"] == 4
    routes = {item["slug"]: item for item in body["items"]}
    assert set(routes) == ROUTES
    train = routes[TRAIN]
    assert "大河之南号" in train["name"]
    assert train["kind"] == "train"
    assert train["duration_days"] == 15
    assert train["operator"] == {"slug": "zy-rail", "name": "中原铁道旅游"}
    assert train["lowest_adult_price"]["amount"] == 1_298_000
    assert train["next_departure_at"] is not None
    assert {routes[slug]["name"] for slug in BUS_LINES} == {"采摘号", "花田号", "田园号"}
    for slug in BUS_LINES:
        assert routes[slug]["kind"] == "bus"
        assert routes[slug]["duration_days"] == 1
        assert routes[slug]["operator"]["slug"] == "zz-bus"
        assert routes[slug]["lowest_adult_price"]["amount"] == 6800
    # Filters work on the demo lines.
    trains = await get_json(client, "/api/v1/routes", params={"kind": "train"})
    assert [item["slug"] for item in trains["items"]] == [TRAIN]
    picking = await get_json(client, "/api/v1/routes", params={"theme": "picking"})
    assert [item["slug"] for item in picking["items"]] == ["caizhai-picking"]


async def test_the_routes_are_in_english_on_request(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    response = await client.get("/api/v1/routes", headers={"Accept-Language": "en"})
    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == "en"
    routes = {item["slug"]: item for item in response.json()["items"]}
    assert set(routes) == ROUTES
    assert routes[TRAIN]["name"] == "Dahe Zhinan tourist train (Y359)"
    assert routes[TRAIN]["operator"]["name"] == "Zhongyuan Rail Tours"
    assert routes["caizhai-picking"]["name"] == "Picking Line"
    assert routes["huatian-flower-fields"]["name"] == "Flower Field Line"
    assert routes["tianyuan-farm-day"]["name"] == "Farm Day Line"
    for item in routes.values():
        # No Chinese leaks into the English listing.
        text = item["name"] + item["description"] + item["operator"]["name"]
        assert not any("\u4e00" <= char <= "\u9fff" for char in text), text
    detail = await get_json(client, f"/api/v1/routes/{TRAIN}", headers={"Accept-Language": "en"})
    places = {stop["place"] for day in detail["itinerary"] for stop in day["stops"]}
    assert {"Tianshan Heavenly Lake", "Kanas Lake", "Kashgar Old Town"} <= places


# ---------------------------------------------------------------- the Y359 train


async def test_the_train_itinerary_covers_fifteen_days_of_xinjiang(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    route = await get_json(client, f"/api/v1/routes/{TRAIN}")
    assert route["duration_days"] == 15
    assert route["meeting_point"] == "郑州站西广场"
    days = route["itinerary"]
    assert [day["day_number"] for day in days] == list(range(1, 16))
    # Each sight has a day of its own, and the description names it too.
    titles = [day["title"] for day in days]
    for sight in XINJIANG_SIGHTS:
        assert sight in titles, sight
        assert sight in route["description"], sight
    assert "慕士塔格峰" in " ".join(
        activity for day in days for stop in day["stops"] for activity in stop["activities"]
    )
    # Day sightseeing, night travel: most nights on the train, none after the return.
    nights = [day["night_on_train"] for day in days]
    assert days[0]["night_on_train"] is True
    assert days[-1]["night_on_train"] is False
    assert 10 <= sum(nights) <= 14
    # Coaches meet the train at the sightseeing stops; on-board days need none.
    by_title = {day["title"]: day for day in days}
    for sight in ("天山天池", "那拉提草原", "赛里木湖", "喀纳斯", "喀什古城"):
        stops = by_title[sight]["stops"]
        assert stops, sight
        assert all(stop["coach_transfer"] for stop in stops), sight
    on_board = [day for day in days if day["stops"][0]["place"] == "列车上"]
    assert on_board
    assert not any(stop["coach_transfer"] for day in on_board for stop in day["stops"])
    assert days[0]["stops"][0]["place"] == "郑州站"
    assert days[-1]["stops"][-1]["place"] == "郑州站"
    assert [tier["refund_percent"] for tier in route["cancellation_policy"]] == [100, 70, 30, 0]


async def test_each_train_day_has_its_plan_and_every_run_its_crew(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    route = await get_json(client, f"/api/v1/routes/{TRAIN}", headers={"Accept-Language": "en"})
    days = route["itinerary"]
    assert len(days) == 15
    # Nights on the train but two in hotels (Kanas, Kashgar), and none after the return.
    overnights = [day["overnight"] for day in days]
    hotels = [night for night in overnights if isinstance(night, dict)]
    assert [hotel["name"] for hotel in hotels] == [
        "Jiadengyu Resort, Kanas",
        "Ostangboyi Inn, Kashgar Old Town",
    ]
    assert all(hotel["address"] and hotel["phone"] for hotel in hotels)
    assert overnights.count("train") == 12
    assert overnights[-1] is None
    # Every day has its meals; sightseeing days from the train say when to be back.
    assert all(day["meals"] for day in days)
    back = {day["title"]: day["back_on_board_at"] for day in days if day["back_on_board_at"]}
    assert back["Tianshan Heavenly Lake"] == "19:30"
    assert {"Nalati Grassland", "Sayram Lake", "Hemu Village", "Muztagh Ata"} <= set(back)
    for day in days:
        if day["back_on_board_at"]:
            assert day["overnight"] == "train", day["title"]

    headers = await login(client, RAIL)
    departures = await all_items(client, "/api/v1/operator/departures", headers=headers)
    for departure in departures:
        crew = await get_json(
            client, f"/api/v1/operator/departures/{departure['id']}/crew", headers=headers
        )
        roles = Counter(member["role"] for member in crew["members"])
        assert roles["steward"] == 1
        assert roles["medical"] == 2
        assert roles["guide"] >= 2
        assert {"narrator", "driver"} <= set(roles)
        assert all(member["phone"] for member in crew["members"])


async def test_the_train_has_270_berths_with_crew_and_medical_blocks(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    headers = await login(client, RAIL)
    vehicles = await get_json(client, "/api/v1/operator/vehicles", headers=headers)
    assert vehicles["total"] == 1
    vehicle = await get_json(
        client, f"/api/v1/operator/vehicles/{vehicles['items'][0]['id']}", headers=headers
    )
    assert vehicle["kind"] == "train"
    seats = vehicle["seats"]
    assert len(seats) == 270
    assert len({seat["label"] for seat in seats}) == 270
    per_class = Counter(seat["seat_class"] for seat in seats)
    assert per_class == {"soft_sleeper": 72, "hard_sleeper": 198}
    crew = {seat["label"]: seat["blocked_reason"] for seat in seats if seat["blocked_reason"]}
    assert crew == CREW_BLOCKS
    # The crew share one soft-sleeper compartment.
    crew_seats = [seat for seat in seats if seat["label"] in CREW_BLOCKS]
    assert {(s["seat_class"], s["car"], s["compartment"]) for s in crew_seats} == {
        ("soft_sleeper", 1, 1)
    }
    assert vehicle["capacity_by_class"] == {"hard_sleeper": 198, "soft_sleeper": 68}
    seat_class = {seat["label"]: seat["seat_class"] for seat in seats}

    departures = await all_items(client, "/api/v1/operator/departures", headers=headers)
    assert len(departures) == 3
    for departure in departures:
        assert departure["vehicle_id"] == vehicle["id"]
        blocks = {block["label"]: block["reason"] for block in departure["blocked"]}
        assert blocks == MEDICAL_BLOCKS

    upcoming = await all_items(client, f"/api/v1/routes/{TRAIN}/departures")
    assert len(upcoming) == 2
    now = clock.now()
    # The next run carries the demo's travellers (its coach plan is below); the other is empty.
    sold: dict[str, Counter[str]] = {upcoming[0]["id"]: Counter(), upcoming[1]["id"]: Counter()}
    for booked_class, _phone, party in DEMO_TRAVELLERS:
        sold[upcoming[0]["id"]][booked_class] += len(demo_party(party))
    for departure in upcoming:
        assert departure["status"] == "published"
        assert datetime.fromisoformat(departure["departs_at"]) > now
        expected: Counter[str] = Counter(per_class)
        for label in [*CREW_BLOCKS, *MEDICAL_BLOCKS]:
            expected[seat_class[label]] -= 1
        classes = {c["seat_class"]: c for c in departure["classes"]}
        assert set(classes) == {"soft_sleeper", "hard_sleeper"}
        for name, availability in classes.items():
            assert availability["capacity"] == expected[name], name
            assert availability["seats_left"] == expected[name] - sold[departure["id"]][name], name
        assert departure["seats_left"] == 270 - len(CREW_BLOCKS) - len(MEDICAL_BLOCKS) - sum(
            sold[departure["id"]].values()
        )
        # Second Sunday of May or September, 05:30 in Zhengzhou, back 15 days later.
        departs, returns = local(departure["departs_at"]), local(departure["returns_at"])
        assert departs.month in (5, 9)
        assert departs.isoweekday() == 7
        assert 8 <= departs.day <= 14
        assert departs.time() == time(5, 30)
        assert (returns.date() - departs.date()).days == 14
        detail = await get_json(client, f"/api/v1/departures/{departure['id']}")
        assert detail["classes"] == departure["classes"]
        assert {(f["seat_class"], f["passenger_type"]) for f in detail["fares"]} == {
            (c, t) for c in ("soft_sleeper", "hard_sleeper") for t in ("adult", "child", "senior")
        }
        seat_map = await get_json(client, f"/api/v1/departures/{departure['id']}/seats")
        assert len(seat_map["seats"]) == 270
        free = {seat["label"] for seat in seat_map["seats"] if seat["free"]}
        if departure["on_sale"]:
            assert len(free) == departure["seats_left"]
        assert not free & {*CREW_BLOCKS, *MEDICAL_BLOCKS}


async def test_the_first_run_of_2026_05_10_has_departed(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    headers = await login(client, RAIL)
    departed = await all_items(
        client, "/api/v1/operator/departures", headers=headers, params={"status": "departed"}
    )
    assert len(departed) == 1
    first = departed[0]
    assert local(first["departs_at"]) == datetime(2026, 5, 10, 5, 30, tzinfo=SHANGHAI)
    detail = await get_json(client, f"/api/v1/departures/{first['id']}")
    assert detail["status"] == "departed"
    assert detail["route_slug"] == TRAIN
    assert "大河之南号" in detail["route_name"]
    assert detail["on_sale"] is False
    assert [stop["name"] for stop in detail["stops"]] == ["郑州站"]
    upcoming = await all_items(client, f"/api/v1/routes/{TRAIN}/departures")
    assert first["id"] not in {item["id"] for item in upcoming}
    assert all(local(item["departs_at"]).date() > date(2026, 5, 10) for item in upcoming)
    route = await get_json(client, f"/api/v1/routes/{TRAIN}")
    assert local(route["next_departure_at"]).date() > date(2026, 5, 10)


async def test_the_next_run_has_coaches_for_each_excursion_day_with_everyone_assigned(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    headers = await login(client, RAIL)
    route = await get_json(client, f"/api/v1/routes/{TRAIN}")
    titles = {day["day_number"]: day["title"] for day in route["itinerary"]}
    coach_days = {
        day["day_number"]
        for day in route["itinerary"]
        if any(stop["coach_transfer"] for stop in day["stops"])
    }
    next_run = (await all_items(client, f"/api/v1/routes/{TRAIN}/departures"))[0]
    excursions = await get_json(
        client, f"/api/v1/operator/departures/{next_run['id']}/excursions", headers=headers
    )
    travellers = sum(len(demo_party(party)) for _class, _phone, party in DEMO_TRAVELLERS)
    assert travellers >= 50
    assert len(excursions) == len(DEMO_EXCURSIONS) == 8
    # Each sight on its own day of the itinerary, on a day the coaches meet the train.
    sights = {excursion["day_number"]: excursion["sight"]["zh_Hans"] for excursion in excursions}
    for sight in ("天山天池", "那拉提草原", "赛里木湖", "喀纳斯", "禾木", "喀什古城", "慕士塔格峰"):
        day = next(day for day, name in sights.items() if sight in name)
        assert sight in titles[day], (sight, titles[day])
        assert day in coach_days
    departs = local(next_run["departs_at"]).date()
    for excursion in excursions:
        assert (
            excursion["date"] == (departs + timedelta(days=excursion["day_number"] - 1)).isoformat()
        )
        assert len(excursion["coaches"]) == 2
        assert all(coach["plate"].startswith("新") for coach in excursion["coaches"])
        assert all(coach["driver_phone"] and coach["guide_name"] for coach in excursion["coaches"])
        assert (excursion["travellers"], excursion["assigned"]) == (travellers, travellers)
        assert sum(c["assigned"] for c in excursion["coaches"]) == travellers
        assert all(c["assigned"] <= c["capacity"] for c in excursion["coaches"])
    # Parties ride together.
    plan = await get_json(
        client, f"/api/v1/operator/excursions/{excursions[0]['id']}/assignments", headers=headers
    )
    references = [party["reference"] for item in plan["coaches"] for party in item["parties"]]
    assert len(references) == len(DEMO_TRAVELLERS) == len(set(references))
    assert plan["unassigned"] == []


# ---------------------------------------------------------------- the bus lines


@pytest.mark.parametrize("slug", BUS_LINES)
async def test_bus_lines_run_on_weekends_from_now_to_the_end_of_summer(
    client: httpx.AsyncClient, demo: DemoSummary, slug: str
) -> None:
    departures = await all_items(client, f"/api/v1/routes/{slug}/departures")
    assert departures
    now = clock.now()
    today = local(now.isoformat()).date()
    summer_end = date(today.year if today < date(today.year, 8, 20) else today.year + 1, 8, 30)
    # From the day the demo is loaded (the first weekend after tomorrow) ...
    assert local(departures[0]["departs_at"]).date() <= today + timedelta(days=9)
    weekdays = set()
    for index, departure in enumerate(departures):
        departs = local(departure["departs_at"])
        assert departs.isoweekday() in (6, 7), departure["departs_at"]
        assert departs.time() == time(7, 30), departure["departs_at"]
        assert datetime.fromisoformat(departure["departs_at"]) > now
        # ... to the end of the coming summer.
        assert today < departs.date() <= summer_end
        assert local(departure["returns_at"]) == departs.replace(hour=17, minute=30)
        assert departure["status"] == "published"
        # The demo agency keeps ten seats on the first picking bus.
        kept = 10 if (slug, index) == ("caizhai-picking", 0) else 0
        assert departure["classes"] == [
            {"seat_class": "standard", "capacity": 45, "seats_left": 45 - kept}
        ]
        assert departure["lowest_adult_price"]["amount"] == 6800
        weekdays.add(departs.isoweekday())
    assert weekdays == BUS_WEEKDAYS[slug]
    # Every weekend of the season, from the first departure to the last.
    first = local(departures[0]["departs_at"]).date()
    last = local(departures[-1]["departs_at"]).date()
    expected = [
        first + timedelta(days=n)
        for n in range((last - first).days + 1)
        if (first + timedelta(days=n)).isoweekday() in BUS_WEEKDAYS[slug]
    ]
    assert [local(item["departs_at"]).date() for item in departures] == expected
    detail = await get_json(client, f"/api/v1/departures/{departures[0]['id']}")
    stops = detail["stops"]
    assert [stop["kind"] for stop in stops] == ["pickup"] * 3
    assert [stop["name"] for stop in stops] == ["郑州东站东广场", "二七广场", "郑州市民中心"]
    assert [local(stop["at"]).strftime("%H:%M") for stop in stops] == ["07:30", "07:55", "08:15"]
    assert all(local(stop["at"]).date() == first for stop in stops)

    headers = await login(client, BUS)
    routes = await all_items(client, "/api/v1/operator/routes", headers=headers)
    route_id = next(route["id"] for route in routes if route["slug"] == slug)
    own = await all_items(
        client, "/api/v1/operator/departures", headers=headers, params={"route_id": route_id}
    )
    assert len(own) == len(departures)
    vehicle = await get_json(
        client, f"/api/v1/operator/vehicles/{own[0]['vehicle_id']}", headers=headers
    )
    assert vehicle["kind"] == "bus"
    assert len(vehicle["seats"]) == 45
    assert vehicle["capacity_by_class"] == {"standard": 45}


async def test_seasonal_offers_show_in_season_on_departures(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    route = await get_json(client, "/api/v1/routes/caizhai-picking")
    offers = {offer["name"]: set(offer["months"]) for offer in route["seasonal_offers"]}
    for name in PICKING_OFFERS:
        assert name in offers, name
    assert 5 in offers["樱桃"]
    assert 8 not in offers["樱桃"]
    assert 8 in offers["葡萄"]
    assert 5 not in offers["葡萄"]

    seen: set[str] = set()
    for slug in (*BUS_LINES, TRAIN):
        detail = await get_json(client, f"/api/v1/routes/{slug}")
        months_of = {offer["name"]: set(offer["months"]) for offer in detail["seasonal_offers"]}
        assert months_of, slug
        for departure in await all_items(client, f"/api/v1/routes/{slug}/departures"):
            month = local(departure["departs_at"]).month
            shown = {offer["name"] for offer in departure["offers_in_season"]}
            assert shown == {name for name, months in months_of.items() if month in months}
            seen |= shown
    # Cherries in May and June, grapes in high summer: both are on some departure.
    assert {"樱桃", "桑葚", "葡萄", "小吊瓜"} <= seen

    english = await all_items(
        client, "/api/v1/routes/caizhai-picking/departures", headers={"Accept-Language": "en"}
    )
    may = [item for item in english if local(item["departs_at"]).month == 5]
    if may:
        names = {offer["name"] for offer in may[0]["offers_in_season"]}
        assert {"Cherries", "Mulberries"} <= names
        assert "Grapes" not in names
    august = [item for item in english if local(item["departs_at"]).month == 8]
    assert august
    names = {offer["name"] for offer in august[0]["offers_in_season"]}
    assert {"Grapes", "Little hanging melons"} <= names
    assert "Cherries" not in names


# ---------------------------------------------------------------- loading


async def test_the_demo_logins_work(client: httpx.AsyncClient, demo: DemoSummary) -> None:
    for email, role, operator in (
        (ADMIN, "platform_admin", None),
        (RAIL, "operator_admin", "zy-rail"),
        (BUS, "operator_admin", "zz-bus"),
    ):
        me = await get_json(client, "/api/v1/auth/me", headers=await login(client, email))
        assert me["email"] == email
        assert me["role"] == role
        if operator:
            profile = await get_json(
                client, "/api/v1/operator/profile", headers=await login(client, email)
            )
            assert profile["slug"] == operator
    admin = await login(client, ADMIN)
    operators = await get_json(client, "/api/v1/admin/operators", headers=admin)
    assert {item["slug"] for item in operators["items"]} == {"zy-rail", "zz-bus"}
    assert DEMO_PASSWORD in demo.summary()
    for email in DEMO_LOGINS:
        assert email in demo.summary()


async def test_loading_twice_changes_nothing(client: httpx.AsyncClient, demo: DemoSummary) -> None:
    before = await counts(client)
    assert before["public routes"] == 4
    assert before["operators"] == 2
    assert before["staff"] == 3
    assert before[f"{RAIL} departures"] == 3
    assert before[f"{BUS} routes"] == 3
    again = await load_demo(get_settings())
    assert again.created == []
    assert again.skipped == ["operator zy-rail", "operator zz-bus"]
    text = again.summary()
    assert "already there: operator zy-rail" in text
    assert "already there: operator zz-bus" in text
    assert "created:" not in text
    assert await counts(client) == before


async def test_demo_data_is_refused_in_production(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = dataclasses.replace(get_settings(), environment="production")
    with pytest.raises(RuntimeError, match="production"):
        await load_demo(production)
    assert await Staff.count().run() == 0
    assert (await get_json(client, "/api/v1/routes"))["total"] == 0
    response = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 401


async def test_the_demo_agency_sells_the_buses_through_octo(
    client: httpx.AsyncClient, demo: DemoSummary
) -> None:
    headers = {
        "Authorization": f"Bearer {DEMO_PARTNER_KEY}",
        "Octo-Capabilities": "octo/pricing",
    }
    response = await client.get("/octo/products", headers=headers)
    assert response.status_code == 200, response.text
    products = {product["reference"]: product for product in response.json()}
    assert set(products) == set(BUS_WEEKDAYS)
    first = (await all_items(client, "/api/v1/routes/caizhai-picking/departures"))[0]
    response = await client.post(
        "/octo/availability",
        json={
            "productId": products["caizhai-picking"]["id"],
            "optionId": "standard",
            "availabilityIds": [first["id"]],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    [slot] = response.json()
    # The agency sees its ten kept seats as its own: all 45 are open to it.
    assert slot["vacancies"] == 45
    assert slot["allotment"]["unused"] == 10
    adult = next(p for p in slot["unitPricing"] if p["unitId"] == "adult")
    assert (adult["retail"], adult["net"]) == (6800, 6120)
