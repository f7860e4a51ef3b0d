"""Operators list the bookings agencies made on their departures."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.booking.tables import BookingStatus
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams
from app.partners import reports
from app.partners.schemas import AgencyBookingOut


class OperatorAgencyBookingController(Controller):
    path = "/api/v1/operator/agency-bookings"
    tags = ["Operator: partner agencies"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
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
