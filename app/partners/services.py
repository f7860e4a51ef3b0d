"""Agencies under contract, and the API keys they call the partner (OCTO) API with."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.services.common import get_operator_row, require_calendar_date
from app.catalogue.tables import PassengerType, Route
from app.core import agency_contacts, clock, outbound
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.i18n import _
from app.core.money import PriceOut
from app.partners.rows import AgencyRow, ApiKeyRow, SettlementRow
from app.partners.schemas import (
    AgencyCreate,
    AgencyOut,
    AgencyPrincipal,
    AgencyUpdate,
    ApiKeyCreated,
    ApiKeyOut,
    CreditOut,
    NetRateOut,
    NetRatesIn,
    SettlementIn,
    SettlementOut,
)
from app.partners.tables import Agency, AgencyStatus, ApiKey, NetRate, Settlement
from app.payments.services.agency_account import charged_on_account

KEY_PREFIX = "tl_"
# How precisely a key's last use is recorded.
KEY_USE_RESOLUTION = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _agency_out(agency: AgencyRow) -> AgencyOut:
    return AgencyOut(
        id=agency.id, name=agency.name, contact_email=agency.contact_email,
        contact_phone=agency.contact_phone or None, status=agency.status,
        commission_bp=agency.commission_bp,
        payment_terms=agency.payment_terms, credit_limit=agency.credit_limit,
        allowed_routes=list(agency.allowed_routes),
        cancellation_cutoff_hours=agency.cancellation_cutoff_hours,
        webhook_url=agency.webhook_url or None, webhook_disabled_at=agency.webhook_disabled_at,
        created_at=agency.created_at,
    )  # fmt: skip


async def agency_contact(agency_id: UUID) -> agency_contacts.AgencyContact | None:
    """The agency as the travellers it booked for may reach it."""
    row = (
        await Agency.select(Agency.name, Agency.contact_email, Agency.contact_phone)
        .where(Agency.id == agency_id)
        .first()
        .run()
    )
    if row is None:
        return None
    return agency_contacts.AgencyContact(
        name=row["name"], email=row["contact_email"], phone=row["contact_phone"]
    )


def answer_agency_contacts() -> None:
    """Answer the booking domain's question about agencies (`app.core.agency_contacts`)."""
    agency_contacts.answer_agency_contact(agency_contact)


