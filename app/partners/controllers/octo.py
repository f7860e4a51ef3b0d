"""The OCTO API agencies call with their keys: catalogue, availability, bookings."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from app.core import ratelimit
from app.core.errors import DatabaseUnavailable, DomainError
from app.core.i18n import SUPPORTED_LOCALES, content_language
from app.core.openapi import json_body_operation
from app.core.settings import Settings
from app.partners import octo, octo_availability, octo_products, services
from app.partners.octo_bookings import change, reserve, view
from app.partners.octo_bookings import confirm as confirmation
from app.partners.octo_schemas import (
    OctoAvailabilityBody,
    OctoAvailabilityCalendarBody,
    OctoBookingCancellationBody,
    OctoBookingConfirmationBody,
    OctoBookingReservationBody,
    OctoBookingUpdateBody,
    OctoExtendBody,
)
from app.partners.schemas import AgencyPrincipal


class OctoErrorOut(msgspec.Struct, kw_only=True):
    """OCTO's error body (not problem+json: partners' OCTO clients expect this shape)."""

    error: str
    errorMessage: str


def octo_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=OctoErrorOut,
            description="OCTO error: INVALID_PRODUCT_ID, INVALID_OPTION_ID, "
            "INVALID_AVAILABILITY_ID, BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, TOO_MANY_REQUESTS ...",
        )
        # Every OCTO call counts against the key's rate limit (429).
        for status in sorted({429, *statuses})
    }


logger = logging.getLogger("tourline.octo")

# Capabilities of the OCTO specification this API implements.
SUPPORTED_CAPABILITIES = tuple(octo_products.CAPABILITIES)


async def provide_agency(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> AgencyPrincipal:
    scheme, _sep, key = request.headers.get("authorization", "").partition(" ")
    # The specification's answers, both with status 400: no key sent is UNAUTHORIZED; a key
    # that is not (or no longer) valid, or whose agency is suspended, is FORBIDDEN.
    if scheme.lower() != "bearer" or not key.strip():
        raise octo.OctoError(
            "UNAUTHORIZED", "Send the API key in the Authorization header: Bearer <key>"
        )
    principal = await services.agency_for_key(key.strip())
    if principal is None:
        raise octo.OctoError(
            "FORBIDDEN", "The API key is invalid or has been revoked, or the agency is suspended"
        )
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
        # Booking rules: a malformed request is a bad request; a well-formed one the
        # booking's state refuses (sold out, sales closed ...) cannot be processed.
        code = "BAD_REQUEST" if exc.status_code == 400 else "UNPROCESSABLE_ENTITY"
        error = octo.OctoError(code, str(exc.detail or exc.code), code=exc.code)
    elif isinstance(exc, ValidationException):
        error = octo.OctoError("BAD_REQUEST", "The request body is invalid")
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        error = octo.OctoError("BAD_REQUEST", str(exc.detail), status=exc.status_code)
    elif isinstance(exc, DatabaseUnavailable):
        # An outage, not a bug: OCTO's code for "the backend is down", to retry shortly.
        logger.warning("database unavailable at %s %s", request.method, request.url.path)
        error = octo.OctoError(
            "INTERNAL_SERVER_ERROR",
            "The service is briefly unavailable; try again in a few seconds",
            status=503,
            headers={"Retry-After": str(exc.retry_after)},
        )
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


def _filter(name: str, description: str, *, day: bool = False) -> Any:
    """A filter of the booking search, as OCTO names it (a date as YYYY-MM-DD); left
    out or empty, it does not filter."""
    return QueryParameter(
        name=name,
        description=description,
        required=False,
        schema_extra={"format": "date"} if day else None,
    )


class OctoController(Controller):
    tags = ["Partners: OCTO"]

    @get("/supplier", summary="The supplier (operator)", responses=octo_responses(400))
    async def supplier(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, await octo_products.supplier(agency, _capabilities(request)))

    @get(
        "/capabilities",
        summary="The capabilities this API implements",
        responses=octo_responses(400),
    )
    async def capabilities(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, octo_products.capabilities())

    @get("/products", summary="Products the agency may sell", responses=octo_responses(400))
    async def products(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(request, await octo_products.products(agency, _capabilities(request)))

    @get("/products/{product_id:str}", summary="A product", responses=octo_responses(400))
    async def product(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        product_id: FromPath[str],
    ) -> Response[Any]:
        return _octo(
            request, await octo_products.product(agency, product_id, _capabilities(request))
        )

    @post(
        "/availability/calendar",
        summary="Availability per day",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoAvailabilityCalendarBody),
    )
    async def calendar(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(
            request,
            await octo_availability.calendar(agency, await _body(request), _capabilities(request)),
        )

    @post(
        "/availability",
        summary="Departures with vacancies",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoAvailabilityBody),
    )
    async def availability(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(
            request,
            await octo_availability.availability(
                agency, await _body(request), _capabilities(request)
            ),
        )


class OctoBookingController(Controller):
    path = "/bookings"
    tags = ["Partners: OCTO"]

    @post(
        "/",
        summary="Hold seats (ON_HOLD)",
        description="Idempotent by the partner's `uuid`: the same uuid returns the same booking.",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoBookingReservationBody),
    )
    async def hold(
        self, request: Request[Any, Any, Any], agency: NamedDependency[AgencyPrincipal]
    ) -> Response[Any]:
        return _octo(
            request, await reserve.hold(agency, await _body(request), _capabilities(request))
        )

    @get(
        "/",
        summary="Find bookings (at least one filter)",
        responses=octo_responses(400),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        reseller_reference: Annotated[
            str, _filter("resellerReference", "The agency's own reference")
        ] = "",
        supplier_reference: Annotated[
            str, _filter("supplierReference", "This API's booking reference")
        ] = "",
        local_date: Annotated[
            str, _filter("localDate", "Departing on this local date", day=True)
        ] = "",
        local_date_start: Annotated[
            str, _filter("localDateStart", "Departing on or after", day=True)
        ] = "",
        local_date_end: Annotated[
            str, _filter("localDateEnd", "Departing on or before", day=True)
        ] = "",
        product_id: Annotated[str, _filter("productId", "Of this product")] = "",
        option_id: Annotated[str, _filter("optionId", "Of this option")] = "",
    ) -> Response[Any]:
        given = {
            "resellerReference": reseller_reference,
            "supplierReference": supplier_reference,
            "localDate": local_date,
            "localDateStart": local_date_start,
            "localDateEnd": local_date_end,
            "productId": product_id,
            "optionId": option_id,
        }
        return _octo(request, await view.search(agency, given, _capabilities(request)))

    @get("/{uuid:str}", summary="A booking", responses=octo_responses(400))
    async def get_booking(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(request, await view.get(agency, uuid, _capabilities(request)))

    @patch(
        "/{uuid:str}",
        summary="Update a booking (before the contract's cut-off)",
        description="The lead contact, notes, the agency's reference and the travellers' "
        "names of a hold, or of a confirmed booking while it could still be cancelled.",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoBookingUpdateBody),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(
            request,
            await change.update(agency, uuid, await _body(request), _capabilities(request)),
        )

    @post(
        "/{uuid:str}/extend",
        summary="Extend a hold",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoExtendBody),
    )
    async def extend(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(
            request,
            await change.extend(agency, uuid, await _body(request), _capabilities(request)),
        )

    @post(
        "/{uuid:str}/confirm",
        summary="Confirm on account",
        description="Within the agency's credit limit.",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoBookingConfirmationBody),
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(
            request,
            await confirmation.confirm(agency, uuid, await _body(request), _capabilities(request)),
        )

    @post(
        "/{uuid:str}/payment",
        summary="Pay a hold by card (prepaying agencies)",
        description="Not in OCTO. Sets the contact as confirm does and returns a Stripe "
        "PaymentIntent `clientSecret` for the net amount; the booking is confirmed when "
        "Stripe reports the payment (a `booking.confirmed` webhook follows).",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoBookingConfirmationBody),
    )
    async def pay(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        return _octo(
            request,
            await confirmation.pay(agency, uuid, await _body(request), _capabilities(request)),
        )

    @post(
        "/{uuid:str}/cancel",
        summary="Cancel (before the contract's cut-off)",
        status_code=200,
        responses=octo_responses(400),
        operation_class=json_body_operation(OctoBookingCancellationBody, required=False),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        agency: NamedDependency[AgencyPrincipal],
        uuid: FromPath[str],
    ) -> Response[Any]:
        body = await request.body()
        data = await _body(request) if body.strip() else {}
        return _octo(request, await change.cancel(agency, uuid, data, _capabilities(request)))


octo_router = Router(
    path="/octo",
    route_handlers=[OctoController, OctoBookingController],
    dependencies={"agency": Provide(provide_agency)},
    # Every layer's handler for a class wins over the app's: list the app's classes too.
    exception_handlers={
        Exception: octo_error,
        HTTPException: octo_error,
        DomainError: octo_error,
        DatabaseUnavailable: octo_error,
        octo.OctoError: octo_error,
    },
    security=[{"PartnerKey": []}],
)
