"""Login, the current staff member, platform administration and operator staff."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.accounts import audit, operators, services
from app.accounts.dependencies import (
    BEARER_SECURITY,
    OPERATOR_DEPENDENCIES,
    OPERATOR_GUARDS,
    STAFF_DEPENDENCIES,
    STAFF_GUARDS,
)
from app.accounts.schemas import (
    AuditEntryOut,
    AuditFilters,
    LoginIn,
    OperatorCreate,
    OperatorOut,
    OperatorPrincipal,
    Principal,
    StaffCreate,
    StaffOut,
    TokenOut,
)
from app.accounts.tables import StaffRole
from app.core.errors import Forbidden, InvalidInput, NotFound, problem_responses
from app.core.http_security import client_ip
from app.core.i18n import _
from app.core.pagination import Page, PageParams


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["Staff login"]

    @post(
        "/login",
        summary="Log in as staff",
        description="Exchange a staff email and password for a bearer token (JWT). After "
        "too many failures for one email (or from one address) logins wait: 429.",
        responses=problem_responses(400, 401, 429),
        status_code=200,
    )
    async def login(self, request: Request[Any, Any, Any], data: JSONBody[LoginIn]) -> TokenOut:
        return await services.login(
            data.email, data.password, client_ip(request), request.app.state["settings"]
        )

    @get(
        "/me",
        summary="The logged-in staff member",
        dependencies=STAFF_DEPENDENCIES,
        guards=STAFF_GUARDS,
        security=BEARER_SECURITY,
        responses=problem_responses(401),
    )
    async def me(self, principal: NamedDependency[Principal]) -> StaffOut:
        return await services.get_staff(principal.staff_id)


class PlatformAdminController(Controller):
    path = "/api/v1/admin"
    tags = ["Platform administration"]
    dependencies = STAFF_DEPENDENCIES
    guards = STAFF_GUARDS
    security = BEARER_SECURITY

    @post(
        "/operators",
        summary="Create an operator",
        responses=problem_responses(400, 401, 403, 409),
    )
    async def create_operator(
        self, principal: NamedDependency[Principal], data: JSONBody[OperatorCreate]
    ) -> OperatorOut:
        return await operators.create_operator_as(principal, data)

    @get("/operators", summary="List operators", responses=problem_responses(400, 401, 403))
    async def list_operators(
        self, principal: NamedDependency[Principal], page_params: NamedDependency[PageParams]
    ) -> Page[OperatorOut]:
        return await operators.list_operators(principal, page_params)

    @post(
        "/operators/{operator_id:uuid}/staff",
        summary="Create a staff account for an operator",
        description="Platform admins create an operator's first admin this way.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def create_operator_staff(
        self,
        principal: NamedDependency[Principal],
        operator_id: FromPath[UUID],
        data: JSONBody[StaffCreate],
    ) -> StaffOut:
        services.require_platform_admin(principal)
        if data.role == StaffRole.platform_admin:
            raise InvalidInput("role", _("Operator staff cannot be platform admins."))
        if not await operators.operator_exists(operator_id):
            raise NotFound(_("Operator not found."), code="operator_not_found")
        return await services.create_staff(data, operator_id)


class AuditController(Controller):
    tags = ["Audit log"]
    guards = STAFF_GUARDS
    dependencies = {
        **STAFF_DEPENDENCIES,
        "audit_filters": Provide(audit.provide_filters, sync_to_thread=False),
    }
    security = BEARER_SECURITY

    @get(
        "/api/v1/operator/audit",
        summary="Who changed what, when (my operator)",
        description="Every POST/PUT/PATCH/DELETE made by the operator's staff, newest "
        "first, with the body sent (secrets blanked) and the status answered. Admins only.",
        responses=problem_responses(400, 401, 403),
    )
    async def operator_log(
        self,
        principal: NamedDependency[Principal],
        page_params: NamedDependency[PageParams],
        audit_filters: NamedDependency[AuditFilters],
    ) -> Page[AuditEntryOut]:
        operator = services.as_operator_principal(principal)
        return await audit.operator_audit(operator, page_params, audit_filters)

    @get(
        "/api/v1/admin/audit",
        summary="Who changed what, when (the whole platform)",
        responses=problem_responses(400, 401, 403),
    )
    async def platform_log(
        self,
        principal: NamedDependency[Principal],
        page_params: NamedDependency[PageParams],
        audit_filters: NamedDependency[AuditFilters],
    ) -> Page[AuditEntryOut]:
        return await audit.platform_audit(principal, page_params, audit_filters)


class OperatorStaffController(Controller):
    path = "/api/v1/operator/staff"
    tags = ["Operator: staff"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @get("/", summary="List my operator's staff", responses=problem_responses(401, 403))
    async def list_staff(self, operator: NamedDependency[OperatorPrincipal]) -> list[StaffOut]:
        return await services.list_staff(operator.operator_id)

    @post(
        "/",
        summary="Add a staff member to my operator",
        responses=problem_responses(400, 401, 403, 409),
    )
    async def create_staff(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[StaffCreate]
    ) -> StaffOut:
        services.require_operator_admin(operator)
        if data.role == StaffRole.platform_admin:
            raise Forbidden(_("Operator staff cannot be platform admins."), code="forbidden_role")
        return await services.create_staff(data, operator.operator_id)
