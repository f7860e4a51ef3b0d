"""A payment provider added in one folder (tests/payment_provider_example/) is picked up
by configuration alone: TOURLINE_PAYMENT_PROVIDERS names it, and a booking is paid,
confirmed and refunded through it with nothing in app/ changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.asgi import configure_process
from app.booking.tables import BookingEvent
from app.core import clock
from app.core.settings import get_settings, load_settings
from app.payments.services.refunds import execute_pending_refunds
from app.payments.services.sweep import sync_open_payments
from app.payments.tables import RefundStatus
from tests.conftest import Account
from tests.integration.payments.test_refunds import (
    ADULT,
    BOOKINGS,
    booking_row,
    bus_line,
    cancel,
    complete,
    guest,
    hold,
    money,
    payments_of,
    ref,
    refunds_of,
    start_payment,
    view,
)
from tests.payment_provider_example import TILL

EXAMPLE = "tests.payment_provider_example"


def configure(monkeypatch: pytest.MonkeyPatch, providers: str) -> None:
    """Set TOURLINE_PAYMENT_PROVIDERS as a deployment would, and start the process anew."""
    monkeypatch.setenv("TOURLINE_PAYMENT_PROVIDERS", providers)
    get_settings.cache_clear()
    configure_process(get_settings())


@pytest.fixture(autouse=True)
def restored_settings() -> Iterator[None]:
    yield
    # monkeypatch has put the environment back by now (its fixture was set up later).
    get_settings.cache_clear()
    configure_process(get_settings())


async def audit(created: dict[str, Any]) -> list[tuple[str | None, str, str, str]]:
    booking = await booking_row(ref(created))
    rows = (
        await BookingEvent.select()
        .where(BookingEvent.booking == booking["id"])
        .order_by(BookingEvent.at)
        .run()
    )
    return [(e["from_status"], e["to_status"], e["reason"], e["actor"]) for e in rows]


async def paid_at_the_station(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    """Start the payment, take the cash at the counter, and let the sweep hear of it."""
    started = await start_payment(client, created)
    assert started["provider"] == "station_cash"
    assert started["status"] == "requires_payment"
    assert started["amount"]["amount"] == ADULT
    assert started["payment_method_types"] == ["cash"]
    assert (await view(client, created))["status"] == "on_hold"
    TILL.take(started["client_secret"])
    assert await sync_open_payments() == 1
    return started


async def test_a_provider_in_its_own_folder_takes_and_refunds_a_booking_by_configuration(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, f"{EXAMPLE},on_account")
    _route, _vehicle, departure = await bus_line(client, operator.headers, slug="cash-line")
    created = await hold(client, departure["id"])

    started = await paid_at_the_station(client, created)

    slip = started["client_secret"]
    assert (await view(client, created))["status"] == "confirmed"
    assert (await audit(created))[-1] == ("on_hold", "confirmed", "paid", "station_cash")
    [payment] = await payments_of(ref(created))
    assert (payment["provider"], payment["provider_id"]) == ("station_cash", slip)
    assert (payment["status"], payment["amount"]) == ("succeeded", ADULT)
    assert payment["settled_at"] is not None

    # Ten days ahead, a guest's cancellation gives everything back, through the till.
    body = (await cancel(client, created)).json()
    assert body["booking"]["status"] == "cancelled"
    assert body["refund"]["amount"] == ADULT
    [refund] = await refunds_of(ref(created))
    assert (refund["provider"], refund["status"]) == ("station_cash", RefundStatus.succeeded)
    assert refund["provider_id"] == TILL.payouts[-1].id
    assert TILL.paid_back(slip) == [ADULT]
    assert await execute_pending_refunds() == 0
    assert TILL.paid_back(slip) == [ADULT]
    shown = await money(client, operator, ref(created))
    assert (shown["paid"]["amount"], shown["refunded"]["amount"]) == (ADULT, ADULT)


async def test_a_refund_owed_through_a_provider_taken_out_of_configuration_waits_for_it(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, f"{EXAMPLE},on_account")
    _route, _vehicle, departure = await bus_line(client, operator.headers, slug="cash-line-2")
    created = await hold(client, departure["id"])
    slip = (await paid_at_the_station(client, created))["client_secret"]

    configure(monkeypatch, "stripe,on_account")
    body = (await cancel(client, created)).json()

    # Cancelled, and the refund kept owed, not lost nor sent elsewhere.
    assert body["booking"]["status"] == "cancelled"
    [refund] = await refunds_of(ref(created))
    assert (refund["provider"], refund["status"]) == ("station_cash", RefundStatus.failed)
    assert "station_cash" in refund["last_error"]
    assert TILL.paid_back(slip) == []
    # Enabled again, the worker pays it back once its retry is due.
    configure(monkeypatch, f"{EXAMPLE},on_account")
    with clock.frozen(refund["claimed_until"] + timedelta(seconds=1)):
        assert await execute_pending_refunds() == 1
    assert TILL.paid_back(slip) == [ADULT]
    [refund] = await refunds_of(ref(created))
    assert (refund["status"], refund["attempts"]) == (RefundStatus.succeeded, 2)


async def test_an_entry_that_cannot_be_loaded_is_503_not_configured(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, "tests.no_such_provider,on_account")
    _route, _vehicle, departure = await bus_line(client, operator.headers, slug="cash-line-3")
    created = await hold(client, departure["id"])
    await complete(client, created)

    response = await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created))

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "payments_not_configured"
    assert "tests.no_such_provider" in body["detail"]
    assert await payments_of(ref(created)) == []
    assert (await view(client, created))["status"] == "on_hold"


@pytest.mark.parametrize("value", ["", " , "])
def test_a_configuration_without_any_provider_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TOURLINE_PAYMENT_PROVIDERS", value)
    with pytest.raises(ValueError, match="TOURLINE_PAYMENT_PROVIDERS"):
        load_settings()
