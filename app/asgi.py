"""create_app(): the one place where the Litestar application is assembled."""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.static_files import create_static_files_router

from app.accounts.audit import AuditMiddleware
from app.accounts.controllers import (
    AuditController,
    AuthController,
    OperatorStaffController,
    PlatformAdminController,
)
from app.booking.controllers import (
    BookingController,
    OperatorBookingController,
    WaitlistController,
)
from app.booking.seat_controllers import (
    OperatorDepartureBlockController,
    OperatorSeatBlockController,
    PublicDepartureController,
    PublicRouteDepartureController,
)
from app.catalogue.controllers.operator_departures import OperatorDepartureController
from app.catalogue.controllers.operator_profile import OperatorProfileController
from app.catalogue.controllers.operator_routes import OperatorRouteController
from app.catalogue.controllers.operator_vehicles import OperatorVehicleController
from app.catalogue.controllers.public import PublicRouteController
from app.core import database, http_clients, jobs
from app.core.http_security import (
    CanonicalPathMiddleware,
    PublicRateLimitMiddleware,
    SecurityHeadersMiddleware,
)
from app.core.i18n import current_locale
from app.core.locale_middleware import LocaleMiddleware
from app.core.observability import RequestContextMiddleware, configure_logging
from app.core.openapi import ClosedStructSchemaPlugin
from app.core.pagination import page_params_provider
from app.core.request_input import RequestInputMiddleware, StrictJsonRequest
from app.core.settings import Settings, get_settings
from app.excursions.controllers import DepartureExcursionController, ExcursionController
from app.notifications.controllers import OperatorNotificationController
from app.partners.controllers.agencies import OperatorAgencyController
from app.partners.controllers.agency_bookings import OperatorAgencyBookingController
from app.partners.controllers.octo import octo_router
from app.partners.controllers.partner_keys import PartnerKeyController
from app.payments.controllers import (
    BookingPaymentController,
    OperatorPaymentController,
    StripeWebhookController,
)
from app.system.controllers import SystemController
from app.web.booking_pages import BookingPagesController
from app.web.cancel_rebook_pages import CancelRebookPagesController
from app.web.coach_pages import CoachPagesController
from app.web.controllers import TouristPagesController
from app.web.errors import APP_EXCEPTION_HANDLERS
from app.web.hold_pages import HoldPagesController
from app.web.payment_pages import PaymentPagesController
from app.web.staff_pages import StaffPagesController
from app.web.templates import STATIC, template_config
from app.wiring import configure_process, wire_domains
from workers.periodic import Periodic

ROUTE_HANDLERS: list[Any] = [
    SystemController,
    TouristPagesController,
    HoldPagesController,
    BookingPagesController,
    PaymentPagesController,
    CancelRebookPagesController,
    StaffPagesController,
    CoachPagesController,
    create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
    AuthController,
    AuditController,
    PlatformAdminController,
    OperatorStaffController,
    OperatorProfileController,
    OperatorRouteController,
    OperatorVehicleController,
    OperatorSeatBlockController,
    OperatorDepartureController,
    OperatorDepartureBlockController,
    PublicRouteController,
    PublicRouteDepartureController,
    PublicDepartureController,
    BookingController,
    WaitlistController,
    OperatorBookingController,
    DepartureExcursionController,
    ExcursionController,
    BookingPaymentController,
    StripeWebhookController,
    OperatorPaymentController,
    OperatorNotificationController,
    OperatorAgencyController,
    OperatorAgencyBookingController,
    PartnerKeyController,
    octo_router,
]


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Tourline API",
        version="1.0.0",
        description=(
            "Book seats and berths on themed tourist trains and leisure bus lines. "
            "Errors are RFC 9457 problem details (application/problem+json) with a stable "
            "`code`. Send `Accept-Language: zh-CN` or `en` (or `?lang=`) to choose the language."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "PartnerKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A partner agency's API key (operators create them)",
                ),
                "BearerToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="Staff token from POST /api/v1/auth/login",
                ),
            }
        ),
        tags=[
            Tag(name="Public: routes", description="Themed lines tourists can browse"),
            Tag(name="Public: departures", description="Dated runs, fares and seat maps"),
            Tag(
                name="Public: bookings",
                description="Hold seats, add details, cancel, rebook, join a waiting list",
            ),
            Tag(name="Staff login"),
            Tag(name="Operator: routes", description="Publish themed lines"),
            Tag(name="Operator: vehicles and seat maps"),
            Tag(name="Operator: departures"),
            Tag(
                name="Operator: coach excursions",
                description="Coaches that meet the train by day, and who rides which",
            ),
            Tag(name="Operator: profile"),
            Tag(name="Operator: staff"),
            Tag(name="Platform administration"),
            Tag(name="Operator: payments"),
            Tag(name="Operator: notifications"),
            Tag(name="Operator: partner agencies"),
            Tag(name="Partners: OCTO", description="OCTO-compatible API for reselling agencies"),
            Tag(name="Webhooks", description="Signed events from Stripe"),
            Tag(name="System"),
        ],
    )


