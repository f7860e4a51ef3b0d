"""The /metrics page (Prometheus text format).

Request series come from this process (or, with PROMETHEUS_MULTIPROC_DIR set, from every
server process on the machine). Business series are read from the database at scrape
time, so they are the same whichever process is scraped: bookings by status, holds
expired, payments and refunds by outcome, the backlog of the outbox, notifications and
agency webhooks. Job runs and failures are counted in Redis (or in this process without it).
Uses of Redis that went on without it (`tourline_redis_failures_total{use}`) are counted
per process, with the request series (app/core/redis_client.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from piccolo.query.functions.aggregate import Count
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from app.booking.tables import Booking, BookingEvent, BookingStatus
from app.core import jobs
from app.core.settings import Settings
from app.core.tables import OutboxMessage
from app.notifications.tables import Notification, NotificationStatus
from app.partners.tables import WebhookDelivery, WebhookStatus
from app.payments.tables import Payment, Refund


class _Snapshot:
    """A collector of metrics read just before rendering."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


async def _grouped(table: Any, *columns: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await table.select(*columns, Count(table.id, alias="count")).group_by(*columns).run()
    )
    return rows


async def business_metrics(settings: Settings) -> list[Metric]:
    bookings = GaugeMetricFamily("tourline_bookings", "Bookings by status", labels=["status"])
    by_status = {row["status"]: row["count"] for row in await _grouped(Booking, Booking.status)}
    for status in BookingStatus:
        bookings.add_metric([status.value], by_status.get(status.value, 0))

    expired = CounterMetricFamily("tourline_holds_expired", "Holds that ran out without being paid")
    expired.add_metric(
        [],
        await BookingEvent.count()
        .where(BookingEvent.to_status == BookingStatus.expired.value)
        .run(),
    )

    payments = CounterMetricFamily(
        "tourline_payments", "Payments by provider and outcome", labels=["provider", "status"]
    )
    for row in await _grouped(Payment, Payment.provider, Payment.status):
        payments.add_metric([row["provider"], row["status"]], row["count"])

    refunds = CounterMetricFamily(
        "tourline_refunds", "Refunds by provider and outcome", labels=["provider", "status"]
    )
    for row in await _grouped(Refund, Refund.provider, Refund.status):
        refunds.add_metric([row["provider"], row["status"]], row["count"])

    backlog = GaugeMetricFamily(
        "tourline_backlog", "Work waiting to be done, by queue", labels=["queue"]
    )
    backlog.add_metric(
        ["outbox"],
        await OutboxMessage.count()
        .where(OutboxMessage.done_at.is_null() & OutboxMessage.failed_at.is_null())
        .run(),
    )
    backlog.add_metric(
        ["notifications"],
        await Notification.count()
        .where(
            # Claimed messages are still owed (a dead worker's until its lease runs out).
            Notification.status.is_in(
                [NotificationStatus.pending.value, NotificationStatus.sending.value]
            )
        )
        .run(),
    )
    backlog.add_metric(
        ["webhooks"],
        await WebhookDelivery.count()
        .where(WebhookDelivery.status == WebhookStatus.pending.value)
        .run(),
    )

    runs, failures = await jobs.run_counts(settings.redis_url)
    job_runs = CounterMetricFamily("tourline_job_runs", "Job step runs", labels=["job"])
    job_failures = CounterMetricFamily(
        "tourline_job_failures", "Job step runs that failed", labels=["job"]
    )
    for job in sorted(runs.keys() | failures.keys()):
        job_runs.add_metric([job], runs.get(job, 0))
        job_failures.add_metric([job], failures.get(job, 0))
    return [bookings, expired, payments, refunds, backlog, job_runs, job_failures]


async def render(settings: Settings) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        requests = CollectorRegistry()
        MultiProcessCollector(requests)  # type: ignore[no-untyped-call]
    else:
        requests = REGISTRY
    business = CollectorRegistry(auto_describe=False)
    business.register(_Snapshot(await business_metrics(settings)))
    return generate_latest(requests) + generate_latest(business)
