"""Partner HTTP API: operators manage agencies and keys; agencies call the OCTO API."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES
from app.accounts.schemas import OperatorPrincipal
from app.booking.tables import BookingStatus
from app.core import ratelimit
from app.core.errors import DomainError, TooManyRequests, Unauthorized, problem_responses
from app.core.i18n import SUPPORTED_LOCALES, _, content_language
from app.core.openapi import JsonOrCsvOperation
from app.core.pagination import Page, PageParams
from app.core.settings import get_settings
from app.partners import allotments, octo, octo_bookings, reports, services, webhooks
from app.partners.schemas import (
    AgencyBookingOut,
    AgencyCreate,
    AgencyOut,
    AgencyPrincipal,
    AgencyUpdate,
    AllotmentCreate,
    AllotmentOut,
    AllotmentUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    CreditOut,
    NetRateOut,
    NetRatesIn,
    SettlementIn,
    SettlementOut,
    WebhookDeliveryOut,
    WebhookSecretOut,
)
from app.partners.tables import WebhookStatus


class OctoErrorOut(msgspec.Struct, kw_only=True):
    """OCTO's error body (not problem+json: partners' OCTO clients expect this shape)."""

    error: str
    errorMessage: str


def octo_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=OctoErrorOut,
            description="OCTO error: INVALID_PRODUCT_ID, INVALID_OPTION_ID, "
            "INVALID_AVAILABILITY_ID, BAD_REQUEST, UNAUTHORIZED, TOO_MANY_REQUESTS ...",
        )
        # Every OCTO call counts against the key's rate limit (429).
        for status in sorted({429, *statuses})
    }


logger = logging.getLogger("tourline.octo")

# Capabilities of the OCTO specification this API implements.
SUPPORTED_CAPABILITIES = ("octo/content", "octo/pickups", "octo/pricing")


class OperatorAgencyController(Controller):
    path = "/api/v1/operator/agencies"
    tags = ["Operator: partner agencies"]
    dependencies = OPERATOR_DEPENDENCIES
    security = BEARER_SECURITY

    @post("/", summary="Sign a contract with an agency", responses=problem_responses(400, 401, 403))
    async def create(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[AgencyCreate]
    ) -> AgencyOut:
        return await services.create_agency(operator, data)

    @get("/", summary="My agencies", responses=problem_responses(401, 403))
    async def list_agencies(self, operator: NamedDependency[OperatorPrincipal]) -> list[AgencyOut]:
        return await services.list_agencies(operator)

    @get(
        "/{agency_id:uuid}",
        summary="An agency and its contract",
        responses=problem_responses(401, 403, 404),
    )
    async def get_agency(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> AgencyOut:
        return await services.get_agency(operator, agency_id)

    @patch(
        "/{agency_id:uuid}",
        summary="Change an agency's contract",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def update(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        data: JSONBody[AgencyUpdate],
    ) -> AgencyOut:
        return await services.update_agency(operator, agency_id, data)

    @post(
        "/{agency_id:uuid}/keys",
        summary="Create an API key",
        description="The key is in this response only; it is stored as a hash.",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def create_key(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        data: JSONBody[ApiKeyCreate],
    ) -> ApiKeyCreated:
        return await services.create_key(operator, agency_id, data.name)

    @get(
        "/{agency_id:uuid}/keys",
        summary="An agency's API keys",
        responses=problem_responses(401, 403, 404),
    )
    async def list_keys(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> list[ApiKeyOut]:
        return await services.list_keys(operator, agency_id)

    @post(
        "/{agency_id:uuid}/keys/{key_id:uuid}/rotate",
        summary="Replace an API key",
        description="A new key is returned and the old one stops working at once; a revoked "
        "key cannot be rotated (409).",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def rotate_key(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        key_id: FromPath[UUID],
    ) -> ApiKeyCreated:
        return await services.rotate_key(operator, agency_id, key_id)

    @delete(
        "/{agency_id:uuid}/keys/{key_id:uuid}",
        summary="Revoke an API key",
        responses=problem_responses(401, 403, 404),
        status_code=200,
    )
    async def revoke_key(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        key_id: FromPath[UUID],
    ) -> ApiKeyOut:
        return await services.revoke_key(operator, agency_id, key_id)

    @get(
        "/{agency_id:uuid}/webhook-secret",
        summary="The webhook signing secret",
        description="Hand it to the agency: it verifies the `Tourline-Signature` header.",
        responses=problem_responses(401, 403, 404),
    )
    async def get_webhook_secret(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> WebhookSecretOut:
        return WebhookSecretOut(
            webhook_secret=await services.webhook_secret(operator, agency_id, rotate=False)
        )

    @post(
        "/{agency_id:uuid}/webhook-secret/rotate",
        summary="Replace the webhook signing secret",
        description="Events sent from now on are signed with the new secret.",
        responses=problem_responses(401, 403, 404),
        status_code=200,
    )
    async def rotate_webhook_secret(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> WebhookSecretOut:
        return WebhookSecretOut(
            webhook_secret=await services.webhook_secret(operator, agency_id, rotate=True)
        )

    @get(
        "/{agency_id:uuid}/net-rates",
        summary="The agency's net rates",
        description="Fares without a net rate cost the agency the retail price less commission.",
        responses=problem_responses(401, 403, 404),
    )
    async def list_net_rates(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> list[NetRateOut]:
        return await services.list_net_rates(operator, agency_id)

    @put(
        "/{agency_id:uuid}/net-rates",
        summary="Replace the agency's net rates",
        description="Bookings already made keep their prices.",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_net_rates(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        data: JSONBody[NetRatesIn],
    ) -> list[NetRateOut]:
        return await services.replace_net_rates(operator, agency_id, data)

    @post(
        "/{agency_id:uuid}/allotments",
        summary="Keep seats of a class on a departure for the agency",
        description="Until `release_at` (default: three days before departure) only this "
        "agency may book them; then the unused seats return to general sale.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def create_allotment(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        data: JSONBody[AllotmentCreate],
    ) -> AllotmentOut:
        return await allotments.create_allotment(operator, agency_id, data)

    @get(
        "/{agency_id:uuid}/allotments",
        summary="The agency's allotments, with seats used",
        responses=problem_responses(401, 403, 404),
    )
    async def list_allotments(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> list[AllotmentOut]:
        return await allotments.list_allotments(operator, agency_id)

    @patch(
        "/{agency_id:uuid}/allotments/{allotment_id:uuid}",
        summary="Change a running allotment",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_allotment(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        allotment_id: FromPath[UUID],
        data: JSONBody[AllotmentUpdate],
    ) -> AllotmentOut:
        return await allotments.update_allotment(operator, agency_id, allotment_id, data)

    @delete(
        "/{agency_id:uuid}/allotments/{allotment_id:uuid}",
        summary="End an allotment now",
        description="Its unused seats return to general sale at once.",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_allotment(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        allotment_id: FromPath[UUID],
    ) -> None:
        await allotments.delete_allotment(operator, agency_id, allotment_id)

    @post(
        "/{agency_id:uuid}/settlements",
        summary="Record money received from the agency",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def record_settlement(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        data: JSONBody[SettlementIn],
    ) -> SettlementOut:
        return await services.record_settlement(operator, agency_id, data)

    @get(
        "/{agency_id:uuid}/settlements",
        summary="Money received from the agency",
        responses=problem_responses(401, 403, 404),
    )
    async def list_settlements(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> list[SettlementOut]:
        return await services.list_settlements(operator, agency_id)

    @get(
        "/{agency_id:uuid}/credit",
        summary="Credit used against the limit",
        responses=problem_responses(401, 403, 404),
    )
    async def credit(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> CreditOut:
        return await services.agency_credit(operator, agency_id)

    @get(
        "/{agency_id:uuid}/statement",
        operation_class=JsonOrCsvOperation,
        summary="Statement for a period",
        description="Bookings confirmed between `start` and `end` (local dates): gross, "
        "commission, net, refunds, net owed; settlements received; credit used. "
        "`format=csv` for a spreadsheet.",
        responses=problem_responses(400, 401, 403, 404),
        media_type="application/json",
    )
    async def statement(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        start: Annotated[date, QueryParameter(name="start")],
        end: Annotated[date, QueryParameter(name="end")],
        format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        data = await reports.statement(operator, agency_id, start, end)
        if format == "csv":
            filename = f"statement-{start.isoformat()}-{end.isoformat()}.csv"
            return Response(
                content=reports.statement_csv(data).encode("utf-8-sig"),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        return Response(data)

    @get(
        "/{agency_id:uuid}/webhooks",
        summary="Webhook events sent to the agency, with every attempt",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_webhooks(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        page_params: NamedDependency[PageParams],
        status: Annotated[WebhookStatus | None, QueryParameter(name="status")] = None,
    ) -> Page[WebhookDeliveryOut]:
        return await webhooks.list_deliveries(operator, agency_id, status, page_params)

    @post(
        "/{agency_id:uuid}/webhooks/{event_id:uuid}/retry",
        summary="Send a failed or disabled event again",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def retry_webhook(
        self,
        operator: NamedDependency[OperatorPrincipal],
        agency_id: FromPath[UUID],
        event_id: FromPath[UUID],
    ) -> WebhookDeliveryOut:
        return await webhooks.retry_delivery(operator, agency_id, event_id)


class OperatorAgencyBookingController(Controller):
    path = "/api/v1/operator/agency-bookings"
    tags = ["Operator: partner agencies"]
    dependencies = OPERATOR_DEPENDENCIES
    security = BEARER_SECURITY

    @get(
        "/",
        summary="Bookings made by agencies on my departures",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_bookings(
        self,
        operator: NamedDependency[OperatorPrincipal],
        page_params: NamedDependency[PageParams],
        agency_id: Annotated[UUID | None, QueryParameter(name="agency_id")] = None,
        departure_id: Annotated[UUID | None, QueryParameter(name="departure_id")] = None,
        status: Annotated[BookingStatus | None, QueryParameter(name="status")] = None,
    ) -> Page[AgencyBookingOut]:
        return await reports.agency_bookings(
            operator, page_params, agency_id=agency_id, departure_id=departure_id, status=status
        )


# ---------------------------------------------------------------- OCTO


async def provide_agency(request: Request[Any, Any, Any]) -> AgencyPrincipal:
    scheme, _sep, key = request.headers.get("authorization", "").partition(" ")
    principal = await services.agency_for_key(key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise octo.OctoError("UNAUTHORIZED", "The API key is missing or invalid", status=401)
    settings = request.app.state.get("settings") or get_settings()
    verdict = await ratelimit.hit(
        settings.redis_url, f"partner-key:{principal.api_key_id}", settings.partner_rate_limit
    )
    if not verdict.allowed:
        raise octo.OctoError(
            "TOO_MANY_REQUESTS",
            "Too many requests for this API key; slow down",
            status=429,
            headers={"Retry-After": str(verdict.retry_after)},
        )
    return principal


def _capabilities(request: Request[Any, Any, Any]) -> list[str]:
    requested = request.headers.get("octo-capabilities", "")
    return [c.strip() for c in requested.split(",") if c.strip() in SUPPORTED_CAPABILITIES]


def _octo(request: Request[Any, Any, Any], content: Any, status: int = 200) -> Response[Any]:
    return Response(
        content,
        status_code=status,
        headers={
            "Octo-Capabilities": ", ".join(_capabilities(request)),
            # octo/content: the languages content can be asked for with Accept-Language.
            "Available-Languages": ", ".join(content_language(lc) for lc in SUPPORTED_LOCALES),
        },
    )


def octo_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, octo.OctoError):
        error = exc
    elif isinstance(exc, DomainError):
        # Booking rules (sold out, sales closed ...) as OCTO bad requests, with our detail.
        error = octo.OctoError("BAD_REQUEST", str(exc.detail or exc.code), code=exc.code)
    elif isinstance(exc, ValidationException):
        error = octo.OctoError("BAD_REQUEST", "The request body is invalid")
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        error = octo.OctoError("BAD_REQUEST", str(exc.detail), status=exc.status_code)
    else:
        logger.exception("unhandled error at %s %s", request.method, request.url.path)
        error = octo.OctoError("INTERNAL_SERVER_ERROR", "Something went wrong", status=500)
    response = _octo(request, error.body(), error.status)
    response.headers.update(error.headers)
    return response


async def _body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        body = await request.json()
    except Exception:  # malformed JSON is an OCTO bad request
        raise octo.OctoError("BAD_REQUEST", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise octo.OctoError("BAD_REQUEST", "The request body must be an object")
    return body


class OctoController(Controller):
    tags = ["Partners: OCTO"]

    @get("/supplier", summary="The supplier (operator)", responses=octo_responses(400, 401))
    async def supplier(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, await octo.supplier(agency))

    @get("/products", summary="Products the agency may sell", responses=octo_responses(400, 401))
    async def products(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, await octo.products(agency, _capabilities(request)))

    @get("/products/{product_id:str}", summary="A product", responses=octo_responses(400, 401))
    async def product(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        product_id: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await octo.product(agency, product_id, _capabilities(request)))

    @post(
        "/availability/calendar",
        summary="Availability per day",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def calendar(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(
            request, await octo.calendar(agency, await _body(request), _capabilities(request))
        )

    @post(
        "/availability",
        summary="Departures with vacancies",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def availability(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(
            request, await octo.availability(agency, await _body(request), _capabilities(request))
        )


class OctoBookingController(Controller):
    path = "/bookings"
    tags = ["Partners: OCTO"]

    @post(
        "/",
        summary="Hold seats (ON_HOLD)",
        description="Idempotent by the partner's `uuid`: the same uuid returns the same booking.",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def hold(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, await octo_bookings.hold(agency, await _body(request)))

    @get(
        "/",
        summary="Find bookings (at least one filter)",
        responses=octo_responses(400, 401),
    )
    async def search(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        query = {key: str(value) for key, value in request.query_params.items()}
        return _octo(request, await octo_bookings.search(agency, query))

    @get("/{uuid:str}", summary="A booking", responses=octo_responses(400, 401))
    async def get_booking(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await octo_bookings.get(agency, uuid))

    @post(
        "/{uuid:str}/extend",
        summary="Extend a hold",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def extend(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await octo_bookings.extend(agency, uuid, await _body(request)))

    @post(
        "/{uuid:str}/confirm",
        summary="Confirm on account",
        description="Within the agency's credit limit.",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await octo_bookings.confirm(agency, uuid, await _body(request)))

    @post(
        "/{uuid:str}/payment",
        summary="Pay a hold by card (prepaying agencies)",
        description="Not in OCTO. Sets the contact as confirm does and returns a Stripe "
        "PaymentIntent `clientSecret` for the net amount; the booking is confirmed when "
        "Stripe reports the payment (a `booking.confirmed` webhook follows).",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def pay(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await octo_bookings.pay(agency, uuid, await _body(request)))

    @post(
        "/{uuid:str}/cancel",
        summary="Cancel (before the contract's cut-off)",
        status_code=200,
        responses=octo_responses(400, 401),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        body = await request.body()
        data = await _body(request) if body.strip() else {}
        return _octo(request, await octo_bookings.cancel(agency, uuid, data))


async def provide_partner(request: Request[Any, Any, Any]) -> AgencyPrincipal:
    """The agency behind the key, for the partner API outside OCTO (problem+json errors)."""
    try:
        return await provide_agency(request)
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


octo_router = Router(
    path="/octo",
    route_handlers=[OctoController, OctoBookingController],
    dependencies={"agency": Provide(provide_agency)},
    # Every layer's handler for a class wins over the app's: list the app's classes too.
    exception_handlers={
        Exception: octo_error,
        HTTPException: octo_error,
        DomainError: octo_error,
        octo.OctoError: octo_error,
    },
    security=[{"PartnerKey": []}],
)
