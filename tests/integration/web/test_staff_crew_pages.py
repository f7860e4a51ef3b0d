"""The operator's crew page (/staff/departures/{id}/crew): the roster as a table, a form that
replaces it whole (adding in the empty rows, removing by ticking), problems shown beside the
row they are on, admins only, the form token checked and the change audited; the crew on the
departure page and the printed manifest; and the day plans on the public line page."""

from __future__ import annotations

import re

import httpx

from tests.assertions import ok
from tests.conftest import Account
from tests.integration.booking.test_trip_plans import planned_trip
from tests.integration.catalogue.test_day_plans_and_crew import CREW
from tests.integration.web.test_staff_pages import (
    ADMIN_ONLY,
    EXPIRED_FORM,
    body_rows,
    csrf_of,
    done_notice,
    field_error,
    forbidden_message,
    get_page,
    html_of,
    no_stored_cookies,
    post_form,
    text_of,
)

__all__ = ["no_stored_cookies"]  # the autouse fixture: no staff cookie between tests
DEPARTURES = "/api/v1/operator/departures"


def crew_table(html: str) -> list[list[str]]:
    match = re.search(r'<table class="staff-table crew-table">(.*?)</table>', html, re.S)
    assert match, "no crew table on the page"
    return body_rows(match.group(1))


def roster_form(html: str, csrf: str) -> dict[str, str]:
    """The form's fields as the browser would send them untouched."""
    form: dict[str, str] = {"csrf": csrf}
    inputs = r'<input id="[^"]*" name="(members[^"]*)"[^>]*value="([^"]*)"'
    for name, value in re.findall(inputs, html):
        form[name] = value
    selects = r'<select [^>]*name="(members[^"]*)"[^>]*>(.*?)</select>'
    for name, options in re.findall(selects, html, re.S):
        # The selected option, else the first, as a browser sends it.
        chosen = re.search(r'<option value="(\w+)" selected', options) or re.search(
            r'<option value="(\w+)"', options
        )
        assert chosen
        form[name] = chosen.group(1)
    return form


