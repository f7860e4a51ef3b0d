"""HTTP-level behaviour every endpoint shares: problem details, limits, OpenAPI and probes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.core.i18n import gettext, use_locale
from app.core.settings import get_settings
from tests.conftest import Account
from tests.factories import create_route, itinerary_payload, route_payload

PROBLEM = "application/problem+json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


# ---------------------------------------------------------------- routing and body errors


async def test_unknown_path_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")
    body = assert_problem(response, 404, "not_found")
    assert body["instance"] == "/api/v1/no-such-thing"
    assert response.headers["content-language"] == "zh-Hans"


async def test_an_unknown_page_is_the_page_leading_back(client: httpx.AsyncClient) -> None:
    """Readers who mistype an address get a page, API clients a problem (above)."""
    response = await client.get("/lines-of-cherries", params={"lang": "en"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/?lang=en"' in response.text
    for address in ("/octo/nothing", "/static/missing.css"):
        assert_problem(await client.get(address), 404, "not_found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers.get("allow", "")
    response = await client.put("/api/v1/auth/login", json={})
    assert_problem(response, 405, "method_not_allowed")


@pytest.mark.parametrize("content", [b"{not json", b'{"email": "a@b.cn", ', b"[1, 2"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400, "malformed_json")
    assert "errors" not in body


async def test_body_larger_than_the_limit_is_413(client: httpx.AsyncClient) -> None:
    limit = get_settings().max_body_bytes
    assert limit == 1_000_000
    response = await client.post(
        "/api/v1/auth/login",
        content=b" " * (limit + 1),
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")
    # At the limit the body is read (and found not to be a login).
    response = await client.post(
        "/api/v1/auth/login", content=b" " * limit, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_streamed_body_without_length_is_limited_too(client: httpx.AsyncClient) -> None:
    limit = get_settings().max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 100_000 + 1):
            yield b" " * 100_000

    response = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


# ---------------------------------------------------------------- validation errors


async def test_validation_error_names_nested_fields(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, publish=False)
    url = f"/api/v1/operator/routes/{route['id']}/itinerary"

    missing_title = itinerary_payload()
    del missing_title["days"][0]["title"]
    response = await client.put(url, json=missing_title, headers=operator.headers)
    body = assert_problem(response, 400, "validation_error")
    assert fields(body) == ["days[0].title"]
    assert body["errors"][0]["source"] == "body"
    assert "days[0].title" in body["detail"]

    bad_time = itinerary_payload()
    bad_time["days"][0]["stops"][0]["arrive_time"] = "25:00"
    response = await client.put(url, json=bad_time, headers=operator.headers)
    assert fields(assert_problem(response, 400, "validation_error")) == [
        "days[0].stops[0].arrive_time"
    ]

    unknown_nested = itinerary_payload()
    unknown_nested["days"][0]["colour"] = "red"
    response = await client.put(url, json=unknown_nested, headers=operator.headers)
    assert fields(assert_problem(response, 400, "validation_error")) == ["days[0].colour"]

    # Rules the service checks (not the schema) name the field the same way.
    wrong_day = itinerary_payload()
    wrong_day["days"][0]["day_number"] = 5
    response = await client.put(url, json=wrong_day, headers=operator.headers)
    assert fields(assert_problem(response, 400, "validation_error")) == ["days[0].day_number"]

    # Nothing was stored by the rejected requests.
    itinerary = await client.get(url, headers=operator.headers)
    assert itinerary.json()["days"][0]["title"] == {"zh_Hans": "第1天", "en": "Day 1"}


@pytest.mark.parametrize(("field", "value"), [("status", "published"), ("operator_id", "x")])
async def test_unknown_field_is_named(
    client: httpx.AsyncClient, operator: Account, field: str, value: str
) -> None:
    response = await client.post(
        "/api/v1/operator/routes",
        json={**route_payload(), field: value},
        headers=operator.headers,
    )
    body = assert_problem(response, 400, "validation_error")
    assert fields(body) == [field]
    listed = await client.get("/api/v1/operator/routes", headers=operator.headers)
    assert listed.json()["total"] == 0


async def test_missing_field_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "someone@example.cn"})
    assert fields(assert_problem(response, 400, "validation_error")) == ["password"]


def translated(message: str, locale: str) -> str:
    with use_locale(locale):
        return gettext(message)


@pytest.mark.parametrize("headers", [{}, {"Accept-Language": "zh-CN"}, {"Accept-Language": "zh"}])
async def test_validation_title_in_chinese(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": "a@b.cn"}, headers=headers)
    body = assert_problem(response, 400, "validation_error")
    assert response.headers["content-language"] == "zh-Hans"
    assert body["title"] == translated("Some fields are invalid", "zh_Hans")
    # A catalog exists: the title is really Chinese, not the English message id.
    assert body["title"] != "Some fields are invalid"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Accept-Language": "en"}, ""),
        ({"Accept-Language": "en-GB,zh;q=0.5"}, ""),
        ({}, "?lang=en"),
    ],
)
async def test_validation_title_in_english(
    client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> None:
    response = await client.post(
        f"/api/v1/auth/login{query}", json={"email": "a@b.cn"}, headers=headers
    )
    body = assert_problem(response, 400, "validation_error")
    assert response.headers["content-language"] == "en"
    assert body["title"] == "Some fields are invalid"
    assert body["title"] == translated("Some fields are invalid", "en")


async def test_routing_errors_are_localized(client: httpx.AsyncClient) -> None:
    chinese = await client.get("/api/v1/nowhere")
    english = await client.get("/api/v1/nowhere", headers={"Accept-Language": "en"})
    assert assert_problem(chinese, 404, "not_found")["title"] == translated("Not found", "zh_Hans")
    assert assert_problem(english, 404, "not_found")["title"] == "Not found"
    assert english.headers["content-language"] == "en"


# ---------------------------------------------------------------- OpenAPI


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


async def test_openapi_every_operation_has_a_summary(openapi: dict[str, Any]) -> None:
    ops = operations(openapi)
    assert len(ops) > 40
    missing = [f"{method} {path}" for method, path, op in ops if not op.get("summary")]
    assert missing == []


async def test_openapi_every_request_body_has_a_schema(openapi: dict[str, Any]) -> None:
    with_body = [(m, p, op) for m, p, op in operations(openapi) if "requestBody" in op]
    assert any(p == "/api/v1/auth/login" for _m, p, _op in with_body)
    missing = []
    for method, path, op in with_body:
        content = op["requestBody"].get("content", {})
        if not content or not all(media.get("schema") for media in content.values()):
            missing.append(f"{method} {path}")
    assert missing == []


async def test_openapi_every_operation_declares_a_problem_response(
    openapi: dict[str, Any],
) -> None:
    missing = []
    for method, path, op in operations(openapi):
        if path in ("/health", "/ready"):
            continue
        # The OCTO API answers with OCTO's own error body, as its clients expect.
        media_type = "application/json" if path.startswith("/octo/") else PROBLEM
        problems = [
            status
            for status, response in op.get("responses", {}).items()
            if status.startswith("4") and media_type in response.get("content", {})
        ]
        if not problems:
            missing.append(f"{method} {path}")
    assert missing == []


async def test_openapi_declares_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    scheme = openapi["components"]["securitySchemes"]["BearerToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    me = openapi["paths"]["/api/v1/auth/me"]["get"]
    assert {"BearerToken": []} in me["security"]


async def test_schema_serves_an_html_ui(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "openapi.json" in response.text


# ---------------------------------------------------------------- probes


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    # No Redis configured in the tests: nothing to check there.
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def _ready_with_redis(redis_url: str) -> httpx.Response:
    settings = dataclasses.replace(get_settings(), redis_url=redis_url)
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        return await other.get("/ready")


async def test_ready_checks_a_configured_redis(migrated_database: None, redis_url: str) -> None:
    response = await _ready_with_redis(redis_url)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_ready_is_503_when_redis_is_unreachable(migrated_database: None) -> None:
    response = await _ready_with_redis("redis://127.0.0.1:1/0")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")
