"""What partner agencies were charged on account, for their credit (the partners domain
keeps the contract, its limit and the money the agency paid back)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.payments.providers import on_account
from app.payments.tables import Payment, Refund


async def charged_on_account(agency_id: UUID) -> int:
    """Minor units taken on account for the agency's bookings, less what was refunded to
    the account (a refund counts from when it is owed until it fails)."""
    charged: list[dict[str, Any]] = await Payment.raw(
        """
        SELECT COALESCE(SUM(p.amount), 0) AS amount FROM payment p
        JOIN booking b ON b.id = p.booking
        WHERE b.agency = {} AND p.provider = {} AND p.status = 'succeeded'
        """,
        agency_id,
        on_account.NAME,
    ).run()
    refunded: list[dict[str, Any]] = await Refund.raw(
        """
        SELECT COALESCE(SUM(r.amount), 0) AS amount FROM refund r
        JOIN booking b ON b.id = r.booking
        WHERE b.agency = {} AND r.provider = {} AND r.status != 'failed'
        """,
        agency_id,
        on_account.NAME,
    ).run()
    return int(charged[0]["amount"]) - int(refunded[0]["amount"])