async def test_an_admin_reads_and_replaces_the_roster_on_the_crew_page(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    path = f"/staff/departures/{departure['id']}/crew"
    html = html_of(await get_page(client, operator, path))
    assert crew_table(html) == [
        ["李建华", "train steward", "+86 138 0371 0001", "Car 1"],
        ["王医生", "medical staff", "+86 138 0371 0002", "Car 2"],
        ["Aliya", "guide", "+86 139 9901 0003", "新A·12345"],
    ]
    form = roster_form(html, csrf_of(html))
    # Three members and three empty rows to add people.
    assert form["members[2].name"] == "Aliya"
    assert form["members[5].name"] == ""
    assert form["members[0].role"] == "steward"

    # Remove the doctor, add a narrator in an empty row.
    form["members[1].remove"] = "yes"
    form.update(
        {
            "members[3].name": "刘文博",
            "members[3].role": "narrator",
            "members[3].phone": "+86 138 0371 3595",
            "members[3].car": "2",
        }
    )
    html = html_of(await post_form(client, operator, path, form))
    assert done_notice(html) == "The crew roster is saved: 3 members."
    assert [row[0] for row in crew_table(html)] == ["李建华", "Aliya", "刘文博"]
    api = ok(await client.get(f"{DEPARTURES}/{departure['id']}/crew", headers=operator.headers))
    assert api["members"][2] == {
        "name": "刘文博",
        "role": "narrator",
        "phone": "+86 138 0371 3595",
        "car": 2,
        "coach": "",
    }

    # A problem is shown beside the row it is on, and nothing changes.
    form = roster_form(html, csrf_of(html))
    form.update({"members[4].name": "Nobody", "members[4].phone": "+86 1", "members[4].car": "x"})
    html = html_of(await post_form(client, operator, path, form), 400)
    assert field_error(html, "members-4-phone").startswith("Give a phone number")
    assert len(ok(await client.get(f"{DEPARTURES}/{departure['id']}/crew",
                                   headers=operator.headers))["members"]) == 3  # fmt: skip
    form["members[4].phone"] = "+86 138 0000 0000"
    html = html_of(await post_form(client, operator, path, form), 400)
    assert field_error(html, "members-4-car")
    form["members[4].car"] = "7"
    html = html_of(await post_form(client, operator, path, form), 400)
    assert field_error(html, "members-4-car") == "The departure's vehicle has no car 7."

    # The change made on the page is in the audit log, as the form sent it.
    items = ok(await client.get("/api/v1/operator/audit", headers=operator.headers))["items"]
    saved = [item for item in items if item["path"] == path and item["status_code"] == 200]
    assert len(saved) == 1
    assert saved[0]["changes"]["members[3].name"] == "刘文博"
    assert saved[0]["changes"]["csrf"] == "[redacted]"


async def test_staff_see_the_roster_without_the_form_and_cannot_post_it(
    client: httpx.AsyncClient, operator: Account, make_operator: object
) -> None:
    departure = await planned_trip(client, operator)
    staff = await make_operator("zz-bus", "operator_staff")  # type: ignore[operator]
    path = f"/staff/departures/{departure['id']}/crew"
    html = html_of(await get_page(client, staff, path))
    assert len(crew_table(html)) == 3
    assert 'name="members[0].name"' not in html
    departure_page = html_of(await get_page(client, staff, f"/staff/departures/{departure['id']}"))
    csrf = csrf_of(departure_page)
    html = html_of(
        await post_form(
            client, staff, path,
            {"csrf": csrf, "members[0].name": "X", "members[0].role": "guide",
             "members[0].phone": "+86 138 0000 0000"},
        ),
        403,
    )  # fmt: skip
    assert ADMIN_ONLY in text_of(html)
    assert len(ok(await client.get(f"{DEPARTURES}/{departure['id']}/crew",
                                   headers=operator.headers))["members"]) == 3  # fmt: skip


async def test_a_forged_form_changes_nothing_and_another_operator_sees_nothing(
    client: httpx.AsyncClient, operator: Account, make_operator: object
) -> None:
    departure = await planned_trip(client, operator)
    path = f"/staff/departures/{departure['id']}/crew"
    html = html_of(
        await post_form(client, operator, path, {"csrf": "forged", "members[0].name": ""}), 403
    )
    assert forbidden_message(html) == EXPIRED_FORM
    rival = await make_operator("yy-tours")  # type: ignore[operator]
    html_of(await get_page(client, rival, path), 404)
    # Not logged in: to the login page, and back here after.
    response = await get_page(client, None, path)
    assert response.status_code in (302, 303)
    assert "/staff/login" in response.headers["location"]
    assert len(ok(await client.get(f"{DEPARTURES}/{departure['id']}/crew",
                                   headers=operator.headers))["members"]) == len(CREW)  # fmt: skip


async def test_the_crew_is_on_the_departure_page_and_the_printed_manifest(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    html = html_of(await get_page(client, operator, f"/staff/departures/{departure['id']}"))
    crew = re.search(r'<ul class="crew">(.*?)</ul>', html, re.S)
    assert crew
    assert "train steward: 李建华 · +86 138 0371 0001 · Car 1" in text_of(crew.group(1))
    assert f'href="/staff/departures/{departure["id"]}/crew?lang=en"' in html
    manifest = html_of(
        await get_page(client, operator, f"/staff/departures/{departure['id']}/manifest")
    )
    assert crew_table(manifest)[1] == ["medical staff", "王医生", "+86 138 0371 0002", "Car 2"]
    chinese = html_of(
        await get_page(client, operator, f"/staff/departures/{departure['id']}/manifest", lang="zh")
    )
    assert crew_table(chinese)[0][:2] == ["列车管家", "李建华"]


async def test_the_line_page_shows_each_days_plan(
    client: httpx.AsyncClient, operator: Account
) -> None:
    await planned_trip(client, operator)
    english = html_of(await client.get("/lines/xinjiang-train", params={"lang": "en"}))
    days = re.search(r'<ol class="days">(.*?)</ol>', english, re.S)
    assert days
    text = text_of(days.group(1))
    assert "Day 1: Tianshan Heavenly Lake" in text
    assert "09:30–16:00 Heavenly Lake: Lakeside walk" in text
    assert "Meals lunch, dinner Night On the train Back on board by 19:30" in text
    assert "Night Kanas Lodge Jiadengyu, Kanas, Burqin County · +86 906 6326 000" in text
    chinese = html_of(await client.get("/lines/xinjiang-train", params={"lang": "zh"}))
    assert "喀纳斯山庄" in chinese
    assert "早餐、午餐、晚餐" in chinese
