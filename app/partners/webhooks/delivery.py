"""Posting webhook events to agencies through the one delivery mechanism
(`app.core.delivery`), signed as the Standard Webhooks specification says.

A due event is claimed (committed, leased) before its POST, which is cut off well inside
the lease; the outcome is recorded only if the claim is still this attempt's. Every
attempt is logged. A refusal or an unknown outcome is retried with growing pauses for up
to three days; 410 Gone stops it for good and disables the agency's endpoint until its URL
is set again. A claim whose worker died is posted again when its lease runs out, with the
same event id (`webhook-id`): agencies dedupe by it.

Events of one subject (a booking, a departure) reach the agency in the order they were
recorded; agencies are posted to at once, each agency's events one after the other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from standardwebhooks import Webhook

from app.core import clock, http_clients, outbound
from app.core.backoff import Backoff, RetryPolicy
from app.core.delivery import (
    Channel,
    Claim,
    Ledger,
    Outcome,
    Row,
    Unsent,
    Values,
)
from app.partners.tables import Agency, WebhookAttempt, WebhookDelivery, WebhookStatus

logger = logging.getLogger("tourline.webhooks")

# Deliveries are retried until this long after the event; then they fail.
RETRY_WINDOW = timedelta(days=3)
# Pauses after the 1st, 2nd ... failed attempt; the last one repeats.
RETRY_PAUSES = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440))
# The longest a POST may take; within half the claim's lease (TOURLINE_SEND_LEASE_SECONDS).
TIMEOUT_SECONDS = 10.0
# Of an endpoint's answer, at most this much is taken off the connection (and dropped).
DRAIN_LIMIT_BYTES = 64 * 1024
# Agencies posted to at once; each agency's deliveries go one after the other (in order,
# over one keep-alive connection): a slow or dead endpoint holds up only its own agency.
CONCURRENT_AGENCIES = 8


def signed_headers(secret: str, event_id: str, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one POST: `webhook-id` (the event id, the same on
    every retry), `webhook-timestamp` (now, in Unix seconds, so the agency can refuse old
    ones) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of "<id>.<timestamp>.<body>",
    keyed with the agency's secret, taken as base64 as the specification says)."""
    # The real time, not the service's clock: the agency checks it against its own.
    moment = datetime.fromtimestamp(int(time.time()), UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, moment, body),
    }


@dataclass(frozen=True, slots=True)
class Post:
    """One event as it goes to its agency."""

    id: UUID
    agency: UUID
    event_type: str
    body: str
    url: str
    secret: str


# No older event of the same subject for the same agency is still to be delivered (the
# row being claimed is `webhook_delivery`; `older` is the other one).
_NOTHING_OLDER_PENDING = WhereRaw(
    "(webhook_delivery.subject IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM webhook_delivery AS older"
    " WHERE older.agency = webhook_delivery.agency"
    " AND older.subject = webhook_delivery.subject"
    " AND older.status = {}"
    " AND (older.created_at < webhook_delivery.created_at"
    " OR (older.created_at = webhook_delivery.created_at AND older.id < webhook_delivery.id))))",
    WebhookStatus.pending.value,
)


