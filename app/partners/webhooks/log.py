"""The operator's view of an agency's webhook events: every event with each attempt made,
and sending a failed or disabled one again."""

from __future__ import annotations

from uuid import UUID

from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.core import clock
from app.core.errors import Conflict, NotFound
from app.core.i18n import _
from app.core.pagination import Page, PageParams, fetch_page, page_of
from app.partners.rows import WebhookAttemptRow, WebhookDeliveryRow
from app.partners.schemas import WebhookAttemptOut, WebhookDeliveryOut
from app.partners.services import owned_agency
from app.partners.tables import WebhookAttempt, WebhookDelivery, WebhookStatus


def _delivery_out(
    delivery: WebhookDeliveryRow, attempts: list[WebhookAttemptRow]
) -> WebhookDeliveryOut:
    pending = delivery.status == WebhookStatus.pending
    return WebhookDeliveryOut(
        id=delivery.id, event_type=delivery.event_type, status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        last_status_code=delivery.last_status_code, last_error=delivery.last_error,
        created_at=delivery.created_at, delivered_at=delivery.delivered_at, body=delivery.body,
        attempt_log=[
            WebhookAttemptOut(
                at=a.at, url=a.url, status_code=a.status_code, error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in attempts
        ],
    )  # fmt: skip


async def list_deliveries(
    principal: OperatorPrincipal, agency_id: UUID, status: WebhookStatus | None, params: PageParams
) -> Page[WebhookDeliveryOut]:
    """The agency's webhook events, newest first, each with every attempt made."""
    await owned_agency(principal, agency_id)
    where: Combinable = WebhookDelivery.agency == agency_id
    if status is not None:
        where = where & (WebhookDelivery.status == status.value)
    rows, total = await fetch_page(
        WebhookDelivery, where, params,
        [(WebhookDelivery.created_at, False), (WebhookDelivery.id, False)],
    )  # fmt: skip
    attempts: dict[UUID, list[WebhookAttemptRow]] = {row["id"]: [] for row in rows}
    if rows:
        for attempt in (
            await WebhookAttempt.select()
            .where(WebhookAttempt.delivery.is_in(list(attempts)))
            .order_by(WebhookAttempt.at)
            .run()
        ):
            attempts[attempt["delivery"]].append(WebhookAttemptRow.from_row(attempt))
    deliveries = [WebhookDeliveryRow.from_row(row) for row in rows]
    return page_of(
        [_delivery_out(delivery, attempts[delivery.id]) for delivery in deliveries], params, total
    )


async def retry_delivery(
    principal: OperatorPrincipal, agency_id: UUID, delivery_id: UUID
) -> WebhookDeliveryOut:
    """Send a failed or disabled event again, now (the retry window starts over)."""
    await owned_agency(principal, agency_id)
    row = (
        await WebhookDelivery.select()
        .where((WebhookDelivery.id == delivery_id) & (WebhookDelivery.agency == agency_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("Webhook event not found."), code="webhook_not_found")
    if row["status"] == WebhookStatus.pending:
        raise Conflict(_("This event is still being delivered."), code="webhook_pending")
    if row["status"] == WebhookStatus.delivered:
        raise Conflict(_("This event has been delivered."), code="webhook_delivered")
    now = clock.now()
    await (
        WebhookDelivery.update(
            {
                WebhookDelivery.status: WebhookStatus.pending.value,
                WebhookDelivery.next_attempt_at: now,
                WebhookDelivery.retry_from: now,
            }
        )
        .where(WebhookDelivery.id == delivery_id)
        .run()
    )
    return await _one(delivery_id)


async def _one(delivery_id: UUID) -> WebhookDeliveryOut:
    row = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first().run()
    assert row is not None
    attempts = (
        await WebhookAttempt.select()
        .where(WebhookAttempt.delivery == delivery_id)
        .order_by(WebhookAttempt.at)
        .run()
    )
    return _delivery_out(
        WebhookDeliveryRow.from_row(row), [WebhookAttemptRow.from_row(a) for a in attempts]
    )
