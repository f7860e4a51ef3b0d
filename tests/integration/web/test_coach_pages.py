"""The coach plan pages behind staff login, through HTTP against a real database: the plan of
a departure's excursions, the automatic assignment and a move by a form (no script), what a
full coach says, the printable coach manifest and its CSV, and another operator's
departure as a page that is not there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.accounts.tables import AuditEntry
from tests.assertions import ok
from tests.conftest import Account
from tests.excursion_factories import confirmed_booking, excursion_with_coaches, train_departure
from tests.integration.web.test_staff_pages import (
    cookie,
    csrf_for,
    csrf_of,
    get_page,
    html_of,
    post_form,
    text_of,
)


@pytest.fixture(autouse=True)
def no_stored_cookies(client: httpx.AsyncClient) -> Iterator[None]:
    client.cookies.clear()
    yield
    client.cookies.clear()


async def planned_departure(
    client: httpx.AsyncClient, operator: Account
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    departure = await train_departure(client, operator.headers)
    bookings = [
        await confirmed_booking(
            client, departure["id"], "soft_sleeper", ["王芳", "王小明", "王奶奶"]
        ),
        await confirmed_booking(client, departure["id"], "hard_sleeper", ["Zhao Lei", "Qian Xue"]),
    ]
    excursion, coaches = await excursion_with_coaches(
        client, operator.headers, departure["id"], [4, 3]
    )
    return departure, excursion, coaches, bookings


def coach_section(html: str, label: str) -> str:
    found = re.search(
        rf'<section class="coach"[^>]*>\s*<h3[^>]*>Coach {label} .*?</section>', html, re.S
    )
    assert found, html
    return text_of(found.group(0))


async def test_the_coach_plan_assigns_and_moves_parties_by_form(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, excursion, coaches, (family, couple) = await planned_departure(client, operator)
    page = f"/staff/departures/{departure['id']}/coaches"
    html = html_of(await get_page(client, operator, page))
    assert "Day 2 · Tianshan Heavenly Lake" in text_of(html)
    assert "0 of 5 travellers have a coach; 7 seats on 2 coaches." in text_of(html)
    assert "Nobody on this coach yet." in coach_section(html, "1")
    csrf = csrf_of(html)

    html = html_of(
        await post_form(
            client, operator, f"{page}/auto", {"csrf": csrf, "excursion_id": excursion["id"]}
        )
    )
    assert "5 travellers were given a coach." in text_of(html)
    assert family["reference"] in coach_section(html, "1")
    assert couple["reference"] in coach_section(html, "2")
    assert "3 of 4 seats taken, 1 free" in coach_section(html, "1")
    assert "Every traveller has a coach." in text_of(html)

    # The couple cannot join coach 1 (one place left): said on the page, nothing moves.
    move = {
        "csrf": csrf,
        "excursion_id": excursion["id"],
        "reference": couple["reference"],
        "coach_id": coaches[0]["id"],
    }
    html = html_of(await post_form(client, operator, f"{page}/move", move), 409)
    assert f"Coach 1 has 1 free place; {couple['reference']} needs 2." in text_of(html)
    assert couple["reference"] in coach_section(html, "2")
    # Off the coaches, then the family to coach 2 is still too many, the couple to 1 fits.
    html = html_of(await post_form(client, operator, f"{page}/move", {**move, "coach_id": ""}))
    assert f"{couple['reference']}: 2 travellers taken off the coaches." in text_of(html)
    assert "Without a coach" in text_of(html)
    html = html_of(
        await post_form(
            client, operator, f"{page}/move",
            {**move, "reference": family["reference"], "coach_id": coaches[1]["id"]},
        )
    )  # fmt: skip
    assert f"{family['reference']}: 3 travellers moved to coach 2." in text_of(html)
    plan = ok(
        await client.get(
            f"/api/v1/operator/excursions/{excursion['id']}/assignments", headers=operator.headers
        )
    )
    assert [len(item["parties"]) for item in plan["coaches"]] == [0, 1]
    assert [party["reference"] for party in plan["unassigned"]] == [couple["reference"]]
    # The forms' changes are audited like the API's.
    routes = {row["route"] for row in await AuditEntry.select(AuditEntry.route).run()}
    assert "/staff/departures/{departure_id}/coaches/move" in routes
    assert "/staff/departures/{departure_id}/coaches/auto" in routes

    # A forged form changes nothing.
    response = await post_form(
        client, operator, f"{page}/auto", {"csrf": "x", "excursion_id": excursion["id"]}
    )
    assert response.status_code == 403
    # The departure's page leads to the plan.
    html = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    assert f'href="{page}?lang=en"' in html


async def test_the_printable_coach_manifest_has_each_coachs_headcount(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, excursion, _coaches, (family, couple) = await planned_departure(client, operator)
    ok(
        await client.post(
            f"/api/v1/operator/excursions/{excursion['id']}/assignments",
            json={"auto": True},
            headers=operator.headers,
        )
    )
    late = await confirmed_booking(client, departure["id"], "hard_sleeper", ["孙一"])
    url = f"/staff/departures/{departure['id']}/excursions/{excursion['id']}/manifest"
    html = html_of(await get_page(client, operator, url, lang="zh"))
    page = text_of(html)
    assert "乘车名单：第2天 天山天池" in page
    assert "共 5 人：成人 5，老人 0，儿童 0" in page
    assert "1号车 · 新A·10001" in page
    assert "司机 司机1 +86 139 0000 0001" in page
    assert "共 3 人：成人 3，老人 0，儿童 0 · 4 座" in page
    assert family["reference"] in page
    assert couple["reference"] in page
    assert late["reference"] not in page
    assert "还有 1 位游客未安排车辆。" in page
    response = await get_page(client, operator, url, format="csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert len(response.content.decode("utf-8-sig").strip().splitlines()) == 6


async def test_another_operators_coach_plan_is_not_there(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure, excursion, _coaches, _bookings = await planned_departure(client, operator)
    other = await make_operator("other-rail")
    page = f"/staff/departures/{departure['id']}/coaches"
    assert (await get_page(client, other, page)).status_code == 404
    manifest = f"/staff/departures/{departure['id']}/excursions/{excursion['id']}/manifest"
    assert (await get_page(client, other, manifest)).status_code == 404
    # Its own page (with a token of its own) cannot move this operator's travellers.
    own = await train_departure(client, other.headers, slug="other-train")
    html = html_of(await get_page(client, other, f"/staff/departures/{own['id']}/coaches"))
    assert "No coach excursion is planned for this departure yet." in text_of(html)
    response = await post_form(
        client, other, f"/staff/departures/{own['id']}/coaches/auto",
        {"csrf": await csrf_for(client, other, own["id"]), "excursion_id": excursion["id"]},
    )  # fmt: skip
    assert response.status_code == 404
    # Without a login, the plan sends to the login page.
    response = await client.get(page, params={"lang": "en"})
    assert response.status_code in (302, 303)
    assert "/staff/login" in response.headers["location"]
    assert cookie(operator)
