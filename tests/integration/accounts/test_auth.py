"""Staff login, tokens and who may use which API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import jwt
import pytest

from app.core import clock
from app.core.settings import get_settings
from tests.conftest import STAFF_PASSWORD, Account

PROBLEM = "application/problem+json"
MakeOperator = Callable[..., Awaitable[Account]]


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- login


async def test_login_returns_a_bearer_token(client: httpx.AsyncClient, operator: Account) -> None:
    response = await login(client, operator.email, STAFF_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == get_settings().token_ttl_minutes * 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "tourline-staff"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == operator.email


async def test_login_email_is_case_insensitive(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await login(client, f"  {operator.email.upper()} ", STAFF_PASSWORD)
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, operator: Account
) -> None:
    wrong_password = await login(client, operator.email, "not-the-password")
    unknown_email = await login(client, "nobody@tourline.test", STAFF_PASSWORD)
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "invalid_credentials"
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.content == unknown_email.content


# ---------------------------------------------------------------- tokens


async def test_me_describes_the_logged_in_staff(
    client: httpx.AsyncClient, operator: Account, platform_admin: Account
) -> None:
    response = await client.get("/api/v1/auth/me", headers=operator.headers)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["email"] == operator.email
    assert me["role"] == "operator_admin"
    assert me["operator_id"] == operator.operator_id
    assert me["is_active"] is True
    assert "password_hash" not in me
    admin = (await client.get("/api/v1/auth/me", headers=platform_admin.headers)).json()
    assert admin["role"] == "platform_admin"
    assert admin["operator_id"] is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_token"),
        ({"Authorization": "Bearer "}, "missing_token"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
    ],
)
async def test_me_without_a_valid_token_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == code


async def test_token_signed_with_another_key_is_401(
    client: httpx.AsyncClient, operator: Account
) -> None:
    claims = jwt.decode(operator.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-key-that-is-long-enough-000", algorithm="HS256")
    response = await client.get("/api/v1/auth/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_token_expires_after_its_ttl(client: httpx.AsyncClient, operator: Account) -> None:
    ttl = timedelta(minutes=get_settings().token_ttl_minutes)
    issued = clock.now()
    with clock.frozen(issued + ttl - timedelta(minutes=1)):
        still_valid = await client.get("/api/v1/auth/me", headers=operator.headers)
    assert still_valid.status_code == 200, still_valid.text
    with clock.frozen(issued + ttl + timedelta(minutes=1)):
        expired = await client.get("/api/v1/auth/me", headers=operator.headers)
        routes = await client.get("/api/v1/operator/routes", headers=operator.headers)
    assert expired.status_code == 401, expired.text
    assert expired.headers["content-type"].startswith(PROBLEM)
    assert expired.json()["code"] == "invalid_token"
    assert routes.status_code == 401
    # Back at the real time the same token works again: only the clock decided.
    assert (await client.get("/api/v1/auth/me", headers=operator.headers)).status_code == 200


# ---------------------------------------------------------------- platform administration


async def test_platform_admin_creates_and_lists_operators(
    client: httpx.AsyncClient, platform_admin: Account
) -> None:
    for slug in ("beta-rail", "alpha-bus"):
        response = await client.post(
            "/api/v1/admin/operators",
            json={
                "slug": slug,
                "name": {"zh_Hans": f"{slug} 公司", "en": f"{slug} company"},
                "contact_email": f"ops@{slug}.test",
                "contact_phone": "+86 371 6000 0000",
            },
            headers=platform_admin.headers,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["slug"] == slug
        assert created["currency"] == "CNY"
        assert created["time_zone"] == "Asia/Shanghai"
        assert created["default_locale"] == "zh_Hans"
    response = await client.get("/api/v1/admin/operators", headers=platform_admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert [o["slug"] for o in body["items"]] == ["alpha-bus", "beta-rail"]
    page = await client.get(
        "/api/v1/admin/operators",
        params={"page_size": 1, "page": 2},
        headers=platform_admin.headers,
    )
    assert [o["slug"] for o in page.json()["items"]] == ["beta-rail"]


async def test_duplicate_operator_slug_is_409(
    client: httpx.AsyncClient, platform_admin: Account, operator: Account
) -> None:
    response = await client.post(
        "/api/v1/admin/operators",
        json={
            "slug": operator.slug,
            "name": {"zh_Hans": "另一家"},
            "contact_email": "other@tourline.test",
            "contact_phone": "+86 371 6000 0001",
        },
        headers=platform_admin.headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "slug_taken"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"currency": "XYZ"}, "currency"), ({"time_zone": "Mars/Olympus"}, "time_zone")],
)
async def test_operator_with_unknown_currency_or_zone_is_400(
    client: httpx.AsyncClient, platform_admin: Account, overrides: dict[str, str], field: str
) -> None:
    response = await client.post(
        "/api/v1/admin/operators",
        json={
            "slug": "odd-one",
            "name": {"en": "Odd"},
            "contact_email": "odd@tourline.test",
            "contact_phone": "+86 371 6000 0002",
            **overrides,
        },
        headers=platform_admin.headers,
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("role", ["operator_admin", "operator_staff"])
async def test_operator_staff_cannot_use_the_admin_api(
    client: httpx.AsyncClient, make_operator: MakeOperator, role: str
) -> None:
    staff = await make_operator("zz-bus", role=role)
    listed = await client.get("/api/v1/admin/operators", headers=staff.headers)
    created = await client.post(
        "/api/v1/admin/operators",
        json={
            "slug": "sneaky",
            "name": {"en": "Sneaky"},
            "contact_email": "s@tourline.test",
            "contact_phone": "+86 371 6000 0003",
        },
        headers=staff.headers,
    )
    staff_for_operator = await client.post(
        f"/api/v1/admin/operators/{staff.operator_id}/staff",
        json={"email": "x@tourline.test", "name": "X", "password": STAFF_PASSWORD},
        headers=staff.headers,
    )
    for response in (listed, created, staff_for_operator):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["code"] == "platform_admin_required"
    # Nothing was created by the refused requests.
    assert (await login(client, "x@tourline.test", STAFF_PASSWORD)).status_code == 401


async def test_admin_api_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/admin/operators")
    assert response.status_code == 401
    assert response.json()["code"] == "missing_token"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/operator/routes"),
        ("GET", "/api/v1/operator/profile"),
        ("GET", "/api/v1/operator/staff"),
        ("POST", "/api/v1/operator/vehicles"),
    ],
)
async def test_platform_admin_cannot_use_the_operator_api(
    client: httpx.AsyncClient, platform_admin: Account, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=platform_admin.headers, json={})
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "not_operator_staff"


async def test_platform_admin_cannot_create_platform_admins_for_an_operator(
    client: httpx.AsyncClient, platform_admin: Account, operator: Account
) -> None:
    response = await client.post(
        f"/api/v1/admin/operators/{operator.operator_id}/staff",
        json={
            "email": "boss@tourline.test",
            "name": "Boss",
            "password": STAFF_PASSWORD,
            "role": "platform_admin",
        },
        headers=platform_admin.headers,
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["role"]


async def test_staff_for_an_unknown_operator_is_404(
    client: httpx.AsyncClient, platform_admin: Account
) -> None:
    response = await client.post(
        "/api/v1/admin/operators/00000000-0000-4000-8000-000000000000/staff",
        json={"email": "ghost@tourline.test", "name": "Ghost", "password": STAFF_PASSWORD},
        headers=platform_admin.headers,
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "operator_not_found"


async def test_duplicate_staff_email_is_409(
    client: httpx.AsyncClient, platform_admin: Account, operator: Account
) -> None:
    # Through the admin API, with the address in another case.
    response = await client.post(
        f"/api/v1/admin/operators/{operator.operator_id}/staff",
        json={"email": operator.email.upper(), "name": "Twin", "password": "another-password-1"},
        headers=platform_admin.headers,
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "email_taken"
    # Through the operator API, with the platform admin's address.
    response = await client.post(
        "/api/v1/operator/staff",
        json={"email": platform_admin.email, "name": "Twin", "password": "another-password-1"},
        headers=operator.headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "email_taken"
    # The original accounts still log in with their own passwords.
    assert (await login(client, operator.email, STAFF_PASSWORD)).status_code == 200
    assert (await login(client, operator.email, "another-password-1")).status_code == 401


# ---------------------------------------------------------------- operator staff


async def test_operator_admin_adds_staff(client: httpx.AsyncClient, operator: Account) -> None:
    response = await client.post(
        "/api/v1/operator/staff",
        json={"email": "Guide@ZZ-Bus.test", "name": "Guide Wang", "password": "guide-password-1"},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    staff = response.json()
    assert staff["email"] == "guide@zz-bus.test"
    assert staff["role"] == "operator_staff"
    assert staff["operator_id"] == operator.operator_id
    assert "password" not in staff
    assert "password_hash" not in staff

    listed = await client.get("/api/v1/operator/staff", headers=operator.headers)
    assert listed.status_code == 200, listed.text
    assert sorted(s["email"] for s in listed.json()) == sorted(
        ["guide@zz-bus.test", operator.email]
    )

    token = await login(client, "guide@zz-bus.test", "guide-password-1")
    assert token.status_code == 200, token.text
    guide = bearer(token.json()["access_token"])
    me = (await client.get("/api/v1/auth/me", headers=guide)).json()
    assert (me["role"], me["operator_id"]) == ("operator_staff", operator.operator_id)
    # Plain staff read the operator API but cannot add staff.
    assert (await client.get("/api/v1/operator/staff", headers=guide)).status_code == 200
    refused = await client.post(
        "/api/v1/operator/staff",
        json={"email": "intern@zz-bus.test", "name": "Intern", "password": "intern-password"},
        headers=guide,
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "operator_admin_required"


async def test_operator_admin_cannot_create_platform_admins(
    client: httpx.AsyncClient, operator: Account
) -> None:
    response = await client.post(
        "/api/v1/operator/staff",
        json={
            "email": "boss@zz-bus.test",
            "name": "Boss",
            "password": "boss-password-1",
            "role": "platform_admin",
        },
        headers=operator.headers,
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden_role"
    assert (await login(client, "boss@zz-bus.test", "boss-password-1")).status_code == 401


async def test_staff_only_see_their_own_operator(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    other = await make_operator("aa-rail")
    mine = await client.get("/api/v1/operator/staff", headers=operator.headers)
    theirs = await client.get("/api/v1/operator/staff", headers=other.headers)
    assert [s["email"] for s in mine.json()] == [operator.email]
    assert [s["email"] for s in theirs.json()] == [other.email]


async def test_short_staff_password_is_400(client: httpx.AsyncClient, operator: Account) -> None:
    response = await client.post(
        "/api/v1/operator/staff",
        json={"email": "weak@zz-bus.test", "name": "Weak", "password": "short"},
        headers=operator.headers,
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["password"]
