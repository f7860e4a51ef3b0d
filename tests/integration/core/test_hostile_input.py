"""What an attacker sends is a 400 naming what is wrong, before anything runs, and every
staff change is audited with the change: non-object and malformed bodies, NUL characters
anywhere, JSON nested a thousand deep, wrong types that used to be converted, CSV cells a
spreadsheet would run, and an OpenAPI schema that says what is enforced."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.accounts.tables import AuditEntry
from app.core.csv_files import csv_text
from app.core.database import get_engine
from app.core.engine import is_sqlite
from app.core.money import PriceOut
from app.core.request_input import MAX_JSON_DEPTH
from app.partners.reports import statement_csv
from app.partners.schemas import CreditOut, StatementLine, StatementOut, StatementTotals
from tests.assertions import fields, ok, problem
from tests.conftest import Account
from tests.factories import create_route, published_bus_departure, route_payload

ROUTES = "/api/v1/operator/routes"
AUDIT = "/api/v1/operator/audit"
NON_OBJECTS = [b'"x"', b"[]", b"1", b"null", b"true", b'["x"]']


async def audit_log(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, params={"page_size": 100}, headers=account.headers)
    return list(ok(response)["items"])


async def agency_key(client: httpx.AsyncClient, operator: Account) -> str:
    agency = ok(
        await client.post(
            "/api/v1/operator/agencies",
            json={"name": "Hostile Tours", "contact_email": "ops@hostile.example"},
            headers=operator.headers,
        ),
        201,
    )
    key = ok(
        await client.post(
            f"/api/v1/operator/agencies/{agency['id']}/keys", json={}, headers=operator.headers
        ),
        201,
    )
    return str(key["key"])


# ---------------------------------------------------------------- staff changes


async def test_a_staff_change_with_a_body_that_is_no_object_is_400_before_it_runs(
    client: httpx.AsyncClient, operator: Account, platform_admin: Account
) -> None:
    draft = await create_route(client, operator.headers, publish=False, slug="draft-line")
    before = await audit_log(client, operator)
    targets = [
        (operator, "POST", f"{ROUTES}/{draft['id']}/publish"),  # takes no body at all
        (operator, "PATCH", f"{ROUTES}/{draft['id']}"),
        (operator, "DELETE", f"{ROUTES}/{draft['id']}"),
        (operator, "POST", ROUTES),
        (platform_admin, "POST", "/api/v1/admin/operators"),
    ]
    for account, method, path in targets:
        for content in NON_OBJECTS:
            for content_type in ("application/json", "text/plain"):
                response = await client.request(
                    method, path, content=content,
                    headers={**account.headers, "Content-Type": content_type},
                )  # fmt: skip
                body = problem(response, 400, "validation_error")
                assert body["errors"] == [
                    {"field": "body", "message": body["errors"][0]["message"], "source": "body"}
                ], (method, path, content)
        malformed = await client.request(
            method, path, content=b'{"name": ', headers={**account.headers, **JSON}
        )
        problem(malformed, 400, "malformed_json")
    # Nothing ran: the draft is still a draft, there, and nothing was logged as changed.
    detail = ok(await client.get(f"{ROUTES}/{draft['id']}", headers=operator.headers))
    assert detail["status"] == "draft"
    assert await audit_log(client, operator) == before
    # A page's form gets a page.
    departure = (await published_bus_departure(client, operator.headers))[2]
    page = await client.post(
        f"/staff/departures/{departure['id']}/check-in",
        content=b'"x"',
        headers={**operator.headers, **JSON},
    )
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")


JSON = {"Content-Type": "application/json"}


async def test_each_committed_staff_change_has_exactly_one_entry(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = ok(await client.post(ROUTES, json=route_payload(), headers=operator.headers), 201)
    renamed = {"name": {"zh_Hans": "新名字", "en": "New Name"}}
    ok(await client.patch(f"{ROUTES}/{route['id']}", json=renamed, headers=operator.headers))
    conflict = await client.post(ROUTES, json=route_payload(), headers=operator.headers)
    problem(conflict, 409)
    entries = await audit_log(client, operator)
    assert [(e["method"], e["status_code"]) for e in reversed(entries)] == [
        ("POST", 201),
        ("PATCH", 200),
        ("POST", 409),  # the refused attempt, recorded once, as refused
    ]
    assert len({e["request_id"] for e in entries}) == 3


async def test_a_change_whose_audit_entry_cannot_be_written_does_not_commit(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = ok(await client.post(ROUTES, json=route_payload(), headers=operator.headers), 201)
    engine = get_engine()
    if is_sqlite():
        await engine.run_ddl(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entry "
            "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
    else:
        await engine.run_ddl(
            "CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
        )
        await engine.run_ddl(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )
    try:
        renamed = {"name": {"zh_Hans": "无记录", "en": "Unrecorded"}}
        response = await client.patch(
            f"{ROUTES}/{route['id']}", json=renamed, headers=operator.headers
        )
        assert response.status_code >= 400
    finally:
        if is_sqlite():
            await engine.run_ddl("DROP TRIGGER refuse_audit")
        else:
            await engine.run_ddl("DROP TRIGGER refuse_audit ON audit_entry")
            await engine.run_ddl("DROP FUNCTION refuse_audit()")
    # The change rolled back with its entry: never a change without its record.
    detail = ok(await client.get(f"{ROUTES}/{route['id']}", headers=operator.headers))
    assert detail["name"]["en"] == route["name"]["en"]
    entries = (
        await AuditEntry.select(AuditEntry.method).where(AuditEntry.path.like(f"{ROUTES}%")).run()
    )
    assert [entry["method"] for entry in entries] == ["POST"]


# ---------------------------------------------------------------- NUL characters


def _with_nul(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "a%00b", template)


async def test_a_nul_in_any_path_parameter_is_400_naming_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    key = await agency_key(client, operator)
    schema = ok(await client.get("/schema/openapi.json"))
    checked = 0
    for template, operations in schema["paths"].items():
        names = re.findall(r"\{([^}:]+)", template)
        if not names:
            continue
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            headers = {"Authorization": f"Bearer {key}"} if template.startswith("/octo") else {}
            headers = headers or operator.headers
            response = await client.request(method.upper(), _with_nul(template), headers=headers)
            assert response.status_code == 400, (method, template, response.text)
            body = response.json()
            if template.startswith("/octo"):
                assert (body["error"], body["field"]) == ("BAD_REQUEST", names[0])
            else:
                assert body["errors"][0]["field"] == names[0], (method, template, body)
                assert body["errors"][0]["source"] == "path"
            checked += 1
    assert checked > 60
    # Pages too (they are not in the schema), as pages.
    for path in ("/bookings/a%00b", "/lines/a%00b", "/bookings/a%00b/pay"):
        page = await client.get(path)
        assert page.status_code == 400, path
        assert page.headers["content-type"].startswith("text/html")


async def test_a_nul_in_a_form_field_is_400_naming_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = (await published_bus_departure(client, operator.headers))[2]
    response = await client.post(
        "/api/v1/operator/departures/{}/check-in".format(departure["id"]),
        content=b"reference=TL%00X",
        headers={**operator.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert fields(problem(response, 400, "validation_error")) == ["reference"]
    page = await client.post(
        "/find-booking",
        content=b"reference=TL%00X&email=a%40b.cn",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")


# ---------------------------------------------------------------- deep JSON


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    "content",
    [nested(1000), b"[" * 1000 + b"]" * 1000, b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["objects", "arrays", "deeper"],
)
async def test_json_nested_too_deep_is_400_on_every_kind_of_endpoint(
    client: httpx.AsyncClient, operator: Account, content: bytes
) -> None:
    key = await agency_key(client, operator)
    for path, headers in (
        ("/api/v1/bookings", {}),
        ("/api/v1/auth/login", {}),
        (ROUTES, operator.headers),
        ("/api/v1/operator/agencies", operator.headers),
    ):
        response = await client.post(path, content=content, headers={**headers, **JSON})
        assert response.status_code == 400, (path, response.text)
    octo = await client.post(
        "/octo/availability", content=content, headers={"Authorization": f"Bearer {key}", **JSON}
    )
    assert octo.status_code == 400
    assert octo.json()["error"] == "BAD_REQUEST"


async def test_the_depth_limit_is_the_only_limit(client: httpx.AsyncClient) -> None:
    deep = problem(
        await client.post("/api/v1/bookings", content=nested(MAX_JSON_DEPTH + 1), headers=JSON),
        400,
    )
    assert fields(deep) == ["body"]
    assert str(MAX_JSON_DEPTH) in deep["errors"][0]["message"]
    # At the limit it is read, and answered by the body's own rules.
    within = problem(
        await client.post("/api/v1/bookings", content=nested(MAX_JSON_DEPTH - 1), headers=JSON),
        400,
    )
    assert fields(within) != ["body"]


ODD_FORMS = [
    b"%ff%fe=%ff%fe",
    b"reference=" + b"A" * 50_000,
    b"a=1&" * 2000,
    b"passengers[0].name=x&passengers[999999999999].name=y&counts.standard=99999999999999",
    b"=&&==&%",
    b"csrf=%00",
]


async def test_page_forms_never_fail_on_odd_input(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    # Logged in (the pages' cookie is the staff token), with no form token.
    cookie = {"Cookie": f"tourline_staff={operator.token}"}
    paths = [
        f"/departures/{departure['id']}/book",
        f"/departures/{departure['id']}/waitlist",
        "/find-booking",
        "/staff/login",
        "/bookings/TLXXXXXX/details",
        "/bookings/TLXXXXXX/pay",
        "/bookings/TLXXXXXX/cancel",
        "/bookings/TLXXXXXX/rebook",
        f"/staff/departures/{departure['id']}/check-in",
        f"/staff/departures/{departure['id']}/advisory",
        f"/staff/departures/{departure['id']}/cancel",
    ]
    for path in paths:
        for content in ODD_FORMS:
            for content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/json",
                "",
            ):
                response = await client.post(
                    path, content=content, headers={**cookie, "Content-Type": content_type}
                )
                assert response.status_code < 500, (path, content[:40], content_type)


# ---------------------------------------------------------------- strict bodies


async def test_wrong_types_in_a_body_are_400_naming_the_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    contact = {"name": "Li Lei", "email": "li@example.cn", "phone": "+86 138 0000 0000"}
    wrong = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "count": "2"}],
        "contact": contact,
    }
    body = problem(await client.post("/api/v1/bookings", json=wrong), 400, "validation_error")
    assert fields(body) == ["counts[0].count"]
    for count in (2.0, True):
        wrong["counts"] = [{"seat_class": "standard", "count": count}]
        body = problem(await client.post("/api/v1/bookings", json=wrong), 400)
        assert fields(body) == ["counts[0].count"]
    wrong["counts"] = [{"seat_class": "standard", "count": 2}]
    ok(await client.post("/api/v1/bookings", json=wrong), 201)
    # Staff bodies too: an amount as text is no amount.
    fares = {"fares": [{"seat_class": "standard", "passenger_type": "adult", "amount": "6800"}]}
    body = problem(
        await client.put(f"{ROUTES}/{route['id']}/fares", json=fares, headers=operator.headers),
        400,
    )
    assert fields(body) == ["fares[0].amount"]
    # Query parameters are text on the wire, and still read as numbers.
    listed = ok(await client.get(ROUTES, params={"page_size": "1"}, headers=operator.headers))
    assert listed["page_size"] == 1


async def test_octo_bodies_are_not_converted_either(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    key = await agency_key(client, operator)
    headers = {"Authorization": f"Bearer {key}"}
    today = date.today().isoformat()
    cases = [
        ("/octo/availability", {"productId": 5, "optionId": "standard"}, "productId"),
        (
            "/octo/availability",
            {"productId": route["id"], "optionId": "standard", "localDateStart": 20260101,
             "localDateEnd": today},
            "localDateStart",
        ),
        (
            "/octo/availability",
            {"productId": route["id"], "optionId": "standard", "localDateStart": today,
             "localDateEnd": today, "units": [{"id": "adult", "quantity": "2"}]},
            "units[0].quantity",
        ),
        (
            "/octo/bookings",
            {"uuid": 12345, "productId": route["id"], "optionId": "standard",
             "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}]},
            "uuid",
        ),
        (
            "/octo/bookings",
            {"uuid": str(uuid4()), "productId": route["id"], "optionId": "standard",
             "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}],
             "expirationMinutes": "30"},
            None,
        ),
    ]  # fmt: skip
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, body, response.text)
        error = response.json()
        assert error["error"] == "BAD_REQUEST", error
        if field is not None:
            assert error["field"] == field, error


# ---------------------------------------------------------------- CSV injection

HOSTILE = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(1)", "\tTab", "\rReturn"]


def test_formula_cells_are_made_text_in_the_shared_writer() -> None:
    text = csv_text(["=head"], [[name] for name in HOSTILE] + [[-5], ["plain"], ["a=b"]])
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in rows] == [
        "'=head",
        *[f"'{name}" for name in HOSTILE],
        "-5",
        "plain",
        "a=b",
    ]


async def test_the_manifest_csv_neutralizes_formulas(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = (await published_bus_departure(client, operator.headers))[2]
    seats = ["1A", "1B", "1C", "1D", "2A", "2B"]
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure["id"],
            "seats": [{"label": seat} for seat in seats],
            "contact": {"name": "@SUM(1)", "email": "x@example.cn", "phone": "+86 138 0000 0000"},
            "passengers": [{"name": name} for name in HOSTILE],
        },
    )
    ok(response, 201)
    manifest = await client.get(
        f"/api/v1/operator/departures/{departure['id']}/manifest",
        params={"format": "csv"},
        headers={**operator.headers, "Accept-Language": "en"},
    )
    assert manifest.status_code == 200, manifest.text
    rows = list(csv.DictReader(io.StringIO(manifest.content.decode("utf-8-sig"))))
    assert len(rows) == len(HOSTILE)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert '\'=HYPERLINK("http://x","y")' in {row["Passenger"] for row in rows}
    assert {row["Contact"] for row in rows} == {"'@SUM(1)"}


def test_the_statement_csv_neutralizes_formulas() -> None:
    now = datetime(2026, 5, 1, 8, tzinfo=UTC)
    price = PriceOut(amount=0, currency="CNY", formatted="¥0.00")
    line = StatementLine(
        reference="TL-A", partner_uuid=None, reseller_reference="=cmd|'/c calc'!A0",
        status="confirmed", departure_id=uuid4(), departs_at=now, seats=1, confirmed_at=now,
        cancelled_at=None, gross=100, commission=10, net=90, refunded=100, net_owed=-10,
    )  # fmt: skip
    statement = StatementOut(
        agency_id=uuid4(), agency_name="-Agency", period_start=now.date(), period_end=now.date(),
        time_zone="Asia/Shanghai", currency="CNY",
        totals=StatementTotals(
            bookings=1, seats=1, gross=price, commission=price, net=price, refunded=price,
            net_owed=price, settled=price,
        ),
        credit=CreditOut(limit=price, used=price, available=price), lines=[line],
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(statement_csv(statement))))
    assert rows[1][1] == "'=cmd|'/c calc'!A0"
    # Amounts we compute stay numbers, negative ones too.
    assert rows[1][10] == "-0.10"


# ---------------------------------------------------------------- the schema says it


async def test_openapi_says_request_bodies_refuse_unknown_fields_and_page_limits(
    client: httpx.AsyncClient, operator: Account
) -> None:
    schema = ok(await client.get("/schema/openapi.json"))
    components = schema["components"]["schemas"]

    def closed(node: Any, seen: set[str]) -> None:
        """Every object schema with properties reachable from `node` is closed."""
        if isinstance(node, list):
            for item in node:
                closed(item, seen)
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                closed(components[name], seen)
            return
        if "properties" in node:
            assert node.get("additionalProperties") is False, node
        for value in node.values():
            closed(value, seen)

    bodies = 0
    for path, operations in schema["paths"].items():
        if path.startswith("/octo"):
            continue  # OCTO bodies follow the OCTO spec, which lets clients send more fields.
        for operation in operations.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body is not None:
                closed(body, set())
                bodies += 1
    assert bodies > 30
    # And it is so: an unknown field is a 400 naming it.
    sneaky = {**route_payload(), "status": "published"}
    body = problem(await client.post(ROUTES, json=sneaky, headers=operator.headers), 400)
    assert fields(body) == ["status"]

    paged = 0
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter["name"] == "page_size":
                    assert parameter["schema"]["minimum"] == 1
                    assert parameter["schema"]["maximum"] == 100  # TOURLINE_MAX_PAGE_SIZE
                    paged += 1
                if parameter["name"] == "page":
                    assert parameter["schema"]["minimum"] == 1
    assert paged > 5
    # The limits are the enforced ones.
    for size, status in (("0", 400), ("100", 200), ("101", 400)):
        response = await client.get(ROUTES, params={"page_size": size}, headers=operator.headers)
        assert response.status_code == status, (size, response.text)
