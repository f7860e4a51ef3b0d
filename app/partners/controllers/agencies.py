"""Operators manage their partner agencies: contracts, keys, rates, allotments, money."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.booking.schemas import AllotmentCreate, AllotmentOut, AllotmentUpdate
from app.booking.services import allotments
from app.core.errors import problem_responses
from app.core.openapi import JsonOrCsvOperation
from app.core.pagination import Page, PageParams
from app.partners import reports, services, webhooks
from app.partners.schemas import (
    AgencyCreate,
    AgencyOut,
    AgencyUpdate,
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


async def _agency_allotments(
    operator: OperatorPrincipal, agency_id: UUID, *, to_change: bool
) -> None:
    """The operator may see (an admin: change) the allotments of its own agencies only.
    The admin check comes first: staff learn nothing of which agencies exist."""
    if to_change:
        require_operator_admin(operator)
    await services.owned_agency(operator, agency_id)


class OperatorAgencyController(Controller):
    path = "/api/v1/operator/agencies"
    tags = ["Operator: partner agencies"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
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
        await _agency_allotments(operator, agency_id, to_change=True)
        return await allotments.create_allotment(operator, agency_id, data)

    @get(
        "/{agency_id:uuid}/allotments",
        summary="The agency's allotments, with seats used",
        responses=problem_responses(401, 403, 404),
    )
    async def list_allotments(
        self, operator: NamedDependency[OperatorPrincipal], agency_id: FromPath[UUID]
    ) -> list[AllotmentOut]:
        await _agency_allotments(operator, agency_id, to_change=False)
        return await allotments.list_allotments(agency_id)

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
        await _agency_allotments(operator, agency_id, to_change=True)
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
        await _agency_allotments(operator, agency_id, to_change=True)
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