def _response_cache_config(settings: Settings) -> ResponseCacheConfig:
    """The public catalogue's short-lived cache (handlers with `cache=True`), per language:
    a rush of readers of one departure costs one query every few seconds, not one each."""

    def key(request: Request[Any, Any, Any]) -> str:
        return f"{current_locale()}:{request.url.path}?{request.url.query}"

    def cacheable(_scope: Any, status_code: int) -> bool:
        return settings.public_cache_seconds > 0 and 200 <= status_code < 300

    return ResponseCacheConfig(
        default_expiration=max(1, settings.public_cache_seconds),
        key_builder=key,
        cache_response_filter=cacheable,
    )


def provide_settings(state: State) -> Settings:
    """The settings this app was built with, for handlers that declare `settings`."""
    settings: Settings = state.settings
    return settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    settings.check_production_safety()
    wire_domains()
    if settings.environment != "test":
        # Tests keep pytest's log capture; everything else logs JSON lines to stderr.
        configure_logging(settings.log_format)

    async def on_startup() -> None:
        configure_process(settings)
        await database.open_database(settings)
        await jobs.start(settings, in_process=Periodic)

    async def on_shutdown() -> None:
        await jobs.stop()
        await http_clients.close_all()
        await database.close_database()

    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        dependencies={
            "settings": Provide(provide_settings, sync_to_thread=False),
            "page_params": Provide(page_params_provider(settings), sync_to_thread=False),
        },
        exception_handlers=APP_EXCEPTION_HANDLERS,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=_openapi_config(),
        # Before Litestar's own: request bodies' schemas say they refuse unknown fields.
        plugins=[ClosedStructSchemaPlugin()],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            # Browser code may read these answers' request id, wait and language.
            expose_headers=["X-Request-ID", "Retry-After", "Content-Language"],
        )
        if settings.cors_origins
        else None,
        request_max_body_size=settings.max_body_bytes,
        # JSON bodies are decoded strictly against the handler's type.
        request_class=StrictJsonRequest,
        response_cache_config=_response_cache_config(settings),
        template_config=template_config(settings),
        # The settings this app was built with (e.g. /ready checks *its* Redis).
        state=State({"settings": settings}),
        debug=False,
        # Logging is ours (configure_logging): JSON lines with request ids.
        logging_config=None,
    )
    # Wrapped around the whole ASGI handler so that routing errors (404, 405) are localized,
    # carry the security headers and the request id, and are counted, as well. Litestar's
    # `middleware=[...]` cannot do that: it wraps each route, so a request that matches no
    # route never reaches it (a documented limitation, litestar-org/litestar#175), and
    # Litestar 2 has no setting for middleware around its router.
    app.asgi_handler = PublicRateLimitMiddleware(app.asgi_handler, settings)
    app.asgi_handler = RequestInputMiddleware(app.asgi_handler, settings.max_body_bytes, app.routes)
    app.asgi_handler = LocaleMiddleware(app.asgi_handler)
    app.asgi_handler = AuditMiddleware(app.asgi_handler, settings.max_body_bytes)
    app.asgi_handler = SecurityHeadersMiddleware(app.asgi_handler, https=settings.is_production)
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)
    app.asgi_handler = CanonicalPathMiddleware(app.asgi_handler)
    return app


def create_app_behind_proxy() -> Any:
    """`create_app` for granian, which leaves X-Forwarded-For alone: clients' addresses
    (for the per-IP limits) come from the proxies trusted in FORWARDED_ALLOW_IPS, as
    uvicorn does."""
    # granian is optional (`pip install granian`); uvicorn is the default server.
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    return wrap_asgi_with_proxy_headers(
        create_app(), trusted_hosts=[host.strip() for host in trusted.split(",")]
    )