async def _post(post: Post) -> tuple[int | None, str]:
    """POST the body; (status code or None, error text). The endpoint's answer is never
    read: only its status is kept (a body could be anything the URL's host serves)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Tourline-Webhooks/1",
        "Tourline-Event-Type": post.event_type,
        **signed_headers(post.secret, str(post.id), post.body),
    }
    try:
        # Checked again at each delivery: the setting or the URL's host may have changed.
        outbound.check_scheme(post.url)
        client = http_clients.shared("webhooks", lambda: outbound.client(TIMEOUT_SECONDS))
        async with client.stream(
            "POST", post.url, content=post.body.encode(), headers=headers
        ) as response:
            code = response.status_code
            # Drained unread (up to a bound), so that the connection can carry the next one.
            drained = 0
            async for chunk in response.aiter_raw():
                drained += len(chunk)
                if drained > DRAIN_LIMIT_BYTES:
                    break
    except outbound.RefusedTarget as exc:
        return None, f"refused: {exc}"[:500]
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return code, "" if 200 <= code < 300 else f"HTTP {code}"


async def _disable_endpoint(agency_id: UUID, now: datetime) -> None:
    await (
        Agency.update({Agency.webhook_disabled_at: now})
        .where((Agency.id == agency_id) & Agency.webhook_disabled_at.is_null())
        .run()
    )
    await (
        WebhookDelivery.update({WebhookDelivery.status: WebhookStatus.disabled.value})
        .where(
            (WebhookDelivery.agency == agency_id)
            & (WebhookDelivery.status == WebhookStatus.pending.value)
        )
        .run()
    )


class WebhookChannel(Channel[Post]):
    """Agencies' webhooks: a claimed event stays `pending` (its attempt count and lease
    are the claim), one lane per agency."""

    name = "webhook"
    ledger = Ledger(
        table=WebhookDelivery,
        status=WebhookDelivery.status,
        attempts=WebhookDelivery.attempts,
        due_at=WebhookDelivery.next_attempt_at,
        error=WebhookDelivery.last_error,
        waiting=(WebhookStatus.pending.value,),
        claimed=WebhookStatus.pending.value,
        retrying=WebhookStatus.pending.value,
        given_up=WebhookStatus.failed.value,
        order=(WebhookDelivery.created_at, WebhookDelivery.id),
        lane=WebhookDelivery.agency,
        retry_from=WebhookDelivery.retry_from,
    )
    retry = RetryPolicy(Backoff(RETRY_PAUSES), window=RETRY_WINDOW)
    longest_send = TIMEOUT_SECONDS
    lanes_at_once = CONCURRENT_AGENCIES

    def claimable(self, now: datetime) -> Combinable:
        # An event waits for the older ones of its subject (retried, it keeps its turn), so
        # that "confirmed" never arrives after "cancelled".
        return _NOTHING_OLDER_PENDING

    async def prepare(self, row: Row) -> Post | Unsent:
        agency = (
            await Agency.select(
                Agency.webhook_url, Agency.webhook_secret, Agency.webhook_disabled_at
            )
            .where(Agency.id == row["agency"])
            .first()
            .run()
        )
        if agency is None or not agency["webhook_url"] or agency["webhook_disabled_at"]:
            return Unsent(WebhookStatus.disabled.value, "the agency's endpoint is disabled")
        return Post(
            id=row["id"], agency=row["agency"], event_type=row["event_type"], body=row["body"],
            url=agency["webhook_url"], secret=agency["webhook_secret"],
        )  # fmt: skip

    async def send(self, claim: Claim[Post], seconds: float) -> Outcome:
        started = time.monotonic()
        code, error = await _post(claim.item)
        return await self._logged(claim.item, code, error, time.monotonic() - started)

    async def unanswered(self, claim: Claim[Post], error: str, elapsed: float) -> Outcome:
        return await self._logged(claim.item, None, error, elapsed)

    async def _logged(self, post: Post, code: int | None, error: str, elapsed: float) -> Outcome:
        """Log the attempt (it was made, whoever holds the claim now) and say what it came
        to: accepted (2xx), gone for good (410), or to be tried again."""
        now = clock.now()
        await WebhookAttempt.insert(
            WebhookAttempt(
                delivery=post.id, at=now, url=post.url, status_code=code, error=error,
                duration_ms=int(elapsed * 1000),
            )
        ).run()  # fmt: skip
        values: Values = {WebhookDelivery.last_status_code: code}
        if code is not None and 200 <= code < 300:
            return Outcome.done(
                WebhookStatus.delivered.value,
                values={**values, WebhookDelivery.delivered_at: now},
                error=error,
            )
        if code == 410:
            return Outcome.done(
                WebhookStatus.disabled.value, values=values, error=error, delivered=False
            )
        return Outcome.failed(error, values=values)

    async def recorded(self, claim: Claim[Post], outcome: Outcome) -> None:
        if outcome.status == WebhookStatus.disabled:
            logger.warning("agency %s answered 410 Gone: webhooks disabled", claim.item.agency)
            await _disable_endpoint(claim.item.agency, clock.now())


WEBHOOKS = WebhookChannel()


async def deliver_due_webhooks(
    limit: int = 100, claim_lease: timedelta | None = None, deadline: float | None = None
) -> int:
    """Post the due deliveries, at most `limit` per agency, agencies at once; returns how
    many the agencies accepted. With a `deadline` (time.monotonic()), no delivery is
    claimed once less time is left than one POST may take."""
    return await WEBHOOKS.deliver_due(limit=limit, lease=claim_lease, deadline=deadline)