async def owned_agency(principal: OperatorPrincipal, agency_id: UUID) -> AgencyRow:
    row = (
        await Agency.select()
        .where((Agency.id == agency_id) & (Agency.operator == principal.operator_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Agency not found."), code="agency_not_found")
    return AgencyRow.from_row(row)


async def _check_routes(
    principal: OperatorPrincipal, route_ids: list[UUID], field: str = "allowed_routes[{}]"
) -> list[str]:
    """The ids as stored, if the operator owns every route; else a 400 naming the first
    unknown one."""
    if not route_ids:
        return []
    owned = {
        row["id"]
        for row in await Route.select(Route.id)
        .where(Route.id.is_in(route_ids) & (Route.operator == principal.operator_id))
        .run()
    }
    for index, route_id in enumerate(route_ids):
        if route_id not in owned:
            raise InvalidInput(field.format(index), _("No such route."))
    return [str(route_id) for route_id in route_ids]


async def create_agency(principal: OperatorPrincipal, data: AgencyCreate) -> AgencyOut:
    require_operator_admin(principal)
    if data.webhook_url:
        await outbound.check_url("webhook_url", data.webhook_url)
    agency = Agency(
        operator=principal.operator_id, name=data.name, contact_email=data.contact_email,
        contact_phone=data.contact_phone or "", commission_bp=data.commission_bp,
        payment_terms=data.payment_terms.value,
        credit_limit=data.credit_limit,
        allowed_routes=await _check_routes(principal, data.allowed_routes),
        cancellation_cutoff_hours=data.cancellation_cutoff_hours,
        webhook_url=data.webhook_url or "", webhook_secret=secrets.token_hex(32),
        created_at=clock.now(),
    )  # fmt: skip
    await agency.save().run()
    return _agency_out(await owned_agency(principal, agency.id))


async def list_agencies(principal: OperatorPrincipal) -> list[AgencyOut]:
    rows = (
        await Agency.select()
        .where(Agency.operator == principal.operator_id)
        .order_by(Agency.name)
        .output(load_json=True)
        .run()
    )
    return [_agency_out(AgencyRow.from_row(row)) for row in rows]


async def get_agency(principal: OperatorPrincipal, agency_id: UUID) -> AgencyOut:
    return _agency_out(await owned_agency(principal, agency_id))


async def update_agency(
    principal: OperatorPrincipal, agency_id: UUID, data: AgencyUpdate
) -> AgencyOut:
    require_operator_admin(principal)
    values: dict[Any, Any] = {}
    for name in ("name", "contact_email", "commission_bp", "credit_limit",
                 "cancellation_cutoff_hours"):  # fmt: skip
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            values[getattr(Agency, name)] = value
    if data.contact_phone is not msgspec.UNSET:
        values[Agency.contact_phone] = data.contact_phone or ""
    if data.status is not msgspec.UNSET:
        values[Agency.status] = data.status.value
    if data.payment_terms is not msgspec.UNSET:
        values[Agency.payment_terms] = data.payment_terms.value
    if data.allowed_routes is not msgspec.UNSET:
        values[Agency.allowed_routes] = await _check_routes(principal, data.allowed_routes)
    if data.webhook_url is not msgspec.UNSET:
        if data.webhook_url:
            await outbound.check_url("webhook_url", data.webhook_url)
        # Setting the URL again (after a 410 Gone, say) turns deliveries back on.
        values[Agency.webhook_url] = data.webhook_url or ""
        values[Agency.webhook_disabled_at] = None
    async with write_transaction():
        await owned_agency(principal, agency_id)
        if values:
            await Agency.update(values).where(Agency.id == agency_id).run()
    return await get_agency(principal, agency_id)


def _key_out(key: ApiKeyRow) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at,
        last_used_at=key.last_used_at, revoked_at=key.revoked_at,
    )  # fmt: skip


async def _new_key(agency_id: UUID, name: str) -> ApiKeyCreated:
    prefix = KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    row = ApiKey(agency=agency_id, name=name, prefix=prefix, key_hash=_hash(key),
                 created_at=clock.now())  # fmt: skip
    await row.save().run()
    stored = await ApiKey.select().where(ApiKey.id == row.id).first().run()
    assert stored is not None
    return ApiKeyCreated(key=key, api_key=_key_out(ApiKeyRow.from_row(stored)))


async def add_known_key(agency_id: UUID, name: str, key: str) -> None:
    """Store a key chosen elsewhere (the demo's well-known one); normal keys are random."""
    prefix = key.split(".", 1)[0]
    if not prefix.startswith(KEY_PREFIX) or len(prefix) > 16:
        raise ValueError(f"a key starts with {KEY_PREFIX} and at most 16 characters before '.'")
    await (
        ApiKey(
            agency=agency_id, name=name, prefix=prefix, key_hash=_hash(key), created_at=clock.now()
        )
        .save()
        .run()
    )


async def create_key(principal: OperatorPrincipal, agency_id: UUID, name: str) -> ApiKeyCreated:
    require_operator_admin(principal)
    await owned_agency(principal, agency_id)
    return await _new_key(agency_id, name)


async def _keys(agency_id: UUID) -> list[ApiKeyOut]:
    rows = await ApiKey.select().where(ApiKey.agency == agency_id).order_by(ApiKey.created_at).run()
    return [_key_out(ApiKeyRow.from_row(row)) for row in rows]


async def list_keys(principal: OperatorPrincipal, agency_id: UUID) -> list[ApiKeyOut]:
    await owned_agency(principal, agency_id)
    return await _keys(agency_id)


async def _owned_key(agency_id: UUID, key_id: UUID) -> ApiKeyRow:
    row = (
        await ApiKey.select()
        .where((ApiKey.id == key_id) & (ApiKey.agency == agency_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("API key not found."), code="api_key_not_found")
    return ApiKeyRow.from_row(row)


async def _revoke(agency_id: UUID, key_id: UUID) -> ApiKeyOut:
    key = await _owned_key(agency_id, key_id)
    if key.revoked_at is None:
        await ApiKey.update({ApiKey.revoked_at: clock.now()}).where(ApiKey.id == key_id).run()
    return _key_out(await _owned_key(agency_id, key_id))


async def _rotate(agency_id: UUID, key_id: UUID) -> ApiKeyCreated:
    """A new key in place of this one, which stops working at once."""
    async with write_transaction():
        key = await _owned_key(agency_id, key_id)
        if key.revoked_at is not None:
            raise Conflict(_("This API key has been revoked."), code="api_key_revoked")
        await ApiKey.update({ApiKey.revoked_at: clock.now()}).where(ApiKey.id == key_id).run()
        return await _new_key(agency_id, key.name)


async def revoke_key(principal: OperatorPrincipal, agency_id: UUID, key_id: UUID) -> ApiKeyOut:
    require_operator_admin(principal)
    await owned_agency(principal, agency_id)
    return await _revoke(agency_id, key_id)


async def rotate_key(principal: OperatorPrincipal, agency_id: UUID, key_id: UUID) -> ApiKeyCreated:
    require_operator_admin(principal)
    await owned_agency(principal, agency_id)
    return await _rotate(agency_id, key_id)


# The agency's own key management, with one of its keys.


async def own_keys(agency: AgencyPrincipal) -> list[ApiKeyOut]:
    return await _keys(agency.agency_id)


async def create_own_key(agency: AgencyPrincipal, name: str) -> ApiKeyCreated:
    return await _new_key(agency.agency_id, name)


async def rotate_own_key(agency: AgencyPrincipal, key_id: UUID) -> ApiKeyCreated:
    return await _rotate(agency.agency_id, key_id)


async def revoke_own_key(agency: AgencyPrincipal, key_id: UUID) -> ApiKeyOut:
    return await _revoke(agency.agency_id, key_id)


async def agency_for_key(key: str) -> AgencyPrincipal | None:
    """The agency behind a presented key, if the key is valid, unrevoked and the agency
    active; None otherwise."""
    prefix = key.split(".", 1)[0]
    if not prefix.startswith(KEY_PREFIX) or len(prefix) > 16:
        return None
    row = await ApiKey.select().where(ApiKey.prefix == prefix).first().run()
    expected = row["key_hash"] if row else _hash(secrets.token_hex(16))
    if not hmac.compare_digest(expected, _hash(key)) or row is None or row["revoked_at"]:
        return None
    agency = (
        await Agency.select(Agency.operator, Agency.status)
        .where(Agency.id == row["agency"])
        .first()
        .run()
    )
    if agency is None or agency["status"] != AgencyStatus.active:
        return None
    now = clock.now()
    # Written at most once a minute per key: no write on every partner request.
    if row["last_used_at"] is None or now - row["last_used_at"] >= KEY_USE_RESOLUTION:
        await ApiKey.update({ApiKey.last_used_at: now}).where(ApiKey.id == row["id"]).run()
    return AgencyPrincipal(
        agency_id=row["agency"], operator_id=agency["operator"], api_key_id=row["id"]
    )


async def webhook_secret(principal: OperatorPrincipal, agency_id: UUID, rotate: bool) -> str:
    """The secret the agency verifies webhook signatures with (admins only)."""
    require_operator_admin(principal)
    async with write_transaction():
        agency = await owned_agency(principal, agency_id)
        if not rotate:
            return agency.webhook_secret
        secret = secrets.token_hex(32)
        await Agency.update({Agency.webhook_secret: secret}).where(Agency.id == agency_id).run()
        return secret


# ---------------------------------------------------------------- net rates


async def _currency(operator_id: UUID) -> str:
    return (await get_operator_row(operator_id)).currency


async def list_net_rates(principal: OperatorPrincipal, agency_id: UUID) -> list[NetRateOut]:
    await owned_agency(principal, agency_id)
    currency = await _currency(principal.operator_id)
    rows = (
        await NetRate.select()
        .where(NetRate.agency == agency_id)
        .order_by(NetRate.route)
        .order_by(NetRate.seat_class)
        .order_by(NetRate.passenger_type)
        .run()
    )
    return [
        NetRateOut(
            route_id=row["route"],
            seat_class=row["seat_class"],
            passenger_type=PassengerType(row["passenger_type"]),
            net=PriceOut.minor(row["amount"], currency),
        )
        for row in rows
    ]


async def replace_net_rates(
    principal: OperatorPrincipal, agency_id: UUID, data: NetRatesIn
) -> list[NetRateOut]:
    """Replace the agency's net-rate sheet as a whole (an empty list: commission only).
    Bookings already made keep the prices they were made at."""
    require_operator_admin(principal)
    seen: set[tuple[UUID, str, str]] = set()
    for index, rate in enumerate(data.rates):
        fare = (rate.route_id, rate.seat_class, rate.passenger_type.value)
        if fare in seen:
            raise InvalidInput(f"rates[{index}]", _("This fare is listed twice."))
        seen.add(fare)
    await _check_routes(
        principal, [rate.route_id for rate in data.rates], field="rates[{}].route_id"
    )
    async with write_transaction():
        await owned_agency(principal, agency_id)
        await NetRate.delete().where(NetRate.agency == agency_id).run()
        if data.rates:
            await NetRate.insert(
                *[
                    NetRate(
                        agency=agency_id,
                        route=rate.route_id,
                        seat_class=rate.seat_class,
                        passenger_type=rate.passenger_type.value,
                        amount=rate.amount,
                    )
                    for rate in data.rates
                ]
            ).run()
    return await list_net_rates(principal, agency_id)


# ---------------------------------------------------------------- on account


async def credit_used(agency_id: UUID) -> int:
    """What the agency owes now: taken on account, less refunds and settlements."""
    charged = await charged_on_account(agency_id)
    settled = sum(
        int(row["amount"])
        for row in await Settlement.select(Settlement.amount)
        .where(Settlement.agency == agency_id)
        .run()
    )
    return charged - settled


async def credit(agency: AgencyRow, currency: str) -> CreditOut:
    used = await credit_used(agency.id)
    return CreditOut(
        limit=PriceOut.minor(agency.credit_limit, currency),
        used=PriceOut.minor(used, currency),
        available=PriceOut.minor(max(0, agency.credit_limit - used), currency),
    )


def _settlement_out(settlement: SettlementRow, currency: str) -> SettlementOut:
    return SettlementOut(
        id=settlement.id, amount=PriceOut.minor(settlement.amount, currency),
        received_on=settlement.received_on, reference=settlement.reference,
        recorded_by=settlement.recorded_by, created_at=settlement.created_at,
    )  # fmt: skip


async def record_settlement(
    principal: OperatorPrincipal, agency_id: UUID, data: SettlementIn
) -> SettlementOut:
    """Money received from the agency: it lowers what the agency owes on account."""
    require_operator_admin(principal)
    require_calendar_date("received_on", data.received_on, source="body")
    currency = await _currency(principal.operator_id)
    async with write_transaction():
        await owned_agency(principal, agency_id)
        row = Settlement(
            agency=agency_id, amount=data.amount, currency=currency,
            received_on=data.received_on, reference=data.reference,
            recorded_by=f"staff:{principal.staff_id}", created_at=clock.now(),
        )  # fmt: skip
        await row.save().run()
    stored = await Settlement.select().where(Settlement.id == row.id).first().run()
    assert stored is not None
    return _settlement_out(SettlementRow.from_row(stored), currency)


async def list_settlements(principal: OperatorPrincipal, agency_id: UUID) -> list[SettlementOut]:
    await owned_agency(principal, agency_id)
    currency = await _currency(principal.operator_id)
    rows = (
        await Settlement.select()
        .where(Settlement.agency == agency_id)
        .order_by(Settlement.received_on, ascending=False)
        .run()
    )
    return [_settlement_out(SettlementRow.from_row(row), currency) for row in rows]


async def agency_credit(principal: OperatorPrincipal, agency_id: UUID) -> CreditOut:
    agency = await owned_agency(principal, agency_id)
    return await credit(agency, await _currency(principal.operator_id))
