"""The API speaks the reader's language: durations, validation messages, status names."""

from __future__ import annotations

import httpx

from tests.conftest import Account
from tests.factories import create_route


async def test_durations_in_each_language(client: httpx.AsyncClient, operator: Account) -> None:
    await create_route(client, operator.headers, slug="three-days", duration_days=3)
    english = (
        await client.get("/api/v1/routes/three-days", headers={"Accept-Language": "en"})
    ).json()
    chinese = (await client.get("/api/v1/routes/three-days?lang=zh")).json()
    assert english["duration"] == "3 days"
    assert chinese["duration"] == "3天"
    listed = (await client.get("/api/v1/routes", headers={"Accept-Language": "en-GB"})).json()
    assert listed["items"][0]["duration"] == "3 days"


async def test_the_same_validation_error_in_chinese_and_english(
    client: httpx.AsyncClient, operator: Account
) -> None:
    body = {"slug": "x-y", "kind": "bus", "name": {"en": "X"}, "duration_days": "two"}
    english = await client.post(
        "/api/v1/operator/routes", json=body, headers={**operator.headers, "Accept-Language": "en"}
    )
    chinese = await client.post(
        "/api/v1/operator/routes",
        json=body,
        headers={**operator.headers, "Accept-Language": "zh-CN,zh;q=0.9"},
    )
    assert english.status_code == chinese.status_code == 400
    assert english.headers["content-language"] == "en"
    assert chinese.headers["content-language"] == "zh-Hans"
    [english_error] = english.json()["errors"]
    [chinese_error] = chinese.json()["errors"]
    assert english_error["field"] == chinese_error["field"] == "duration_days"
    assert english_error["message"] == "Expected a whole number, got text."
    assert chinese_error["message"] == "应为整数，实际为文本。"
    assert english.json()["title"] == "Some fields are invalid"
    assert chinese.json()["title"] == "部分字段无效"


async def test_illegal_transitions_name_statuses_in_the_readers_language(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, slug="twice", publish=True)
    url = f"/api/v1/operator/routes/{route['id']}/publish"
    english = await client.post(url, headers={**operator.headers, "Accept-Language": "en"})
    chinese = await client.post(url, headers={**operator.headers, "Accept-Language": "zh"})
    assert english.json()["code"] == chinese.json()["code"] == "illegal_transition"
    assert english.json()["detail"] == "A published route cannot become published."
    assert chinese.json()["detail"] == "线路状态不能从 已发布 变为 已发布。"


async def test_departure_times_are_written_out_for_the_reader(
    client: httpx.AsyncClient, operator: Account
) -> None:
    from tests.factories import published_bus_departure

    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    url = f"/api/v1/departures/{departure['id']}"
    english = (await client.get(url, headers={"Accept-Language": "en"})).json()
    chinese = (await client.get(url, headers={"Accept-Language": "zh-CN"})).json()
    # 08:00 in the departure's own zone (Asia/Shanghai), whatever the server's zone.
    assert english["departs_at_text"].replace("\u202f", " ").endswith("8:00 AM")
    assert chinese["departs_at_text"].endswith(" 08:00")
    assert "年" in chinese["departs_at_text"]
    listing = (await client.get("/api/v1/routes/picking-line/departures?lang=en")).json()
    assert listing["items"][0]["departs_at_text"] == english["departs_at_text"]
