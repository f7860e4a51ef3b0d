"""An agency manages its own API keys through the partner API (problem+json errors)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.core.errors import TooManyRequests, Unauthorized, problem_responses
from app.core.i18n import _
from app.core.settings import Settings
from app.partners import octo, services
from app.partners.controllers.octo import provide_agency
from app.partners.schemas import AgencyPrincipal, ApiKeyCreate, ApiKeyCreated, ApiKeyOut


async def provide_partner(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> AgencyPrincipal:
    """The agency behind the key, for the partner API outside OCTO (problem+json errors)."""
    try:
        return await provide_agency(request, settings)
    except octo.OctoError as exc:
        if exc.status == 429:
            raise TooManyRequests(
                _("Too many requests for this API key; slow down."),
                retry_after=int(exc.headers["Retry-After"]),
            ) from None
        raise Unauthorized(
            _("Send a partner API key as Authorization: Bearer <key>."), code="invalid_api_key"
        ) from None


class PartnerKeyController(Controller):
    """An agency manages its own API keys with one of them."""

    path = "/api/v1/partner/keys"
    tags = ["Partners: API keys"]
    dependencies = {"agency": Provide(provide_partner)}
    security = [{"PartnerKey": []}]

    @get("/", summary="My API keys", responses=problem_responses(401, 429))
    async def list_keys(self, agency: NamedDependency[AgencyPrincipal]) -> list[ApiKeyOut]:
        return await services.own_keys(agency)

    @post(
        "/",
        summary="Create an API key",
        description="The key is in this response only; it is stored as a hash.",
        responses=problem_responses(400, 401, 429),
    )
    async def create_key(
        self, agency: NamedDependency[AgencyPrincipal], data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyCreated:
        return await services.create_own_key(agency, data.name)

    @post(
        "/{key_id:uuid}/rotate",
        summary="Replace an API key",
        description="A new key is returned and the old one stops working at once.",
        responses=problem_responses(401, 404, 409, 429),
        status_code=200,
    )
    async def rotate_key(
        self, agency: NamedDependency[AgencyPrincipal], key_id: FromPath[UUID]
    ) -> ApiKeyCreated:
        return await services.rotate_own_key(agency, key_id)

    @delete(
        "/{key_id:uuid}",
        summary="Revoke an API key",
        responses=problem_responses(401, 404, 429),
        status_code=200,
    )
    async def revoke_key(
        self, agency: NamedDependency[AgencyPrincipal], key_id: FromPath[UUID]
    ) -> ApiKeyOut:
        return await services.revoke_own_key(agency, key_id)
