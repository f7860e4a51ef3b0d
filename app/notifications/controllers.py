"""Operators' notifications: advisories to passengers, what was sent, resending."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.core.errors import problem_responses
from app.notifications.rows import NotificationRow
from app.notifications.schemas import AdvisoryIn, AdvisoryOut, NotificationOut
from app.notifications.services.advisories import post_advisory
from app.notifications.services.operator import list_notifications, resend


def _out(row: NotificationRow) -> NotificationOut:
    return NotificationOut(
        id=row.id, kind=row.kind, channel=row.channel, recipient=row.recipient,
        locale=row.locale, subject=row.subject, status=row.status, attempts=row.attempts,
        last_error=row.last_error, created_at=row.created_at, sent_at=row.sent_at,
    )  # fmt: skip


class OperatorNotificationController(Controller):
    path = "/api/v1/operator"
    tags = ["Operator: notifications"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @post(
        "/departures/{departure_id:uuid}/advisories",
        summary="Send an advisory to every passenger of a departure",
        description="Weather, a schedule change, or a heat day (35 °C or more). Each booking's "
        "contact gets it once, in the booking's language.",
        responses=problem_responses(400, 401, 403, 404),
        status_code=201,
    )
    async def advisory(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[AdvisoryIn],
    ) -> AdvisoryOut:
        advisory_id, recipients = await post_advisory(operator, departure_id, data)
        return AdvisoryOut(advisory_id=advisory_id, recipients=recipients)

    @get(
        "/departures/{departure_id:uuid}/notifications",
        summary="Notifications of a departure",
        responses=problem_responses(401, 403, 404),
    )
    async def of_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> list[NotificationOut]:
        return [_out(r) for r in await list_notifications(operator, departure_id=departure_id)]

    @get(
        "/bookings/{reference:str}/notifications",
        summary="Notifications of a booking",
        responses=problem_responses(401, 403, 404),
    )
    async def of_booking(
        self, operator: NamedDependency[OperatorPrincipal], reference: FromPath[str]
    ) -> list[NotificationOut]:
        return [_out(r) for r in await list_notifications(operator, reference=reference)]

    @post(
        "/notifications/{notification_id:uuid}/resend",
        summary="Send a notification again",
        responses=problem_responses(401, 403, 404),
        status_code=200,
    )
    async def resend(
        self, operator: NamedDependency[OperatorPrincipal], notification_id: FromPath[UUID]
    ) -> NotificationOut:
        return _out(await resend(operator, notification_id))
