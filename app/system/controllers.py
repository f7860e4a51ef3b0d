"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from app.core import database, redis_client
from app.core.errors import Unauthorized, problem_responses
from app.core.i18n import _
from app.core.openapi import PrometheusTextOperation
from app.core.settings import Settings
from app.system.metrics import render


class HealthOut(msgspec.Struct, kw_only=True):
    status: Literal["ok"]


class ReadyOut(msgspec.Struct, kw_only=True):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class SystemController(Controller):
    tags = ["System"]
    include_in_schema = True

    @get("/health", summary="The process is alive")
    async def health(self) -> HealthOut:
        return HealthOut(status="ok")

    @get(
        "/ready",
        summary="The service can serve requests",
        description="Checks the database, and Redis when one is configured; 503 when one fails.",
    )
    async def ready(self, settings: NamedDependency[Settings]) -> Response[ReadyOut]:
        redis_url = settings.redis_url
        # Both at once: with both away the probe waits for the slower bound, not the sum.
        if redis_url:
            database_check, redis_check = await asyncio.gather(
                _check_database(), _check_redis(redis_url)
            )
            checks = {"database": database_check, "redis": redis_check}
        else:
            checks = {"database": await _check_database()}
        ready = all(value == "ok" for value in checks.values())
        return Response(
            ReadyOut(status="ready" if ready else "unavailable", checks=checks),
            status_code=200 if ready else 503,
        )

    @get(
        "/metrics",
        summary="Prometheus metrics",
        description="Requests by route, bookings by status, holds expired, payments and "
        "refunds by outcome, job runs and failures, backlogs. With TOURLINE_METRICS_TOKEN "
        "set, send it as `Authorization: Bearer <token>`.",
        media_type="text/plain; version=0.0.4",
        operation_class=PrometheusTextOperation,
        responses=problem_responses(401),
    )
    async def metrics(
        self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]
    ) -> Response[bytes]:
        if settings.metrics_token:
            scheme, _sep, given = request.headers.get("authorization", "").partition(" ")
            expected = settings.metrics_token.encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected
            ):
                raise Unauthorized(_("Send the metrics token."), code="metrics_token_required")
        return Response(await render(settings), media_type="text/plain; version=0.0.4")


# A probe answers within about this long (a hanging database must not hang the probe).
READY_CHECK_SECONDS = 2.0


async def _check_database() -> str:
    try:
        await asyncio.wait_for(database.ping(), timeout=READY_CHECK_SECONDS)
        return "ok"
    except Exception as exc:  # any failure means not ready
        return f"unavailable: {type(exc.__cause__ or exc).__name__}"


async def _check_redis(url: str) -> str:
    # The shared client, with the requests' short timeouts: a hanging Redis makes /ready
    # answer 503 within a second, not hang the probe.
    return await redis_client.ping(url)
